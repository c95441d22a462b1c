"""Signed webhooks for downstream systems that cannot read the Redis Stream."""

from __future__ import annotations

from flask import request
from flask_smorest import Blueprint

from agegate.api import actor, idempotency, services
from agegate.auth import roles
from agegate.schemas.common import ErrorSchema, NoBodySchema
from agegate.schemas.webhooks import (
    DeliveryListQuerySchema,
    DeliveryListSchema,
    SecretRotatedSchema,
    WebhookCreatedSchema,
    WebhookListSchema,
    WebhookRequestSchema,
)

blp = Blueprint("webhooks", __name__, url_prefix="/v1/admin/webhooks", description="Webhooks")


@blp.route("", methods=["POST"])
@blp.arguments(WebhookRequestSchema())
@blp.doc(parameters=[idempotency.parameter(
    "this webhook (a retry gets the same webhook_id and secret)")])
@blp.response(201, WebhookCreatedSchema)
@blp.alt_response(409, schema=ErrorSchema,
                  description="A retried Idempotency-Key whose webhook was deleted, or whose "
                              "secret was rotated out, since: nothing is created")
@blp.alt_response(422, schema=ErrorSchema,
                  description="Not https (or allowed http), credentials in the URL, a "
                              "host that does not resolve only to public (or allowed) "
                              "addresses, this service itself, or an unknown event type; or "
                              "idempotency_key_reused (the key came with another body)")
@roles("admin")
def create_webhook(data):
    """Register a webhook; the signing secret is shown once (and to a retry of the same
    Idempotency-Key)."""
    return services().webhooks.create(data["url"], data["events"], service_host=request.host,
                                      actor=actor(), idempotency=idempotency.key_for("webhooks"))


@blp.route("", methods=["GET"])
@blp.response(200, WebhookListSchema)
@roles("admin")
def list_webhooks():
    """Registered webhooks (never their secrets)."""
    return {"webhooks": services().webhooks.listing()}


@blp.route("/<string:webhook_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, schema=ErrorSchema, description="No such webhook")
@roles("admin")
def delete_webhook(webhook_id):
    """Stop delivering to a webhook; its queued deliveries are dropped."""
    services().webhooks.delete(webhook_id, actor=actor())
    return None


@blp.route("/<string:webhook_id>/secret", methods=["POST"])
@blp.arguments(NoBodySchema(), required=False)
@blp.doc(parameters=[idempotency.parameter(
    "this rotation (a retry gets the same new secret and rotates nothing again)")])
@blp.response(200, SecretRotatedSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such webhook")
@blp.alt_response(409, schema=ErrorSchema,
                  description="A retried Idempotency-Key whose webhook was deleted, or whose "
                              "new secret was rotated out, since: nothing is rotated")
@roles("admin")
def rotate_secret(_body, webhook_id):
    """A new secret; the old one also signs for 24 hours."""
    return services().webhooks.rotate(
        webhook_id, actor=actor(),
        idempotency=idempotency.key_for(f"webhook-secret\x00{webhook_id}"))


@blp.route("/<string:webhook_id>/deliveries", methods=["GET"])
@blp.arguments(DeliveryListQuerySchema(), location="query")
@blp.response(200, DeliveryListSchema)
@blp.alt_response(404, schema=ErrorSchema, description="No such webhook")
@roles("admin")
def list_deliveries(query, webhook_id):
    """Recent delivery attempts, newest first."""
    return {"deliveries": services().webhooks.deliveries(webhook_id, query["limit"])}
