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
# Due deliveries the claim looks through for ones of webhooks that are not at their share.
CLAIM_SCAN = 1000

# KEYS: the due set. ARGV: now, lease end, how many, at most this many per webhook, how many
# due ids to look through, then (webhook id, deliveries in flight) pairs. Takes due ids oldest
# first, skipping a webhook's once it has its share in flight (one slow receiver must not take
# every slot), and pushes each taken one's time to the lease end, so a worker that dies
# mid-delivery leaves it to be retried, never lost. A delivery id is `<webhook id>.<event id>`.
_CLAIM_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[5]))
local count, cap = tonumber(ARGV[3]), tonumber(ARGV[4])
local busy, taken = {}, {}
for i = 6, #ARGV, 2 do busy[ARGV[i]] = tonumber(ARGV[i + 1]) end
for _, id in ipairs(ids) do
  if #taken >= count then break end
  local webhook = string.match(id, '^[^.]+')
  local n = busy[webhook] or 0
  if n < cap then
    busy[webhook] = n + 1
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    taken[#taken + 1] = id
  end
end
return taken
"""

# KEYS: the delivery, the due set. ARGV: TTL, due time, delivery id, then field, value pairs.
# Create-if-absent, in the fan-out's MULTI: an event fanned out twice (two workers, or again
# after a crash before its acknowledgement) never resets a delivery's attempts, status or
# schedule, so it is never attempted again early nor logged twice.
_QUEUE_DELIVERY = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
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
        """Queue a new delivery, due at once, unless it is queued already (_QUEUE_DELIVERY)."""
        fields = [item for k, v in delivery.items() for item in (k, str(v))]
        pipe.execute_command("EVAL", _QUEUE_DELIVERY, 2,
                             keys.webhook_delivery(delivery["delivery_id"]), keys.webhook_due(),
                             self.retention.seconds("webhook_delivery"), due.timestamp(),
                             delivery["delivery_id"], *fields)

    def cursor(self, client: Any) -> str | None:
        """The newest event id fanned out so far (None before the first)."""
        return client.get(keys.webhook_cursor())

    def queue_cursor(self, pipe: redis.client.Pipeline, event_id: str) -> None:
        pipe.set(keys.webhook_cursor(), event_id, ex=self.retention.seconds("webhook"))

    def claim_due(self, now: datetime, lease_until: datetime, count: int,
                  per_webhook: int, busy: dict[str, int]) -> list[str]:
        """Up to `count` due deliveries, at most `per_webhook` per webhook counting the `busy`
        ones already in flight; each is leased until `lease_until`."""
        pairs = [item for webhook_id, n in busy.items() for item in (webhook_id, n)]
        return list(self._claim_due(keys=[keys.webhook_due()],
                                    args=[now.timestamp(), lease_until.timestamp(), count,
                                          per_webhook, CLAIM_SCAN, *pairs]))

    def delivery(self, delivery_id: str) -> dict[str, str]:
        return self.r.hgetall(keys.webhook_delivery(delivery_id))

    def still_queued(self, client: Any, delivery_id: str, webhook_id: str) -> bool:
        """Whether the delivery's record and its webhook are both still there (a WATCHing
        pipeline: a change before the unit's EXEC runs it again)."""
        return bool(client.exists(keys.webhook_delivery(delivery_id))
                    and client.exists(keys.webhook(webhook_id)))

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
