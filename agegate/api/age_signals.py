"""Platform age signals (Apple, Google, the OS, vendors) relayed by the platform."""

from __future__ import annotations

from flask_smorest import Blueprint

from agegate.api import actor, idempotency, services
from agegate.api.accounts import check_account_id
from agegate.auth import roles
from agegate.schemas.age_signals import (
    AgeSignalRequestSchema,
    AgeSignalResponseSchema,
    RevocationRequestSchema,
    RevocationResponseSchema,
)
from agegate.schemas.common import ErrorSchema

blp = Blueprint("age_signals", __name__, url_prefix="/v1", description="Platform age signals")


@blp.route("/accounts/<string:account_id>/age-signals", methods=["POST"])
@blp.arguments(AgeSignalRequestSchema())
@blp.doc(parameters=[idempotency.parameter(
    "this signal (a retry stores it once and gets the first answer)")])
@blp.response(200, AgeSignalResponseSchema)
@blp.alt_response(409, schema=ErrorSchema, description="account_terminated")
@blp.alt_response(422, schema=ErrorSchema,
                  description="Inverted or impossible range, unknown source or method, too "
                              "old; or idempotency_key_reused (the key came with another body)")
@roles("signals")
def post_age_signal(data, account_id):
    """Record an age signal; an under-18 range restricts the account and opens its case."""
    check_account_id(account_id)
    return services().age_signals.record(
        account_id, data, actor=actor(),
        idempotency=idempotency.key_for(f"age-signals\x00{account_id}"))


@blp.route("/age-signals/revocations", methods=["POST"])
@blp.arguments(RevocationRequestSchema())
@blp.response(200, RevocationResponseSchema)
@blp.alt_response(422, schema=ErrorSchema, description="More than 1,000 install ids, ...")
@roles("signals")
def post_revocations(data):
    """A store says consent or approval was revoked: restrict the accounts of those installs."""
    return services().age_signals.revoke(data["source"], data["install_ids"], data["reason"],
                                         actor=actor())
