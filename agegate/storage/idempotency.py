"""Idempotency-Key for the writes that create something (a webhook, an assurance record).

A key is kept per caller and route (a keyed hash of the token's name, the route and the key:
no raw key, no raw id), in the shard of the unit of work that creates, and is read and written
inside that unit: the first attempt's create and its key land together or not at all, and a
second attempt sees the key under WATCH. Kept with it: a keyed hash of the request's body (a
retry with another body is refused, 422 `idempotency_key_reused`) and the ids the service needs
to answer the retry as the first time (never the answer's secrets: a webhook's secret is found
again in the webhook's own sealed copy). TTL: `Retention.idempotency_days`.

POST .../signals has its own, older form of the same thing: the signal batch's applied-marker
(services/accounts.py), in the account's slot script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agegate.crypto import Hasher
from agegate.errors import IdempotencyKeyReused
from agegate.storage import keys
from agegate.storage.keys import Retention


@dataclass(frozen=True)
class IdempotencyKey:
    """A request's Idempotency-Key as kept: keyed hashes of (caller, route, key) and of the
    request's body in canonical form."""

    key_hash: str
    body_hash: str

    @classmethod
    def of(cls, hasher: Hasher, *, caller: str, route: str, key: str,
           body: Any) -> IdempotencyKey:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return cls(hasher.short("idempotency_key", f"{caller}\x00{route}\x00{key}"),
                   hasher.short("idempotency_body", canonical)[:16])


class IdempotencyStore:
    """Reads join a unit's WATCHing pipeline (before `multi()`); writes join its MULTI."""

    def __init__(self, hasher: Hasher, retention: Retention) -> None:
        self.hasher = hasher
        self.retention = retention

    def first(self, pipe: Any, shard: int, key: IdempotencyKey) -> dict[str, Any] | None:
        """What the key's first application kept (its ids), or None when it is new; WATCHed,
        so a concurrent first application makes this attempt read again. Raises
        IdempotencyKeyReused when the key came with another body."""
        name = keys.idempotency(shard, key.key_hash)
        pipe.watch(name)
        raw = pipe.get(name)
        if raw is None:
            return None
        kept = json.loads(raw)
        if kept["h"] != key.body_hash:
            raise IdempotencyKeyReused()
        return dict(kept["r"])

    def queue_remember(self, pipe: Any, shard: int, key: IdempotencyKey,
                       ids: dict[str, Any]) -> None:
        """Keep the key with what answers its retries (ids and keyed fingerprints only)."""
        pipe.set(keys.idempotency(shard, key.key_hash),
                 json.dumps({"h": key.body_hash, "r": ids}, separators=(",", ":")),
                 ex=self.retention.seconds("idempotency"))

    def fingerprint(self, value: str) -> str:
        """A keyed fingerprint of a value the retry's answer must find again (a secret)."""
        return self.hasher.short("idempotency_ref", value)[:16]
