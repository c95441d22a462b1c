"""The registration flow's hook."""

from __future__ import annotations

from flask_smorest import Blueprint

from agegate.api import actor, services
from agegate.auth import roles
from agegate.schemas.age_checks import AgeCheckRequestSchema, AgeCheckResponseSchema
from agegate.schemas.common import ErrorSchema

blp = Blueprint("age_checks", __name__, url_prefix="/v1", description="Registration age gate")


@blp.route("/age-checks", methods=["POST"])
@blp.arguments(AgeCheckRequestSchema())
@blp.response(200, AgeCheckResponseSchema)
@blp.alt_response(422, schema=ErrorSchema, description="Invalid date of birth or country")
@roles("registration")
def create_age_check(data):
    """Decide whether someone may register. The date of birth is never stored."""
    return services().age_checks.check(data, actor()).as_dict()
