"""Recording who did what, hash-chained, inside the same transaction as the change itself."""

from __future__ import annotations

import os
import secrets
import threading
from typing import Any

import redis

from agegate.clock import Clock
from agegate.crypto import Hasher, new_id
from agegate.storage import keys, unit
from agegate.storage.audit import GENESIS, AuditLog, PreparedEntry
from agegate.storage.unit import transact

__all__ = ["AuditTrail", "Chain", "ChainWriter", "transact"]

class ChainWriter:
    """This process's own audit chains, one per shard and keyspace. Being their only writer, it
    keeps each head in memory, so appending needs no WATCH and no read, and writers on other
    processes never contend. The test keyspace's audit streams have chains of their own: a
    live chain never continues from a test entry (which expires within a day)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pid = os.getpid()
        self.chains: dict[tuple[str, int], tuple[str, str, str]] = {}

    def current(self, shard: int) -> tuple[str, str, str]:
        """(chain id, head, the head's time) in `shard`; a forked child starts chains of its
        own."""
        if self.pid != os.getpid():
            self.pid, self.chains = os.getpid(), {}
        where = _where(shard)
        if where not in self.chains:
            self.chains[where] = (new_id("chain"), GENESIS, "")
        return self.chains[where]

    def commit(self, shard: int, chain_id: str, head: str, head_at: str) -> None:
        """The transaction that appended up to `head` (written at `head_at`) was applied."""
        if self.chains.get(_where(shard), ("", "", ""))[0] == chain_id:
            self.chains[_where(shard)] = (chain_id, head, head_at)

    def abandon(self, shard: int) -> None:
        """Redis may or may not have applied the last append: start a fresh chain there."""
        self.chains.pop(_where(shard), None)


def _where(shard: int) -> tuple[str, int]:
    """A chain's place: the keyspace's prefix and the shard (storage/keyspace.py)."""
    return keys.prefix(), shard


class Chain:
    """Appends for one transaction attempt; they become the head only once EXEC succeeds."""

    def __init__(self, trail: AuditTrail, shard: int) -> None:
        self.trail = trail
        self.shard = shard
        self.chain_id, self.prev_hash, self.prev_at = trail.writer.current(shard)

    def commit(self) -> None:
        """This attempt was applied: its last entry is the chain's head."""
        self.trail.writer.commit(self.shard, self.chain_id, self.prev_hash, self.prev_at)

    def abandon(self) -> None:
        """Nobody knows whether this attempt was applied: start a fresh chain."""
        self.trail.writer.abandon(self.shard)

    def append(
        self,
        pipe: redis.client.Pipeline,
        *,
        actor: str,
        action: str,
        account_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue an entry. `details` must hold no DOB, email, message text or raw identifier."""
        prepared = self.trail.prepare(self.shard, self.chain_id, self.prev_hash, actor=actor,
                                      action=action, account_id=account_id, details=details,
                                      prev_at=self.prev_at)
        self.trail.log.queue_append(pipe, prepared)
        self.prev_hash, self.prev_at = prepared.hash, prepared.entry["at"]
        return prepared.entry


class AuditTrail:
    """Service-level access to the audit log."""

    def __init__(self, log: AuditLog, hasher: Hasher, clock: Clock) -> None:
        self.log = log
        self.hasher = hasher
        self.clock = clock
        self.writer = ChainWriter()

    def prepare(
        self, shard: int, chain_id: str, prev_hash: str, *, actor: str, action: str,
        account_id: str | None = None, details: dict[str, Any] | None = None,
        prev_at: str = "",
    ) -> PreparedEntry:
        """One entry, hashed onto `prev_hash` (written at `prev_at`). `details` hold no DOB,
        email, text or raw id."""
        return self.log.prepare(
            shard, chain_id, prev_hash, prev_at=prev_at, entry_id=new_id("aud"),
            at=self.clock.now(), actor=actor,
            action=action, account_id=account_id,
            account_hash=self.hasher.account(account_id) if account_id else None,
            details=details or {},
        )

    def begin(self, pipe: redis.client.Pipeline) -> Chain:
        """The chain to append to within the current `transact` attempt (one per trail)."""
        work = unit.current()
        # Held until the unit of work ends, so this process appends to its chain in order.
        work.hold(self.writer.lock)
        return work.join(self, lambda: Chain(self, work.shard))

    def record(
        self, actor: str, action: str, account_id: str | None = None, details: dict | None = None
    ) -> dict[str, Any]:
        """Append one entry on its own, for actions with no other write."""

        def write(pipe: redis.client.Pipeline) -> dict[str, Any]:
            chain = self.begin(pipe)
            pipe.multi()
            return chain.append(pipe, actor=actor, action=action, account_id=account_id,
                                details=details)

        # Beside the account's own records when there is one, else in any shard.
        shard = (keys.shard_of(self.hasher.account(account_id)) if account_id
                 else secrets.randbelow(keys.SHARDS))
        return transact(self.log.r, write, shard=shard, reads=False)

    def entries(self, account_id: str | None, limit: int) -> list[dict[str, Any]]:
        """Newest first, for one account or for all."""
        account_hash = self.hasher.account(account_id) if account_id else None
        return self.log.recent(account_hash, limit)
