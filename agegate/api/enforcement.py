"""Terminations and deletion records."""

from __future__ import annotations

from flask_smorest import Blueprint

from agegate.api import actor, services
from agegate.api.accounts import check_account_id
from agegate.auth import roles
from agegate.errors import Forbidden
from agegate.schemas.common import ErrorSchema
from agegate.schemas.enforcement import (
    AckSchema,
    DeletionListQuerySchema,
    DeletionListSchema,
    DeletionSchema,
    TerminationRequestSchema,
    TerminationResponseSchema,
)

blp = Blueprint("enforcement", __name__, url_prefix="/v1", description="Enforcement")


@blp.route("/accounts/<string:account_id>/termination", methods=["POST"])
@blp.arguments(TerminationRequestSchema())
@blp.response(202, TerminationResponseSchema)
@roles("admin")
def terminate(data, account_id):
    """Terminate an account and delete what we hold on it; a repeat returns the same deletion."""
    check_account_id(account_id)
    record = services().enforcement.terminate(account_id, actor=actor(), reason=data["reason"])
    return {"deletion_id": record["deletion_id"], "status": record["status"]}


@blp.route("/deletions", methods=["GET"])
@blp.arguments(DeletionListQuerySchema(), location="query")
@blp.response(200, DeletionListSchema)
@roles("admin")
def list_deletions(query):
    """Deletion records; `status=pending&overdue=true` lists the ones past their due date."""
    return {"deletions": services().enforcement.list_deletions(
        query.get("status"), query.get("overdue"), query["limit"])}


@blp.route("/deletions/<string:deletion_id>", methods=["GET"])
@blp.response(200, DeletionSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such deletion")
@roles("admin")
def get_deletion(deletion_id):
    """One deletion record."""
    return services().enforcement.get_deletion(deletion_id)


@blp.route("/deletions/<string:deletion_id>/acks", methods=["POST"])
@blp.arguments(AckSchema())
@blp.response(200, DeletionSchema)
@blp.alt_response(403, schema=ErrorSchema,
                  description="The token speaks for another system (its name is its system)")
@blp.alt_response(404, schema=ErrorSchema, description="No such deletion")
@blp.alt_response(422, schema=ErrorSchema, description="Not a system this deletion waits for")
@roles("downstream")
def ack_deletion(data, deletion_id):
    """A downstream system confirms it deleted the account; it acknowledges only for itself
    (the token's name in AGEGATE_API_KEYS is the system it speaks for)."""
    if data["system"] != actor():
        raise Forbidden("A downstream token acknowledges only for its own system "
                        "(the token's name).")
    return services().enforcement.ack(deletion_id, data["system"], actor=actor())
