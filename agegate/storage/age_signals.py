"""Platform age signals: per account, a bounded sorted set of signals (JSON with provenance)
scored by the time each expires; and a per-install index that revocations look accounts up by.

Nothing here holds a raw install id: only the keyed hash the service computes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis

from agegate.storage import keys
from agegate.storage.keys import Retention

# Account meta field: until when (Unix time) the standing age is an enhanced-assurance adult.
# Written with the age signal; scoring reads it in the meta read it already makes.
VERIFIED_ADULT_FIELD = "verified_adult_until"
# An account keeps at most this many live signals (the newest expiries win): bounded state.
MAX_SIGNALS = 32
# One install id may be reported for a few accounts (a shared family tablet), not thousands.
MAX_ACCOUNTS_PER_INSTALL = 16


class AgeSignalStore:
    """Reads take a client or a WATCHing pipeline; writes join a caller's MULTI pipeline."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention

    def live(self, client: Any, account_hash: str, now: datetime) -> list[dict[str, Any]]:
        """The account's unexpired signals, oldest expiry first."""
        raw = client.zrangebyscore(keys.age_signals(account_hash), f"({now.timestamp()}", "+inf")
        return [json.loads(item) for item in raw]

    def terminated(self, client: Any, account_hash: str) -> bool:
        """Whether the account was terminated (its deletion marker; WATCHed by the caller)."""
        return bool(client.exists(keys.account_deletion(account_hash)))

    def open_case(self, client: Any, account_hash: str) -> str | None:
        """The account's open (or awaiting-verification) age_signal case id."""
        return client.get(keys.account_open_age_case(account_hash))

    def accounts_for_installs(self, install_hashes: Iterable[str]) -> set[str]:
        """Account ids seen with any of these (hashed) install ids, in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for install_hash in install_hashes:
            pipe.zrange(keys.install_accounts(install_hash), 0, -1)
        found: set[str] = set()
        for members in pipe.execute():
            found.update(members)
        return found

    def queue_add(self, pipe: redis.client.Pipeline, account_hash: str, account_id: str,
                  signal: dict[str, Any], expires: datetime, now: datetime) -> None:
        """Store one signal; drop expired ones and the oldest beyond the cap; index its install."""
        key = keys.age_signals(account_hash)
        pipe.zadd(key, {json.dumps(signal, sort_keys=True, separators=(",", ":")):
                        expires.timestamp()})
        pipe.zremrangebyscore(key, "-inf", now.timestamp())
        pipe.zremrangebyrank(key, 0, -(MAX_SIGNALS + 1))
        ttl = self.retention.seconds("age_signal")
        pipe.expire(key, ttl)
        if signal.get("install_hash"):
            index = keys.install_accounts(signal["install_hash"])
            pipe.zadd(index, {account_id: now.timestamp()})
            pipe.zremrangebyrank(index, 0, -(MAX_ACCOUNTS_PER_INSTALL + 1))
            pipe.expire(index, ttl)

    def queue_open_case(self, pipe: redis.client.Pipeline, account_hash: str,
                        case_id: str) -> None:
        """Point the account at its age_signal case."""
        pipe.set(keys.account_open_age_case(account_hash), case_id,
                 ex=self.retention.seconds("case"))
