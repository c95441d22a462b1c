"""The admin-read mail outbox, used when no SMTP server is configured.

A queued mail holds a parent's address and a live code, so each one expires on its own day
(Retention.outbox_days after it was queued); queuing another never extends it.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from agegate.storage import keys
from agegate.storage.keys import Retention

OUTBOX_MAX = 1000


class MailOutbox:
    """Each mail its own key with its own TTL; a newest-first list of ids, capped in length."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention

    def push(self, entry: dict[str, Any]) -> None:
        """Queue one mail (its own TTL) and index it; the oldest beyond the cap leave the index."""
        ttl = self.retention.seconds("outbox")
        pipe = self.r.pipeline(transaction=True)
        pipe.set(keys.outbox_message(entry["id"]), json.dumps(entry), ex=ttl)
        pipe.lpush(keys.outbox_index(), entry["id"])
        pipe.ltrim(keys.outbox_index(), 0, OUTBOX_MAX - 1)
        # The index holds ids only, so keeping it as long as its newest mail leaks nothing.
        pipe.expire(keys.outbox_index(), ttl)
        pipe.execute()

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest mails still kept, newest first; ids whose mail expired leave the index."""
        ids = self.r.lrange(keys.outbox_index(), 0, limit - 1)
        if not ids:
            return []
        raws = self.r.mget([keys.outbox_message(mail_id) for mail_id in ids])
        for mail_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                self.r.lrem(keys.outbox_index(), 1, mail_id)
        return [json.loads(raw) for raw in raws if raw is not None]
