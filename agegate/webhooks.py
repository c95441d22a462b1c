"""Webhook signatures, for agegate's worker (signing) and for Python receivers (verifying).

Every delivery carries:
    Agegate-Event-Id:   the event's id (the same on every retry: deduplicate on it)
    Agegate-Timestamp:  Unix seconds when this attempt was signed
    Agegate-Signature:  v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>, one `v1=` per live
                        secret, comma-separated (two while a secret is being rotated)

A receiver:
    from agegate.webhooks import verify, InvalidSignature
    try:
        event = verify(secret, request.headers, request.get_data())
    except InvalidSignature:
        return "", 400
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

TOLERANCE_SECONDS = 300
EVENT_ID = "Agegate-Event-Id"
TIMESTAMP = "Agegate-Timestamp"
SIGNATURE = "Agegate-Signature"


class InvalidSignature(ValueError):
    """The request is not a fresh delivery signed with this secret."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `timestamp.body` under `secret`."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """The Agegate-Signature header value: one `v1=` per live secret."""
    return ",".join(f"v1={signature(secret, timestamp, body)}" for secret in secrets)


def verify(secret: str, headers: Mapping[str, str], body: bytes | str, *,
           tolerance: int = TOLERANCE_SECONDS, now: float | None = None) -> dict[str, Any]:
    """The event, if `body` was signed with `secret` within `tolerance` seconds of now;
    otherwise InvalidSignature. Header names are matched case-insensitively."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    raw = body.encode() if isinstance(body, str) else bytes(body)
    stamp = lowered.get(TIMESTAMP.lower(), "")
    if not stamp.isdigit():
        raise InvalidSignature("missing or malformed Agegate-Timestamp")
    timestamp = int(stamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance (replayed or delayed)")
    expected = signature(secret, timestamp, raw)
    offered = [part.strip()[3:] for part in lowered.get(SIGNATURE.lower(), "").split(",")
               if part.strip().startswith("v1=")]
    # Compare against every offered signature, always all of them, in constant time each.
    matched = False
    for candidate in offered:
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise InvalidSignature("no v1 signature matches this secret")
    try:
        event = json.loads(raw)
    except ValueError:
        raise InvalidSignature("the body is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidSignature("the body is not a JSON object")
    return event
