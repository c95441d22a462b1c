"""Console sessions and the sign-in failure counter (Redis only).

Every write here is confirmed by the replicas AGEGATE_REDIS_MIN_REPLICAS asks for
(storage/replicas.py, `confirmed`), like any other acknowledged write: a sign-out whose
revocation a failover lost would bring the signed-out session back.
"""

from __future__ import annotations

from typing import Any

import redis

from agegate.storage import keys, replicas

# Count and (on the first count) start the window in one step, so parallel attempts each get
# their own number and no key is ever left without an expiry.
_COUNT_ATTEMPT = """
local n = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('TTL', KEYS[1])}
"""

# KEYS: the session. ARGV: TTL, then field, value pairs. The record and its expiry together.
_CREATE = """
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


class ConsoleStore:
    """Server-side session records, so signing out revokes a cookie even before it expires."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._count = replicas.ConfirmedScript(client, _COUNT_ATTEMPT)
        self._create = replicas.ConfirmedScript(client, _CREATE)

    def create(self, session_id: str, record: dict[str, str], ttl_seconds: int) -> None:
        """Write a session record with its TTL in one step."""
        self._create(keys=[keys.console_session(session_id)],
                     args=[ttl_seconds, *(item for pair in record.items() for item in pair)])

    def get(self, session_id: str) -> dict[str, Any] | None:
        """The session record, or None when it expired or was revoked."""
        record = self.r.hgetall(keys.console_session(session_id))
        return {_text(k): _text(v) for k, v in record.items()} or None

    def delete(self, session_id: str) -> None:
        """Revoke a session."""
        self._delete(keys.console_session(session_id))

    def count_attempt(self, client_hash: str, window_seconds: int) -> tuple[int, int]:
        """Count one sign-in attempt before the token is checked; returns (its number in the
        window, seconds left in the window). The window starts at the first attempt."""
        count, ttl = self._count(keys=[keys.console_login_failures(client_hash)],
                                 args=[window_seconds])
        return int(count), max(int(ttl), 1)

    def clear_failures(self, client_hash: str) -> None:
        """A successful sign-in resets the counter for that address."""
        self._delete(keys.console_login_failures(client_hash))

    def _delete(self, key: str) -> None:
        replicas.confirmed(self.r, key, lambda pipe: pipe.delete(key))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
