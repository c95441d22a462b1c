"""Age-assurance records: the evidence of each step-up check, kept for a regulator.

A record is one JSON string in its shard (the id names the shard), listed in the shard's index
by time and, when it concerns an account, in the account's own list. All three live for
`Retention.assurance_days` and none is an account key, so termination leaves them: they carry a
keyed account reference, never an account id, document number, image, estimated age or date of
birth.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import redis

from agegate.storage import keys
from agegate.storage.keys import Retention

# Account meta fields: the jurisdiction whose age check answered `verify` (the account waits as
# pending_assurance; a result that names none is judged against it), and when a highly
# effective over_threshold result last counted (a later check does not send it back to wait).
PENDING_JURISDICTION_FIELD = "assurance_jurisdiction"
ASSURED_FIELD = "assured_at"
PENDING = "pending_assurance"


def status_after_restriction(meta: dict[str, str]) -> str:
    """What a lifted restriction returns an account to: still waiting for assurance when an age
    check asked for it and no result has admitted it yet, else active."""
    waiting = meta.get(PENDING_JURISDICTION_FIELD) and not meta.get(ASSURED_FIELD)
    return PENDING if waiting else "active"


class AssuranceStore:
    """Reads take a client or a WATCHing pipeline; writes join a caller's MULTI pipeline."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention

    def queue_add(self, pipe: redis.client.Pipeline, record: dict[str, Any],
                  account_hash: str | None, now: datetime) -> None:
        """Store one record, index it, and list it on its account (all in the record's shard)."""
        ttl = self.retention.seconds("assurance")
        shard = keys.shard_of_id(record["assurance_id"])
        assert shard is not None, "assurance ids name their shard"
        stamp = now.timestamp()
        pipe.set(keys.assurance_record(record["assurance_id"]),
                 json.dumps(record, sort_keys=True, separators=(",", ":")), ex=ttl)
        for key in [keys.assurance_index(shard)] + (
                [keys.account_assurance(account_hash)] if account_hash else []):
            pipe.zadd(key, {record["assurance_id"]: stamp})
            pipe.zremrangebyscore(key, "-inf", f"({stamp - ttl}")
            pipe.expire(key, ttl)

    def _read(self, client: Any, ids: list[str]) -> list[dict[str, Any]]:
        """Records by id, all of one shard (one MGET in one slot); expired ones are skipped."""
        if not ids:
            return []
        names = [keys.assurance_record(i) for i in ids]
        # redis-py's cluster pipeline refuses `mget`; the command itself is fine in one slot.
        return [json.loads(raw) for raw in client.execute_command("MGET", *names) if raw]

    def read_one(self, client: Any, assurance_id: str) -> dict[str, Any] | None:
        """One record by id (None once it expired)."""
        raw = client.get(keys.assurance_record(assurance_id))
        return json.loads(raw) if raw else None

    def for_account(self, account_hash: str) -> list[dict[str, Any]]:
        """The account's records, newest first."""
        ids = self.r.zrevrange(keys.account_assurance(account_hash), 0, -1)
        return self._read(self.r, ids)

    def between(self, start: datetime, end: datetime, batch: int = 500
                ) -> Iterator[dict[str, Any]]:
        """Every record recorded in [start, end), shard by shard, oldest first in each."""
        for shard in keys.all_shards():
            offset = 0
            while True:
                ids = self.r.zrangebyscore(keys.assurance_index(shard), start.timestamp(),
                                           f"({end.timestamp()}", start=offset, num=batch)
                yield from self._read(self.r, ids)
                if len(ids) < batch:
                    break
                offset += batch
