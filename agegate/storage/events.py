"""The events stream downstream systems read with a consumer group."""

from __future__ import annotations

from datetime import datetime

import redis

from agegate.clock import iso
from agegate.storage.keys import Retention


class EventStream:
    """XADD with retention trimming; composable in a caller's pipeline."""

    def __init__(self, client: redis.Redis, stream: str, retention: Retention) -> None:
        self.r = client
        self.stream = stream
        self.retention = retention

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
        pipe.xadd(self.stream, fields, minid=max(min_ms, 0), approximate=True)
        pipe.expire(self.stream, ttl)

    def read_all(self, count: int = 1000) -> list[dict[str, str]]:
        """Every retained event, oldest first (for operators and tests)."""
        return [fields for _, fields in self.r.xrange(self.stream, count=count)]
