"""What the law asks where a person signs up: minimum age and platform age signals."""

from __future__ import annotations

from flask_smorest import Blueprint

from agegate.api import services
from agegate.auth import roles
from agegate.schemas.common import ErrorSchema
from agegate.schemas.jurisdictions import JurisdictionSchema

blp = Blueprint("jurisdictions", __name__, url_prefix="/v1/jurisdictions",
                description="Jurisdictions")


@blp.route("/<string:code>", methods=["GET"])
@blp.response(200, JurisdictionSchema)
@blp.alt_response(404, schema=ErrorSchema,
                  description="Not an ISO 3166 code of a real country (e.g. USA, U-S, XX)")
@roles("registration")
def get_jurisdiction(code):
    """The jurisdiction's row: from the code itself, else its country, else the default."""
    return services().jurisdictions.lookup(code)
