"""The audit trail."""

from __future__ import annotations

from marshmallow import fields, validate

from agegate.schemas.common import StrictSchema, identifier


class AuditQuerySchema(StrictSchema):
    account_id = identifier()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class AuditEntrySchema(StrictSchema):
    id = fields.String(required=True)
    at = fields.String(required=True)
    actor = fields.String(required=True)
    action = fields.String(required=True)
    account_id = fields.String(allow_none=True)
    details = fields.Dict(required=True)
    prev_hash = fields.String(required=True)
    hash = fields.String(required=True)
    chain = fields.String(metadata={"description": "The writer's chain this entry extends."})
    key_id = fields.String(metadata={
        "description": "Short id of the AGEGATE_SECRET_KEY key whose HMAC this hash is (absent "
                       "on entries written before key rotation), so entries keep verifying "
                       "after a rotation."})


class AuditListSchema(StrictSchema):
    events = fields.List(fields.Nested(AuditEntrySchema), required=True)
