"""Webhook registration, rotation and the delivery log."""

from __future__ import annotations

from marshmallow import fields, validate

from agegate.schemas.common import StrictSchema
from agegate.services.webhooks import EVENT_TYPES


class WebhookRequestSchema(StrictSchema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048), metadata={
        "description": "https:// (http:// when AGEGATE_WEBHOOK_ALLOW_HTTP=true); its host must "
        "resolve only to public addresses (or AGEGATE_WEBHOOK_ALLOWED_NETWORKS); no "
        "credentials."})
    events = fields.List(fields.String(validate=validate.OneOf(EVENT_TYPES)), required=True,
                         validate=validate.Length(min=1, max=len(EVENT_TYPES)))


class WebhookCreatedSchema(StrictSchema):
    webhook_id = fields.String(required=True)
    secret = fields.String(required=True, metadata={"description": "Shown this once."})


class WebhookSchema(StrictSchema):
    webhook_id = fields.String(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(), required=True)
    created_at = fields.String(required=True)
    live_secrets = fields.Integer(required=True, metadata={
        "description": "Secrets that sign now: 2 for 24 hours after a rotation."})
    rotation_ends_at = fields.String(allow_none=True, required=True)


class WebhookListSchema(StrictSchema):
    webhooks = fields.List(fields.Nested(WebhookSchema), required=True)


class SecretRotatedSchema(StrictSchema):
    webhook_id = fields.String(required=True)
    secret = fields.String(required=True, metadata={"description": "Shown this once."})
    previous_secret_expires_at = fields.String(allow_none=True, required=True)


class DeliverySchema(StrictSchema):
    delivery_id = fields.String(required=True)
    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    attempt = fields.Integer(required=True)
    status = fields.String(required=True,
                           validate=validate.OneOf(["delivered", "retrying", "failed"]))
    http_status = fields.Integer(allow_none=True, required=True)
    error = fields.String(allow_none=True, required=True, metadata={
        "description": "The failure's reason class only: timeout, refused, not_http, status, "
                       "blocked (the host now resolves to an address not allowed), unsigned "
                       "(no secret can be opened with the configured keys)."})
    at = fields.String(required=True)
    next_attempt_at = fields.String(allow_none=True, required=True)


class DeliveryListQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class DeliveryListSchema(StrictSchema):
    deliveries = fields.List(fields.Nested(DeliverySchema), required=True)
