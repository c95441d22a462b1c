"""Redis access only: key names live in keys.py; every write can join a caller's pipeline."""

from __future__ import annotations

import redis

from agegate.storage.keys import Retention


def connect(url: str) -> redis.Redis:
    """A client with timeouts, so a stuck Redis becomes a 503 rather than a hung worker."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=30,
    )


__all__ = ["Retention", "connect"]
