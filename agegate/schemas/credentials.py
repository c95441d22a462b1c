"""POST /v1/credential-requests and POST /v1/credential-requests/{request_id}/response."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates

from agegate import mdoc
from agegate.schemas.common import StrictSchema, identifier

# A DeviceResponse disclosing one element is a few kilobytes; this leaves room for long
# certificate chains and is far under the route's body limit.
MAX_PRESENTATION_CHARS = 64 * 1024


class CredentialRequestSchema(StrictSchema):
    origin = fields.String(required=True, validate=validate.Length(min=1, max=300), metadata={
        "description": "The web origin of the page that calls the Digital Credentials API; "
                       "one of AGEGATE_CREDENTIAL_ORIGINS.", "example": "https://signup.example"})
    account_id = identifier(metadata={"description": "The account the result is recorded on."})
    session_id = identifier(metadata={"description": "The registration session (as in the "
                                                     "age check)."})


class DcqlRequestSchema(Schema):
    response_type = fields.String(required=True, metadata={"example": "vp_token"})
    response_mode = fields.String(required=True, metadata={"example": "dc_api"})
    nonce = fields.String(required=True, metadata={"description": "192 random bits, base64url"})
    dcql_query = fields.Dict(required=True, metadata={
        "description": "The EU age verification attestation (id `age`) or a mobile driving "
                       "licence (id `mdl`), each asking for age_over_18 alone."})


class CredentialRequestCreatedSchema(Schema):
    request_id = fields.String(required=True)
    expires_at = fields.String(required=True, metadata={
        "description": "ISO-8601, UTC (`Z`): 5 minutes after the request was made",
        "example": "2026-11-24T13:35:00Z"})
    protocol = fields.String(required=True, metadata={"example": mdoc.PROTOCOL})
    request = fields.Nested(DcqlRequestSchema, required=True, metadata={
        "description": "Passed as `data` to navigator.credentials.get({digital: {requests: "
                       "[{protocol, data}]}})."})


class CredentialAnswerSchema(StrictSchema):
    vp_token = fields.Dict(
        required=True,
        keys=fields.String(validate=validate.OneOf(sorted(mdoc.QUERIES))),
        values=fields.List(fields.String(validate=validate.Length(
            min=1, max=MAX_PRESENTATION_CHARS)), validate=validate.Length(equal=1)),
        metadata={"description": "What the wallet returned: `{\"age\": [\"<base64url "
                                 "DeviceResponse>\"]}` or `{\"mdl\": [...]}`.",
                  "example": {"age": ["o2d2ZXJzaW9u..."]}})

    @validates("vp_token")
    def one_credential(self, value: dict, **kwargs) -> None:
        if len(value) != 1:
            raise ValidationError("Give exactly one of `age` or `mdl`.")


class CredentialResultSchema(Schema):
    request_id = fields.String(required=True)
    result = fields.String(required=True,
                           validate=validate.OneOf(["over_18", "not_over_18", "rejected"]))
    reason = fields.String(required=True, allow_none=True,
                           validate=validate.OneOf(mdoc.REASONS),
                           metadata={"description": "Which check failed, for `rejected`."})
    check_id = fields.String(required=True)
