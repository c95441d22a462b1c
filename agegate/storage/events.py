"""The events stream downstream systems read with a consumer group.

The contract names one stream (AGEGATE_EVENTS_STREAM). A unit of work writes one shard's slot,
so it queues its events in that shard's outbox (storage/outbox.py), which relays each to the
stream exactly once, right after the unit and, after a crash, from `agegate worker`.
"""

from __future__ import annotations

from datetime import datetime

import redis

from agegate.clock import iso
from agegate.storage.keys import Retention
from agegate.storage.outbox import Outbox


class EventStream:
    """Events with retention trimming, queued in a caller's unit of work."""

    def __init__(self, client: redis.Redis, stream: str, retention: Retention) -> None:
        self.r = client
        self.stream = stream
        self.retention = retention
        self.outbox = Outbox(client, retention)

    def queue_emit(
        self,
        pipe: redis.client.Pipeline,
        event_type: str,
        *,
        account_id: str,
        at: datetime,
        **ids: str,
    ) -> None:
        """Queue one event: type, account_id, at, and the ids it concerns."""
        ttl = self.retention.seconds("events")
        fields = {
            "type": event_type,
            "account_id": account_id,
            "at": iso(at),
            **{k: v for k, v in ids.items() if v is not None},
        }
        min_ms = int(at.timestamp() * 1000) - ttl * 1000
        self.outbox.queue(pipe, "event", {"stream": self.stream, "fields": fields,
                                          "min_id": max(min_ms, 0), "ttl": ttl})

    def read_all(self, count: int = 1000) -> list[dict[str, str]]:
        """Every retained event, oldest first (for operators and tests)."""
        return [fields for _, fields in self.r.xrange(self.stream, count=count)]
