"""The loaded model and the reviewer feedback collected for it, for administrators."""

from __future__ import annotations

from flask_smorest import Blueprint

from agegate.api import services
from agegate.auth import roles
from agegate.schemas.model_admin import ModelStatusSchema

blp = Blueprint("model_admin", __name__, url_prefix="/v1/admin", description="Model feedback")


@blp.route("/model", methods=["GET"])
@blp.response(200, ModelStatusSchema)
@roles("admin")
def get_model():
    """The model version, its calibration, the stored examples per verdict and when it was
    last recalibrated."""
    return services().feedback.summary()
