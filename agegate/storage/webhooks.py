"""Webhooks: the registry, the delivery queue (a sorted set of delivery ids by next attempt
time, claimed with a visibility timeout by one Lua script) and the per-webhook delivery log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis

from agegate.storage import keys, replicas
from agegate.storage.keys import Retention

LOG_LIMIT = 200

# KEYS: the due set. ARGV: now, lease end, how many. Takes the due ids and pushes each one's
# time to the lease end, so a worker that dies mid-delivery leaves it to be retried, never lost.
_CLAIM_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


class WebhookStore:
    """Reads are plain; writes join a caller's MULTI pipeline; claims are one Lua script."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention
        self._claim_due = replicas.ConfirmedScript(client, _CLAIM_DUE)

    # -- the registry --------------------------------------------------------------------
    def read(self, client: Any, webhook_id: str) -> dict[str, Any] | None:
        raw = client.hgetall(keys.webhook(webhook_id))
        if not raw.get("webhook_id"):
            return None
        return {"webhook_id": raw["webhook_id"], "url": raw["url"],
                "events": json.loads(raw["events"]), "created_at": raw["created_at"],
                "secrets": json.loads(raw["secrets"])}

    def all(self) -> list[dict[str, Any]]:
        """Every registered webhook, oldest first."""
        ids = sorted(self.r.smembers(keys.webhooks_index()))
        pipe = self.r.pipeline(transaction=False)
        for webhook_id in ids:
            pipe.hgetall(keys.webhook(webhook_id))
        found: list[dict[str, Any]] = []
        for raw in pipe.execute():
            if raw.get("webhook_id"):
                found.append({"webhook_id": raw["webhook_id"], "url": raw["url"],
                              "events": json.loads(raw["events"]),
                              "created_at": raw["created_at"],
                              "secrets": json.loads(raw["secrets"])})
        return sorted(found, key=lambda w: (w["created_at"], w["webhook_id"]))

    def queue_write(self, pipe: redis.client.Pipeline, webhook: dict[str, Any]) -> None:
        ttl = self.retention.seconds("webhook")
        key = keys.webhook(webhook["webhook_id"])
        pipe.hset(key, mapping={"webhook_id": webhook["webhook_id"], "url": webhook["url"],
                                "events": json.dumps(webhook["events"]),
                                "created_at": webhook["created_at"],
                                "secrets": json.dumps(webhook["secrets"])})
        pipe.expire(key, ttl)
        pipe.sadd(keys.webhooks_index(), webhook["webhook_id"])
        pipe.expire(keys.webhooks_index(), ttl)

    def queue_delete(self, pipe: redis.client.Pipeline, webhook_id: str) -> None:
        """Forget a webhook and its log; its queued deliveries are dropped when next due."""
        pipe.delete(keys.webhook(webhook_id), keys.webhook_log(webhook_id))
        pipe.srem(keys.webhooks_index(), webhook_id)

    # -- deliveries ----------------------------------------------------------------------
    def queue_delivery(self, pipe: redis.client.Pipeline, delivery: dict[str, Any],
                       due: datetime) -> None:
        """Queue a new delivery, due at once."""
        key = keys.webhook_delivery(delivery["delivery_id"])
        ttl = self.retention.seconds("webhook_delivery")
        pipe.hset(key, mapping={k: str(v) for k, v in delivery.items()})
        pipe.expire(key, ttl)
        pipe.zadd(keys.webhook_due(), {delivery["delivery_id"]: due.timestamp()})
        pipe.expire(keys.webhook_due(), ttl)

    def existing(self, delivery_ids: list[str]) -> set[str]:
        """Which of these deliveries were already queued (a batch fanned out again)."""
        pipe = self.r.pipeline(transaction=False)
        for delivery_id in delivery_ids:
            pipe.exists(keys.webhook_delivery(delivery_id))
        return {d for d, found in zip(delivery_ids, pipe.execute(), strict=True) if found}

    def claim_due(self, now: datetime, lease_until: datetime, count: int) -> list[str]:
        return list(self._claim_due(keys=[keys.webhook_due()],
                                    args=[now.timestamp(), lease_until.timestamp(), count]))

    def delivery(self, delivery_id: str) -> dict[str, str]:
        return self.r.hgetall(keys.webhook_delivery(delivery_id))

    def queue_attempted(self, pipe: redis.client.Pipeline, delivery: dict[str, Any],
                        next_at: datetime | None, log_entry: dict[str, Any]) -> None:
        """Record an attempt: reschedule it (next_at) or take it off the queue; log it."""
        delivery_id = delivery["delivery_id"]
        key = keys.webhook_delivery(delivery_id)
        pipe.hset(key, mapping={"attempt": str(delivery["attempt"]),
                                "status": delivery["status"]})
        if next_at is None:
            pipe.zrem(keys.webhook_due(), delivery_id)
        else:
            pipe.zadd(keys.webhook_due(), {delivery_id: next_at.timestamp()})
        self.queue_log(pipe, delivery["webhook_id"], log_entry)

    def queue_drop(self, pipe: redis.client.Pipeline, delivery_id: str) -> None:
        """A delivery whose webhook is gone (or whose record expired)."""
        pipe.zrem(keys.webhook_due(), delivery_id)
        pipe.delete(keys.webhook_delivery(delivery_id))

    def queue_log(self, pipe: redis.client.Pipeline, webhook_id: str,
                  entry: dict[str, Any]) -> None:
        key = keys.webhook_log(webhook_id)
        pipe.lpush(key, json.dumps(entry, sort_keys=True))
        pipe.ltrim(key, 0, LOG_LIMIT - 1)
        pipe.expire(key, self.retention.seconds("webhook_log"))

    def log(self, webhook_id: str, limit: int) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.r.lrange(keys.webhook_log(webhook_id), 0,
                                                         limit - 1)]
