"""The admin-read mail outbox, used when no SMTP server is configured."""

from __future__ import annotations

import json
from typing import Any

import redis

from agegate.storage import keys
from agegate.storage.keys import Retention

OUTBOX_MAX = 1000


class MailOutbox:
    """A capped list, newest first, that lives only as long as a code does."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention

    def push(self, entry: dict[str, Any]) -> None:
        """Add one message, trim to the cap and refresh the TTL in one transaction."""
        pipe = self.r.pipeline(transaction=True)
        pipe.lpush(keys.OUTBOX, json.dumps(entry))
        pipe.ltrim(keys.OUTBOX, 0, OUTBOX_MAX - 1)
        pipe.expire(keys.OUTBOX, self.retention.seconds("outbox"))
        pipe.execute()

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """Newest first."""
        return [json.loads(raw) for raw in self.r.lrange(keys.OUTBOX, 0, limit - 1)]
