"""Webhook signatures: Standard Webhooks (standardwebhooks.com), signed with its own library.

Every delivery carries:
    webhook-id:         the event's id (the same on every retry: deduplicate on it)
    webhook-timestamp:  Unix seconds when this attempt was signed
    webhook-signature:  `v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`, one entry per live
                        secret, space-separated (two for 24 hours after a rotation)

Secrets are `whsec_<base64 of a 32-byte key>`. We sign with the `standardwebhooks` package, so a
receiver verifies with any of its libraries (Python, JavaScript, Go, Java, ...):

    from standardwebhooks import Webhook
    event = Webhook(secret).verify(request.get_data(), dict(request.headers))
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime

from standardwebhooks import Webhook

EVENT_ID = "webhook-id"
TIMESTAMP = "webhook-timestamp"
SIGNATURE = "webhook-signature"
SECRET_PREFIX = "whsec_"
KEY_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and the standard base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def sign(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header value: one `v1,` entry per secret, space-separated (empty
    when there is no secret: the caller must refuse to send that)."""
    at = datetime.fromtimestamp(timestamp, UTC)
    return " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets_)
