"""Recording who did what, hash-chained, inside the same transaction as the change itself."""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

from agegate.clock import Clock
from agegate.crypto import Hasher, new_id
from agegate.storage import unit
from agegate.storage.audit import GENESIS, AuditLog, PreparedEntry
from agegate.storage.unit import transact

__all__ = ["AuditTrail", "Chain", "ChainWriter", "transact"]

class ChainWriter:
    """This process's own audit chain. Being its only writer, it keeps the head in memory, so
    appending needs no WATCH and no read, and writers on other processes never contend."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._restart()

    def _restart(self) -> None:
        self.pid = os.getpid()
        self.chain_id = new_id("chain")
        self.head = GENESIS

    def current(self) -> tuple[str, str]:
        """(chain id, head); a forked child starts a chain of its own."""
        if self.pid != os.getpid():
            self._restart()
        return self.chain_id, self.head

    def commit(self, chain_id: str, head: str) -> None:
        """The transaction that appended up to `head` was applied."""
        if chain_id == self.chain_id:
            self.head = head

    def abandon(self) -> None:
        """Redis may or may not have applied the last append: start a fresh chain."""
        self._restart()


class Chain:
    """Appends for one transaction attempt; they become the head only once EXEC succeeds."""

    def __init__(self, trail: AuditTrail) -> None:
        self.trail = trail
        self.chain_id, self.prev_hash = trail.writer.current()

    def commit(self) -> None:
        """This attempt was applied: its last entry is the chain's head."""
        self.trail.writer.commit(self.chain_id, self.prev_hash)

    def abandon(self) -> None:
        """Nobody knows whether this attempt was applied: start a fresh chain."""
        self.trail.writer.abandon()

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
        prepared = self.trail.prepare(self.chain_id, self.prev_hash, actor=actor, action=action,
                                      account_id=account_id, details=details)
        self.trail.log.queue_append(pipe, prepared)
        self.prev_hash = prepared.hash
        return prepared.entry


class AuditTrail:
    """Service-level access to the audit log."""

    def __init__(self, log: AuditLog, hasher: Hasher, clock: Clock) -> None:
        self.log = log
        self.hasher = hasher
        self.clock = clock
        self.writer = ChainWriter()

    def prepare(
        self, chain_id: str, prev_hash: str, *, actor: str, action: str,
        account_id: str | None = None, details: dict[str, Any] | None = None,
    ) -> PreparedEntry:
        """One entry, hashed onto `prev_hash`. `details` hold no DOB, email, text or raw id."""
        return self.log.prepare(
            chain_id, prev_hash, entry_id=new_id("aud"), at=self.clock.now(), actor=actor,
            action=action, account_id=account_id,
            account_hash=self.hasher.account(account_id) if account_id else None,
            details=details or {},
        )

    def begin(self, pipe: redis.client.Pipeline) -> Chain:
        """The chain to append to within the current `transact` attempt (one per trail)."""
        work = unit.current()
        # Held until the unit of work ends, so this process appends to its chain in order.
        work.hold(self.writer.lock)
        return work.join(self, lambda: Chain(self))

    def record(
        self, actor: str, action: str, account_id: str | None = None, details: dict | None = None
    ) -> dict[str, Any]:
        """Append one entry on its own, for actions with no other write."""

        def write(pipe: redis.client.Pipeline) -> dict[str, Any]:
            chain = self.begin(pipe)
            pipe.multi()
            return chain.append(pipe, actor=actor, action=action, account_id=account_id,
                                details=details)

        return transact(self.log.r, write)

    def entries(self, account_id: str | None, limit: int) -> list[dict[str, Any]]:
        """Newest first, for one account or for all."""
        account_hash = self.hasher.account(account_id) if account_id else None
        return self.log.recent(account_hash, limit)
