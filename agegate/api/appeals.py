"""Appeals, relayed by the platform for its member."""

from __future__ import annotations

from flask_smorest import Blueprint

from agegate.api import actor, idempotency, services
from agegate.api.accounts import check_account_id
from agegate.auth import roles
from agegate.schemas.appeals import AppealCreatedSchema, AppealRequestSchema, AppealSchema
from agegate.schemas.common import ErrorSchema

blp = Blueprint("appeals", __name__, url_prefix="/v1", description="Appeals")


@blp.route("/accounts/<string:account_id>/appeals", methods=["POST"])
@blp.arguments(AppealRequestSchema())
@blp.doc(parameters=[idempotency.parameter(
    "this appeal (a retry gets the same appeal instead of a 409)")])
@blp.response(202, AppealCreatedSchema)
@blp.alt_response(404, schema=ErrorSchema, description="An account never seen")
@blp.alt_response(409, schema=ErrorSchema,
                  description="The account is neither restricted nor terminated, or an appeal "
                              "is already open")
@blp.alt_response(422, schema=ErrorSchema, description="A statement over 2,000 characters; "
                  "or idempotency_key_reused (the key came with another body)")
@roles("signals")
def post_appeal(data, account_id):
    """Open an appeal case for a restricted or terminated account."""
    check_account_id(account_id)
    return services().appeals.submit(
        account_id, data["statement"], actor=actor(),
        idempotency=idempotency.key_for(f"appeals\x00{account_id}"))


@blp.route("/appeals/<string:appeal_id>", methods=["GET"])
@blp.response(200, AppealSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such appeal")
@roles("signals")
def get_appeal(appeal_id):
    """An appeal's status and outcome."""
    return services().appeals.get(appeal_id)
