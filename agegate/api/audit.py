"""The audit trail, for administrators."""

from __future__ import annotations

from flask_smorest import Blueprint

from agegate.api import services
from agegate.auth import roles
from agegate.schemas.audit import AuditListSchema, AuditQuerySchema

blp = Blueprint("audit", __name__, url_prefix="/v1", description="Audit trail")


@blp.route("/audit", methods=["GET"])
@blp.arguments(AuditQuerySchema(), location="query")
@blp.response(200, AuditListSchema)
@roles("admin")
def list_audit(query):
    """Newest first, for one account or for all."""
    return {"events": services().audit.entries(query.get("account_id"), query["limit"])}
