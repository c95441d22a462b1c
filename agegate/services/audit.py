"""Recording who did what, hash-chained, inside the same transaction as the change itself."""

from __future__ import annotations

from typing import Any

import redis

from agegate.clock import Clock
from agegate.crypto import Hasher, new_id
from agegate.storage.audit import AuditLog


class Chain:
    """The audit head as read under WATCH; appends chain onto it within one MULTI."""

    def __init__(self, trail: AuditTrail, prev_hash: str) -> None:
        self.trail = trail
        self.prev_hash = prev_hash

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
        account_hash = self.trail.account_hash(account_id) if account_id else None
        entry = self.trail.log.queue_append(
            pipe,
            self.prev_hash,
            entry_id=new_id("aud"),
            at=self.trail.clock.now(),
            actor=actor,
            action=action,
            account_id=account_id,
            account_hash=account_hash,
            details=details or {},
        )
        self.prev_hash = entry["hash"]
        return entry


class AuditTrail:
    """Service-level access to the audit log."""

    def __init__(self, log: AuditLog, hasher: Hasher, clock: Clock) -> None:
        self.log = log
        self.hasher = hasher
        self.clock = clock

    def account_hash(self, account_id: str) -> str:
        return self.hasher.short("account", account_id)

    def begin(self, pipe: redis.client.Pipeline) -> Chain:
        """Read (and so WATCH) the head; call before pipe.multi()."""
        return Chain(self, self.log.read_head(pipe))

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
        account_hash = self.account_hash(account_id) if account_id else None
        return self.log.recent(account_hash, limit)


def transact(client: redis.Redis, build: Any, *watch: str) -> Any:
    """Run `build(pipe)` as WATCH(audit head, *watch) ... MULTI ... EXEC, retrying on conflict.

    `build` reads first (the pipe is in immediate mode), calls pipe.multi(), then queues writes;
    its return value is returned. Every write that belongs together lands or none does.
    """
    from agegate.storage.keys import AUDIT_HEAD

    return client.transaction(build, AUDIT_HEAD, *watch, value_from_callable=True)
