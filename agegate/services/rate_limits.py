"""A fixed-window counter per client address, kept in Redis so every gunicorn worker and
every replica share one count."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import redis

from agegate.crypto import Hasher
from agegate.errors import RateLimited
from agegate.storage.keys import Retention
from agegate.storage.rate_limits import RateLimitStore

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400}
_RULE = re.compile(r"^\s*(\d+)\s*(?:per|/)\s*(\d+\s+)?(second|minute|hour|day)s?\s*$", re.I)

@dataclass(frozen=True)
class Rule:
    """`limit` hits per `window` seconds."""

    limit: int
    window: int


def parse_rule(text: str) -> Rule:
    """Parse "5 per hour", "10/minute" or "100 per 2 hours"."""
    match = _RULE.match(text or "")
    if not match:
        raise ValueError(f"not a rate limit: {text!r} (use e.g. '5 per hour')")
    count = int(match.group(2) or 1)
    rule = Rule(limit=int(match.group(1)), window=count * _UNITS[match.group(3).lower()])
    if rule.limit < 1:
        raise ValueError("a rate limit must allow at least one request")
    return rule


class RateLimiter:
    """Counts hits per (scope, client address); addresses are kept only as keyed hashes."""

    def __init__(self, client: redis.Redis, hasher: Hasher, retention: Retention) -> None:
        self.store = RateLimitStore(client)
        self.hasher = hasher
        self.retention = retention

    def hit(self, scope: str, address: str, rule: Rule) -> None:
        """Count one request; raise RateLimited (with Retry-After) once over the limit."""
        window = min(rule.window, self.retention.seconds("rate_limit"))
        slot = int(time.time()) // window
        count, ttl = self.store.hit(scope, self.hasher.short("client", address), slot, window)
        if count > rule.limit:
            raise RateLimited(retry_after=ttl if ttl > 0 else window)
