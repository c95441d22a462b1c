"""Signals, scores and age-assurance results for platform accounts."""

from __future__ import annotations

from flask import g
from flask_smorest import Blueprint

from agegate.api import actor, idempotency, services
from agegate.auth import roles
from agegate.errors import Forbidden, ValidationFailed
from agegate.schemas.accounts import (
    ACCOUNT_ID,
    ACCOUNT_ID_ERROR,
    AccountSchema,
    ScoreSchema,
    SignalsRequestSchema,
    VerificationRequestSchema,
)
from agegate.schemas.common import ErrorSchema

blp = Blueprint("accounts", __name__, url_prefix="/v1/accounts", description="Signals and scores")


def check_account_id(account_id: str) -> None:
    """Account ids are the platform's opaque ids: 1-256 printable ASCII characters."""
    if not ACCOUNT_ID.match(account_id):
        raise ValidationFailed(fields={"account_id": [ACCOUNT_ID_ERROR]})


@blp.route("/<string:account_id>/signals", methods=["POST"])
@blp.arguments(SignalsRequestSchema())
@blp.doc(parameters=[idempotency.parameter(
    "this batch of signals (the signal stream's `id` is the same key)")])
@blp.response(200, ScoreSchema)
@blp.alt_response(409, schema=ErrorSchema,
                  description="account_terminated or processing_stopped")
@blp.alt_response(422, schema=ErrorSchema, description="validation_error, or "
                  "idempotency_key_reused: this Idempotency-Key was applied with other "
                  "signals (nothing is applied)")
@blp.alt_response(503, schema=ErrorSchema, description="model_unavailable, or "
                  "storage_unavailable (Redis, or too few replicas confirmed the write: retry "
                  "with the same Idempotency-Key after Retry-After)")
@roles("signals")
def post_signals(data, account_id):
    """Score an account from its signals. Text is used to score and never stored."""
    check_account_id(account_id)
    key = idempotency.header()
    # The stream's idempotency keys and these are one namespace: one batch, one application,
    # whichever door it came in by, however often it is retried.
    return services().accounts.record_signal(
        account_id, data["signals"], actor=actor(),
        key=f"id:{key}" if key is not None else None)


@blp.route("/<string:account_id>", methods=["GET"])
@blp.response(200, AccountSchema)
@blp.alt_response(404, schema=ErrorSchema, description="An account never seen")
@roles("reviewer")
def get_account(account_id):
    """An account's status, latest score and age (from platform age signals)."""
    check_account_id(account_id)
    account = services().accounts.get(account_id)
    return {**account, "age": services().age_signals.age(account_id)}


@blp.route("/<string:account_id>/verification", methods=["POST"])
@blp.arguments(VerificationRequestSchema())
@blp.response(200, AccountSchema)
@blp.alt_response(404, schema=ErrorSchema, description="An account never seen")
@blp.alt_response(403, schema=ErrorSchema,
                  description="A reviewer who does not hold this account's case")
@blp.alt_response(409, schema=ErrorSchema, description="The account is not restricted")
@roles("reviewer")
def post_verification(data, account_id):
    """An age-assurance result: adult unrestricts, minor terminates. The date is never stored.
    For the reviewer holding the account's case (claimed, or the one it is restricted under)
    or an admin."""
    check_account_id(account_id)
    if g.role != "admin" and services().accounts.holds_case(account_id, actor()) is False:
        raise Forbidden("Only the reviewer holding this account's case, or an admin, may record "
                        "its verification.")
    return services().accounts.verify(account_id, data["outcome"], data["method"],
                                      data.get("date_of_birth"), actor=actor())
