"""The trust-and-safety review queue."""

from __future__ import annotations

from flask_smorest import Blueprint

from agegate.api import actor, services
from agegate.auth import roles
from agegate.clock import iso
from agegate.schemas.common import ErrorSchema, NoBodySchema
from agegate.schemas.review import (
    CaseListQuerySchema,
    CaseListSchema,
    CaseSchema,
    ClaimQuerySchema,
    ClaimSchema,
    DecisionSchema,
)

blp = Blueprint("review", __name__, url_prefix="/v1/review", description="Review queue")


@blp.route("/cases", methods=["GET"])
@blp.arguments(CaseListQuerySchema(), location="query")
@blp.response(200, CaseListSchema)
@roles("reviewer")
def list_cases(query):
    """Cases by status; open ones highest priority first."""
    return {"cases": services().review.list_cases(query["status"], query["limit"],
                                                  query.get("kind"))}


@blp.route("/claims", methods=["POST"])
@blp.arguments(ClaimQuerySchema(), location="query")
@blp.arguments(NoBodySchema(), required=False)
@blp.response(200, ClaimSchema)
@blp.alt_response(204, description="The queue is empty")
@roles("reviewer")
def claim_next(query, _body):
    """Lease the top open case; an unfinished lease expires and the case goes back."""
    claimed = services().review.claim_next(actor(), query.get("kind"))
    if claimed is None:
        return "", 204
    case, until = claimed
    return {"case": case, "lease_expires_at": iso(until)}


@blp.route("/cases/<string:case_id>", methods=["GET"])
@blp.response(200, CaseSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such case")
@roles("reviewer")
def get_case(case_id):
    """One case; an appeal case with the member's statement."""
    case = services().review.get(case_id)
    if case["kind"] == "appeal":
        case = {**case, "statement": services().appeals.statement(case)}
    return case


@blp.route("/cases/<string:case_id>/claim", methods=["POST"])
@blp.arguments(NoBodySchema(), required=False)
@blp.response(200, ClaimSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such case")
@blp.alt_response(409, schema=ErrorSchema, description="The case is not open")
@roles("reviewer")
def claim_case(_body, case_id):
    """Lease one particular open case (the reviewer console)."""
    case, until = services().review.claim(case_id, actor())
    return {"case": case, "lease_expires_at": iso(until)}


@blp.route("/cases/<string:case_id>/decision", methods=["POST"])
@blp.arguments(DecisionSchema())
@blp.response(200, CaseSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such case")
@blp.alt_response(409, schema=ErrorSchema,
                  description="Already decided, or claimed by another reviewer, or lease expired")
@blp.alt_response(422, schema=ErrorSchema, description="A decision this kind of case can't take")
@roles("reviewer")
def decide_case(data, case_id):
    """Decide a case you hold the claim on."""
    return services().review.decide(case_id, actor(), data["decision"], data.get("note"))
