"""The signal stream's backlog, for administrators."""

from __future__ import annotations

from flask_smorest import Blueprint

from agegate.api import services
from agegate.auth import roles
from agegate.schemas.ingest import IngestStatusSchema

blp = Blueprint("ingest", __name__, url_prefix="/v1/admin", description="Signal stream")


@blp.route("/ingest", methods=["GET"])
@blp.response(200, IngestStatusSchema)
@roles("admin")
def get_ingest():
    """The signal stream's length, lag, pending and dead-lettered entries and its consumers."""
    return services().ingest.status()
