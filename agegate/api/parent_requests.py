"""Parents' requests (public, rate-limited per client address), plus reviewer and admin views."""

from __future__ import annotations

from flask_smorest import Blueprint

from agegate.api import actor, services
from agegate.api.limits import (
    limiter,
    no_parent_email,
    parent_email_key,
    parent_email_limit,
    parent_request_limit,
)
from agegate.auth import public, roles
from agegate.schemas.common import ErrorSchema
from agegate.schemas.parent_requests import (
    ExportSchema,
    ListingQuerySchema,
    ListingSchema,
    OutboxQuerySchema,
    OutboxSchema,
    ParentRequestCreatedSchema,
    ParentRequestSchema,
    ParentRequestStatusSchema,
    ResolveChildSchema,
    ReviewViewSchema,
    StatusQuerySchema,
    VerificationSchema,
    VerifiedSchema,
)

blp = Blueprint("parent_requests", __name__, url_prefix="/v1",
                description="Parent requests (public) and their review")

@blp.route("/parent-requests", methods=["POST"])
# Outside @blp.arguments: every submission counts, valid or not, before its body is parsed.
@limiter.limit(parent_request_limit)
@limiter.limit(parent_email_limit, key_func=parent_email_key, exempt_when=no_parent_email,
               scope="parent-email")
@blp.arguments(ParentRequestSchema())
@blp.response(202, ParentRequestCreatedSchema)
@blp.alt_response(422, schema=ErrorSchema, description="Invalid request")
@blp.alt_response(429, schema=ErrorSchema,
                  description="Too many requests from this address (IPv6: its /64) or for this "
                              "parent email")
@blp.alt_response(503, schema=ErrorSchema, description="The code could not be mailed")
@public
def create_parent_request(data):
    """Submit a parent's request; a one-time code is mailed to the parent."""
    return services().parent_requests.submit(data)


@blp.route("/parent-requests/<string:request_id>/verification", methods=["POST"])
@blp.arguments(VerificationSchema())
@blp.response(200, VerifiedSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such request")
@blp.alt_response(409, schema=ErrorSchema, description="Locked after too many wrong codes")
@blp.alt_response(422, schema=ErrorSchema, description="Wrong or expired code")
@public
def verify_parent_request(data, request_id):
    """Prove the mailbox with the mailed code; opens the reviewer's case."""
    return services().parent_requests.verify(request_id, data["code"])


@blp.route("/parent-requests/<string:request_id>", methods=["GET"])
@blp.arguments(StatusQuerySchema(), location="query")
@blp.response(200, ParentRequestStatusSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such request, or a wrong token")
@public
def parent_request_status(query, request_id):
    """The request's status, for whoever holds its status token."""
    return services().parent_requests.status(request_id, query["status_token"])


@blp.route("/parent-requests/<string:request_id>/export", methods=["GET"])
@blp.arguments(StatusQuerySchema(), location="query")
@blp.response(200, ExportSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No export, or a wrong token")
@public
def parent_request_export(query, request_id):
    """The export of a fulfilled access request, while it is kept."""
    return services().parent_requests.export(request_id, query["status_token"])


@blp.route("/parent-requests/<string:request_id>/review", methods=["GET"])
@blp.response(200, ReviewViewSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such request")
@roles("reviewer")
def parent_request_review(request_id):
    """What a reviewer needs to decide the request, including the parent's text."""
    return services().parent_requests.review_view(request_id)


@blp.route("/parent-requests/<string:request_id>/child", methods=["POST"])
@blp.arguments(ResolveChildSchema())
@blp.response(200, ReviewViewSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such request")
@blp.alt_response(409, schema=ErrorSchema, description="Not a verified, undecided request")
@blp.alt_response(422, schema=ErrorSchema, description="The identifier does not match")
@roles("reviewer")
def resolve_parent_request_child(data, request_id):
    """Attach the child's account id; the identifier must match what the parent gave."""
    return services().parent_requests.resolve_child(
        request_id, data["account_id"], data.get("identifier"), actor())


@blp.route("/admin/parent-requests", methods=["GET"])
@blp.arguments(ListingQuerySchema(), location="query")
@blp.response(200, ListingSchema)
@roles("admin")
def list_parent_requests(query):
    """Verified, undecided requests by due date; `overdue=true` for those past it."""
    return {"requests": services().parent_requests.listing(query["overdue"], query["limit"])}


@blp.route("/admin/outbox", methods=["GET"])
@blp.arguments(OutboxQuerySchema(), location="query")
@blp.response(200, OutboxSchema)
@roles("admin")
def read_outbox(query):
    """Mail waiting to be relayed when no SMTP server is configured (kept one day)."""
    return {"messages": services().mailer.outbox(query["limit"])}
