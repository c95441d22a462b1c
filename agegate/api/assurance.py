"""Step-up age assurance: results relayed by the platform, records for reviewers, the export."""

from __future__ import annotations

from flask import Response, stream_with_context
from flask_smorest import Blueprint

from agegate.api import actor, idempotency, services
from agegate.api.accounts import check_account_id
from agegate.auth import roles
from agegate.errors import NotFound
from agegate.schemas.assurance import (
    AccountAssuranceSchema,
    AssuranceResultRequestSchema,
    AssuranceResultSchema,
    ExportLineSchema,
    ExportQuerySchema,
)
from agegate.schemas.common import ErrorSchema

blp = Blueprint("assurance", __name__, url_prefix="/v1", description="Age assurance")


@blp.route("/accounts/<string:account_id>/assurance-results", methods=["POST"])
@blp.arguments(AssuranceResultRequestSchema())
@blp.doc(parameters=[idempotency.parameter("this result")])
@blp.response(200, AssuranceResultSchema)
@blp.alt_response(409, schema=ErrorSchema, description="account_terminated")
@blp.alt_response(422, schema=ErrorSchema, description="Unknown method or outcome, a challenge "
                  "age on a verification, a timestamp in the future or expired, ...; or "
                  "idempotency_key_reused (the key came with another body: nothing recorded)")
@roles("signals")
def post_assurance_result(data, account_id):
    """Judge a vendor's result for the jurisdiction, record it, and act on the account."""
    check_account_id(account_id)
    return services().assurance.record(
        account_id, actor=actor(), **data,
        idempotency=idempotency.key_for(f"assurance-results\x00{account_id}"))


@blp.route("/accounts/<string:account_id>/assurance", methods=["GET"])
@blp.response(200, AccountAssuranceSchema)
@blp.alt_response(404, schema=ErrorSchema, description="An account never seen, without records")
@roles("reviewer")
def get_account_assurance(account_id):
    """The account's assurance records, newest first (kept after a termination too)."""
    check_account_id(account_id)
    try:
        status = services().accounts.get(account_id)["status"]
    except NotFound:
        status = None
    return services().assurance.account_view(account_id, status)


@blp.route("/admin/assurance/export", methods=["GET"])
@blp.arguments(ExportQuerySchema(), location="query")
@blp.response(200, ExportLineSchema, content_type="application/x-ndjson",
              description="One record per line (NDJSON), keyed by account_ref, never account_id")
@blp.alt_response(422, schema=ErrorSchema, description="A bad date, to before from, ...")
@roles("admin")
def export_assurance(query):
    """The evidence of the steps taken, for a regulator: records recorded from..to (UTC days)."""
    lines = services().assurance.export(query["start"], query["end"], query.get("jurisdiction"))
    first = next(lines, "")  # validates (a 422) before the response starts
    services().audit.record(actor(), "assurance_exported", details={
        "from": query["start"].isoformat(), "to": query["end"].isoformat(),
        "jurisdiction": query.get("jurisdiction")})

    def body():
        if first:
            yield first
        yield from lines

    return Response(stream_with_context(body()), mimetype="application/x-ndjson")
