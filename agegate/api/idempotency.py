"""The `Idempotency-Key` request header: one check and one OpenAPI description for every
route that takes it (POST .../signals, and the writes that create: webhooks, assurance
results). A retry with the same key is applied once and answered as the first time; the same
key with another body is a 422 `idempotency_key_reused`."""

from __future__ import annotations

from typing import Any

from flask import request

from agegate.api import actor, services
from agegate.errors import ValidationFailed
from agegate.schemas.common import IDENTIFIER
from agegate.storage.idempotency import IdempotencyKey

HEADER = "Idempotency-Key"


def parameter(what: str) -> dict[str, Any]:
    """The header's OpenAPI description on a route; `what` says what a key names there."""
    return {
        "name": HEADER, "in": "header", "required": False,
        "description": f"The caller's key for {what} (1-256 printable ASCII characters): a "
                       "retry with the same key is applied once and answered as the first "
                       "time (the same status and body), for a day; the same key with another "
                       "body is a 422 idempotency_key_reused.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[!-~]+$"},
    }


def header() -> str | None:
    """The request's Idempotency-Key, checked (422 on `Idempotency-Key`), or None."""
    key = request.headers.get(HEADER)
    if key is not None and not IDENTIFIER.match(key):
        raise ValidationFailed(fields={HEADER: [
            "Use 1-256 printable ASCII characters, no spaces."]})
    return key


def key_for(route: str) -> IdempotencyKey | None:
    """The request's key as kept for `route` (a name for the route and its path's ids): per
    caller (the token's name), compared by a keyed hash of the JSON body it came with."""
    key = header()
    if key is None:
        return None
    return IdempotencyKey.of(services().hasher, caller=actor(), route=route, key=key,
                             body=request.get_json(silent=True) or {})
