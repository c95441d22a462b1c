"""Deletion records: the proof that a terminated account was deleted here and downstream."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis

from agegate.clock import parse_iso
from agegate.storage import keys
from agegate.storage.keys import Retention


def decode(raw: dict[str, str]) -> dict[str, Any]:
    """A stored deletion hash as the API's deletion object."""
    return {
        "deletion_id": raw["deletion_id"],
        "account_id": raw["account_id"],
        "status": raw["status"],
        "systems": json.loads(raw["systems"]),
        "requested_at": raw["requested_at"],
        "due_at": raw["due_at"],
        "completed_at": raw.get("completed_at") or None,
        "reason": raw.get("reason") or None,
    }


class DeletionStore:
    """Reads are plain or through a WATCHing pipeline; writes join a caller's MULTI pipeline."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention

    def read(self, client: Any, deletion_id: str) -> dict[str, Any] | None:
        raw = client.hgetall(keys.deletion(deletion_id))
        return decode(raw) if raw.get("deletion_id") else None

    def for_account(self, client: Any, account_hash: str) -> str | None:
        """The account's deletion id if it was terminated."""
        return client.get(keys.account_deletion(account_hash))

    def read_many(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for deletion_id in ids:
            pipe.hgetall(keys.deletion(deletion_id))
        return [decode(raw) for raw in pipe.execute() if raw.get("deletion_id")]

    def ids(self, *, pending_only: bool, due_before: datetime | None, limit: int) -> list[str]:
        """Pending ones by due date (optionally only overdue), else all, newest first."""
        if pending_only:
            top = due_before.timestamp() if due_before else "+inf"
            return self.r.zrangebyscore(keys.DELETIONS_PENDING, "-inf", top, start=0, num=limit)
        return self.r.zrevrange(keys.DELETIONS_ALL, 0, limit - 1)

    def counts(self, now: datetime) -> tuple[int, int]:
        """(pending, overdue) for the gauges."""
        pipe = self.r.pipeline(transaction=False)
        pipe.zcard(keys.DELETIONS_PENDING)
        pipe.zcount(keys.DELETIONS_PENDING, "-inf", f"({now.timestamp()}")
        pending, overdue = pipe.execute()
        return int(pending), int(overdue)

    def queue_write(self, pipe: redis.client.Pipeline, record: dict[str, Any],
                    account_hash: str | None = None) -> None:
        """Create or rewrite a record and keep the pending/all indexes in step."""
        ttl = self.retention.seconds("deletion")
        key = keys.deletion(record["deletion_id"])
        pipe.hset(key, mapping={
            "deletion_id": record["deletion_id"],
            "account_id": record["account_id"],
            "status": record["status"],
            "systems": json.dumps(record["systems"], sort_keys=True),
            "requested_at": record["requested_at"],
            "due_at": record["due_at"],
            "completed_at": record.get("completed_at") or "",
            "reason": record.get("reason") or "",
        })
        pipe.expire(key, ttl)
        if account_hash:
            pipe.set(keys.account_deletion(account_hash), record["deletion_id"], ex=ttl)
        requested = parse_iso(record["requested_at"])
        due = parse_iso(record["due_at"])
        if record["status"] == "pending":
            pipe.zadd(keys.DELETIONS_PENDING, {record["deletion_id"]: due.timestamp()})
        else:
            pipe.zrem(keys.DELETIONS_PENDING, record["deletion_id"])
        pipe.expire(keys.DELETIONS_PENDING, ttl)
        pipe.zadd(keys.DELETIONS_ALL, {record["deletion_id"]: requested.timestamp()})
        pipe.zremrangebyscore(keys.DELETIONS_ALL, "-inf", requested.timestamp() - ttl)
        pipe.expire(keys.DELETIONS_ALL, ttl)
