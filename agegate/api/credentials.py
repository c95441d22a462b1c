"""Digital credentials: the registration flow's backend asks for a wallet's "over 18"."""

from __future__ import annotations

from flask_smorest import Blueprint

from agegate.api import actor, idempotency, services
from agegate.auth import roles
from agegate.schemas.common import ErrorSchema
from agegate.schemas.credentials import (
    CredentialAnswerSchema,
    CredentialRequestCreatedSchema,
    CredentialRequestSchema,
    CredentialResultSchema,
)

blp = Blueprint("credentials", __name__, url_prefix="/v1",
                description="Digital credentials (a wallet proves over 18)")


@blp.route("/credential-requests", methods=["POST"])
@blp.arguments(CredentialRequestSchema())
@blp.doc(parameters=[idempotency.parameter(
    "this request (a retry gets the same request while it is open)")])
@blp.response(201, CredentialRequestCreatedSchema)
@blp.alt_response(409, schema=ErrorSchema, description="A retried Idempotency-Key whose "
                  "request was answered or has expired: nothing is created")
@blp.alt_response(422, schema=ErrorSchema, description="Unknown field, or an origin not in "
                  "AGEGATE_CREDENTIAL_ORIGINS; or idempotency_key_reused (the key came with "
                  "another body)")
@roles("registration")
def create_credential_request(data):
    """A single-use OpenID4VP request (5 minutes) for the page to hand to the wallet."""
    # Per account named (the request lives in the account's slot, with its key).
    return services().credentials.create(data, idempotency.key_for(
        f"credential-requests\x00{data.get('account_id') or ''}"))


@blp.route("/credential-requests/<string:request_id>/response", methods=["POST"])
@blp.arguments(CredentialAnswerSchema())
@blp.doc(parameters=[idempotency.parameter(
    "this answer (a retry of an applied answer gets its result instead of a 409)")])
@blp.response(200, CredentialResultSchema)
@blp.alt_response(404, schema=ErrorSchema, description="Not a credential request id")
@blp.alt_response(409, schema=ErrorSchema, description="Already answered, or expired")
@blp.alt_response(422, schema=ErrorSchema, description="vp_token is not one presentation "
                  "for `age` or `mdl`; or idempotency_key_reused (the key came with another "
                  "body)")
@roles("registration")
def answer_credential_request(data, request_id):
    """Verify the wallet's answer (once) and record over_18, not_over_18 or rejected."""
    return services().credentials.answer(
        request_id, data["vp_token"], actor(),
        idempotency.key_for(f"credential-response\x00{request_id}"))
