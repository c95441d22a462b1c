"""Deletion records: the proof that a terminated account was deleted here and downstream.

A record lives in its account's shard (the deletion id names it), beside that shard's pending
and all indexes; listings merge the shards."""

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
        """Pending ones by due date (optionally only overdue), else all, newest first; merged
        from every shard's index."""
        pipe = self.r.pipeline(transaction=False)
        for shard in keys.all_shards():
            if pending_only:
                top = due_before.timestamp() if due_before else "+inf"
                pipe.zrangebyscore(keys.deletions_pending(shard), "-inf", top, start=0,
                                   num=limit, withscores=True)
            else:
                pipe.zrevrange(keys.deletions_all(shard), 0, limit - 1, withscores=True)
        merged = [(score, member) for page in pipe.execute() for member, score in page]
        merged.sort(reverse=not pending_only)
        return [member for _, member in merged[:limit]]

    def counts(self, now: datetime) -> tuple[int, int]:
        """(pending, overdue) for the gauges, summed over the shards."""
        pipe = self.r.pipeline(transaction=False)
        for shard in keys.all_shards():
            pipe.zcard(keys.deletions_pending(shard))
            pipe.zcount(keys.deletions_pending(shard), "-inf", f"({now.timestamp()}")
        counts = pipe.execute()
        return int(sum(counts[0::2])), int(sum(counts[1::2]))

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
        shard = keys.shard_of_id(record["deletion_id"])
        if shard is None:
            raise ValueError("a deletion id names its shard")
        pending, everything = keys.deletions_pending(shard), keys.deletions_all(shard)
        if record["status"] == "pending":
            pipe.zadd(pending, {record["deletion_id"]: due.timestamp()})
        else:
            pipe.zrem(pending, record["deletion_id"])
        pipe.expire(pending, ttl)
        pipe.zadd(everything, {record["deletion_id"]: requested.timestamp()})
        pipe.zremrangebyscore(everything, "-inf", requested.timestamp() - ttl)
        pipe.expire(everything, ttl)
