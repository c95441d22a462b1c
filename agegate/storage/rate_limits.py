"""Fixed-window counters shared by every worker and replica."""

from __future__ import annotations

from typing import Any

import redis

from agegate.storage import keys

# INCR and set the window's expiry in one step, so a crash can never leave a counter unexpiring.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('TTL', KEYS[1])}
"""


class RateLimitStore:
    """One counter per (scope, client hash, window number)."""

    def __init__(self, client: redis.Redis) -> None:
        self.r: Any = client
        self._hit = client.register_script(_HIT)

    def hit(self, scope: str, client_hash: str, window_number: int,
            window_seconds: int) -> tuple[int, int]:
        """Count one hit: (hits in this window, seconds left in it)."""
        key = keys.rate_limit(scope, client_hash, window_number)
        count, ttl = self._hit(keys=[key], args=[window_seconds])
        return int(count), int(ttl)
