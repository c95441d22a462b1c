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
from agegate.storage.outbox import Outbox
from agegate.storage.unit import transact

Identifier = tuple[str, str]

# An account keeps at most this many identifiers seen in its age checks (bounded state).
MAX_LINKED_IDENTIFIERS = 32

class IdentityStore:
    """Reads are pipelined in one round trip; writes join a caller's pipeline."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention
        self.outbox = Outbox(client, retention)

    def blocks(self, identifiers: Sequence[Identifier]) -> tuple[bool, bool]:
        """(identity-blocked, retry-blocked): whether any identifier is blocked either way.
        One round trip; the keys may live in several slots."""
        if not identifiers:
            return False, False
        pipe = self.r.pipeline(transaction=False)
        for kind, digest in identifiers:
            pipe.exists(keys.identity_block(kind, digest))
        for kind, digest in identifiers:
            pipe.exists(keys.retry_block(kind, digest))
        found = pipe.execute()
        return any(found[:len(identifiers)]), any(found[len(identifiers):])

    def queue_retry_blocks(self, pipe: redis.client.Pipeline,
                           identifiers: Sequence[Identifier]) -> None:
        """Remember an under-age answer's identifiers for the retry-block period (through the
        unit's outbox: each identifier's key lives in its own slot)."""
        until = int(time.time()) + self.retention.seconds("retry_block")
        block_keys = [keys.retry_block(kind, digest) for kind, digest in identifiers]
        if block_keys:
            self.outbox.queue(pipe, "block", {"keys": block_keys, "until": until})

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
        """Block a terminated minor's identifiers for `ttl_seconds` (capped by the table; never
        shortening a longer block), through the unit's outbox."""
        if not identifiers:
            return
        ttl = max(1, min(ttl_seconds, self.retention.seconds("identity_block_max")))
        self.outbox.queue(pipe, "block", {
            "keys": [keys.identity_block(k, h) for k, h in identifiers],
            "until": int(time.time()) + ttl})

    def linked(self, account_hash: str) -> list[Identifier]:
        """The identifiers an account used in its age checks."""
        members = self.r.zrange(keys.account_identifiers(account_hash), 0, -1)
        return [(kind, digest) for kind, _, digest in (m.partition(":") for m in members)]

    def block(self, identifiers: Sequence[Identifier], ttl_seconds: int) -> None:
        """Block identifiers now, outside any unit of work (operators and tests)."""
        def write(pipe: redis.client.Pipeline) -> None:
            pipe.multi()
            self.queue_identity_blocks(pipe, identifiers, ttl_seconds)

        transact(self.r, write, shard=0)
