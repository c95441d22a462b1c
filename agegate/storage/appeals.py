"""Appeals: the appeal record, the account's one open appeal, the member's statement (kept with
the case), and the identifiers a termination blocked (kept so an overturned appeal can lift the
blocks; keyed hashes only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

from agegate.storage import keys
from agegate.storage.identities import Identifier
from agegate.storage.keys import Retention

FIELDS = ("appeal_id", "account_id", "case_id", "status", "outcome", "due_at", "created_at",
          "decided_at", "account_status")


def decode(raw: dict[str, str]) -> dict[str, Any]:
    """A stored appeal hash as a dict (empty strings as None)."""
    return {name: (raw.get(name) or None) for name in FIELDS}


class AppealStore:
    """Reads take a client or a WATCHing pipeline; writes join a caller's MULTI pipeline."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention

    # -- appeals -------------------------------------------------------------------------
    def read(self, client: Any, appeal_id: str) -> dict[str, Any] | None:
        raw = client.hgetall(keys.appeal(appeal_id))
        return decode(raw) if raw.get("appeal_id") else None

    def open_appeal(self, client: Any, account_hash: str) -> str | None:
        return client.get(keys.account_open_appeal(account_hash))

    def statement(self, client: Any, account_hash: str, case_id: str) -> str | None:
        return client.hget(keys.appeal_statements(account_hash), case_id)

    def queue_write(self, pipe: redis.client.Pipeline, record: dict[str, Any]) -> None:
        key = keys.appeal(record["appeal_id"])
        pipe.hset(key, mapping={name: "" if record.get(name) is None else str(record[name])
                                for name in FIELDS})
        pipe.expire(key, self.retention.seconds("appeal"))

    def queue_open(self, pipe: redis.client.Pipeline, account_hash: str, appeal_id: str,
                   case_id: str, statement: str) -> None:
        """Mark the account's open appeal and keep the statement as long as the case lives."""
        ttl = self.retention.seconds("case")
        pipe.set(keys.account_open_appeal(account_hash), appeal_id, ex=ttl)
        key = keys.appeal_statements(account_hash)
        pipe.hset(key, case_id, statement)
        pipe.expire(key, ttl)

    def queue_close(self, pipe: redis.client.Pipeline, account_hash: str) -> None:
        pipe.delete(keys.account_open_appeal(account_hash))

    # -- what a termination blocked ------------------------------------------------------
    def queue_keep_blocked(self, pipe: redis.client.Pipeline, account_hash: str,
                           identifiers: Sequence[Identifier], block_seconds: int) -> None:
        """Remember which identifiers a termination blocked, as long as the blocks can last."""
        if not identifiers:
            return
        key = keys.terminated_identifiers(account_hash)
        pipe.sadd(key, *[f"{kind}:{digest}" for kind, digest in identifiers])
        ttl = min(max(block_seconds, 1), self.retention.seconds("terminated_identifiers"))
        pipe.expire(key, ttl)

    def blocked(self, client: Any, account_hash: str) -> list[Identifier]:
        members = client.smembers(keys.terminated_identifiers(account_hash))
        return [(kind, digest) for kind, _, digest in (m.partition(":") for m in sorted(members))]

    def queue_lift(self, pipe: redis.client.Pipeline, account_hash: str,
                   identifiers: Sequence[Identifier]) -> None:
        """Lift a termination's identity blocks and forget the record of them."""
        if identifiers:
            pipe.delete(*[keys.identity_block(kind, digest) for kind, digest in identifiers])
        pipe.delete(keys.terminated_identifiers(account_hash))

    def queue_reinstate(self, pipe: redis.client.Pipeline, account_hash: str) -> None:
        """Drop the termination marker so the account can be used again (the deletion record,
        the proof of what was deleted, stays)."""
        pipe.delete(keys.account_deletion(account_hash))
