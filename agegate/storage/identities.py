"""Retry blocks (after an under-age answer) and identity blocks (terminated minors).

Only keyed hashes of identifiers are ever written; a key's existence is the whole record.
An identifier is a `(kind, keyed_hash)` pair: kind is account, device, email or session.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis

from agegate.storage import keys
from agegate.storage.keys import Retention

Identifier = tuple[str, str]

# An account keeps at most this many identifiers seen in its age checks (bounded state).
MAX_LINKED_IDENTIFIERS = 32

# Set a block, but never shorten one that already runs longer (e.g. until an 18th birthday).
_EXTEND_BLOCK = """
local ttl = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  if redis.call('TTL', key) < ttl then redis.call('SET', key, '1', 'EX', ttl) end
end
return #KEYS
"""


class IdentityStore:
    """Reads are pipelined in one round trip; writes join a caller's pipeline."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention
        self._extend_block = client.register_script(_EXTEND_BLOCK)

    @staticmethod
    def block_keys(identifiers: Sequence[Identifier]) -> list[str]:
        """Every key whose existence would refuse these identifiers (a check WATCHes them)."""
        return [*(keys.identity_block(k, h) for k, h in identifiers),
                *(keys.retry_block(k, h) for k, h in identifiers)]

    def blocks(self, client: Any, identifiers: Sequence[Identifier]) -> tuple[bool, bool]:
        """(identity-blocked, retry-blocked): whether any identifier is blocked either way."""
        if not identifiers:
            return False, False
        identity = client.exists(*(keys.identity_block(k, h) for k, h in identifiers))
        retry = client.exists(*(keys.retry_block(k, h) for k, h in identifiers))
        return identity > 0, retry > 0

    def queue_retry_blocks(self, pipe: redis.client.Pipeline,
                           identifiers: Sequence[Identifier]) -> None:
        """Remember an under-age answer's identifiers for the retry-block period."""
        ttl = self.retention.seconds("retry_block")
        for kind, digest in identifiers:
            pipe.set(keys.retry_block(kind, digest), "1", ex=ttl)

    def queue_link(self, pipe: redis.client.Pipeline, account_hash: str,
                   identifiers: Sequence[Identifier], now: float | None = None) -> None:
        """Remember which identifiers an account used (newest kept, bounded), so terminating
        it can block them."""
        linked = {f"{kind}:{digest}": now or time.time()
                  for kind, digest in identifiers if kind != "account"}
        if not linked:
            return
        key = keys.account_identifiers(account_hash)
        pipe.zadd(key, linked)  # type: ignore[arg-type]
        pipe.zremrangebyrank(key, 0, -(MAX_LINKED_IDENTIFIERS + 1))
        pipe.expire(key, self.retention.seconds("account"))

    def queue_identity_blocks(
        self, pipe: redis.client.Pipeline, identifiers: Sequence[Identifier], ttl_seconds: int
    ) -> None:
        """Block a terminated minor's identifiers for `ttl_seconds` (capped by the table)."""
        if not identifiers:
            return
        ttl = max(1, min(ttl_seconds, self.retention.seconds("identity_block_max")))
        block_keys = [keys.identity_block(k, h) for k, h in identifiers]
        self._extend_block(keys=block_keys, args=[ttl], client=pipe)

    def linked(self, account_hash: str) -> list[Identifier]:
        """The identifiers an account used in its age checks."""
        members = self.r.zrange(keys.account_identifiers(account_hash), 0, -1)
        return [(kind, digest) for kind, _, digest in (m.partition(":") for m in members)]
