"""The keyed hashes of content an account asked to have removed (Cal. Bus. & Prof. Code §22581)."""

from __future__ import annotations

from typing import Any

import redis

from agegate.storage import keys
from agegate.storage.keys import Retention


class RemovalStore:
    """Reads take a client or a WATCHing pipeline; writes join a caller's MULTI pipeline."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention

    def watched_keys(self, account_hash: str) -> list[str]:
        """What a removal request WATCHes, so two requests for one item emit one event."""
        return [keys.content_removals(account_hash)]

    def already_removed(self, client: Any, account_hash: str, hashes: list[str]) -> list[bool]:
        """For each content hash, whether its removal was already requested."""
        if not hashes:
            return []
        return [bool(done) for done in client.smismember(keys.content_removals(account_hash),
                                                         hashes)]

    def queue_removed(self, pipe: redis.client.Pipeline, account_hash: str,
                      hashes: list[str]) -> None:
        """Remember newly removed content."""
        if not hashes:
            return
        key = keys.content_removals(account_hash)
        pipe.sadd(key, *hashes)
        pipe.expire(key, self.retention.seconds("content_removal"))
