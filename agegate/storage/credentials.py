"""Digital-credential requests and what their answers leave behind (keys.py, "digital
credentials"). Nothing from a credential is stored here: a request holds what this service
made (origin, nonce, the caller's ids), and an answer leaves markers and blocks of keyed hashes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import redis

from agegate.storage import keys, replicas
from agegate.storage.identities import Identifier
from agegate.storage.keys import Retention
from agegate.storage.outbox import Outbox

# An age check answered `verify` in a session remembers at most this many identifiers.
MAX_SESSION_IDENTIFIERS = 32


class CredentialStore:
    """Requests live `credential_request_seconds` and are taken once; markers and the
    per-session identifiers are written through the unit's outbox (each in its own slot)."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        self.r: Any = client
        self.retention = retention
        self.outbox = Outbox(client, retention)

    def create(self, request_id: str, record: dict[str, Any]) -> None:
        key = keys.credential_request(request_id)
        replicas.confirmed(self.r, key, lambda pipe: self.queue_create(pipe, request_id,
                                                                      record))

    def queue_create(self, pipe: Any, request_id: str, record: dict[str, Any]) -> None:
        """Store a new request (in a unit of work when it carries an Idempotency-Key)."""
        pipe.set(keys.credential_request(request_id), json.dumps(record, separators=(",", ":")),
                 ex=self.retention.seconds("credential_request"))

    def read(self, client: Any, request_id: str) -> dict[str, Any] | None:
        """The open request (None once answered or expired); read through the answering
        unit's WATCHing pipeline, which takes it (`queue_take`) with the answer's effects."""
        raw = client.get(keys.credential_request(request_id))
        return json.loads(raw) if raw else None

    def queue_take(self, pipe: redis.client.Pipeline, request_id: str) -> None:
        """Use the request up, in the unit that records its answer: a second answer (watched
        out by the first) finds nothing, and a unit that did not apply leaves it open."""
        pipe.delete(keys.credential_request(request_id))

    def passed(self, identifiers: Sequence[Identifier]) -> bool:
        """Whether a wallet proved over 18 for any of these (session, account) within the
        pass period. One round trip; the keys may live in several slots."""
        wanted = [(kind, digest) for kind, digest in identifiers if kind in ("session", "account")]
        if not wanted:
            return False
        pipe = self.r.pipeline(transaction=False)
        for kind, digest in wanted:
            pipe.exists(keys.credential_pass(kind, digest))
        return any(pipe.execute())

    def queue_pass(self, pipe: redis.client.Pipeline, identifiers: Sequence[Identifier]) -> None:
        """Mark the session and account as proven over 18 (never shortening a mark)."""
        marks = [keys.credential_pass(kind, digest) for kind, digest in identifiers
                 if kind in ("session", "account")]
        if marks:
            until = int(time.time()) + self.retention.seconds("credential_pass")
            self.outbox.queue(pipe, "block", {"keys": marks, "until": until})

    def queue_verify_session(self, pipe: redis.client.Pipeline, session_hash: str,
                             identifiers: Sequence[Identifier]) -> None:
        """Remember the device and email of an age check answered `verify` in this session."""
        ttl = self.retention.seconds("verify_session")
        for kind, digest in identifiers:
            if kind in ("device", "email"):
                self.outbox.queue(pipe, "capped_zadd", {
                    "key": keys.verify_session(session_hash), "score": time.time(),
                    "member": f"{kind}:{digest}", "cap": MAX_SESSION_IDENTIFIERS, "ttl": ttl})

    def verify_session_identifiers(self, session_hash: str) -> list[Identifier]:
        """Device and email hashes of the session's `verify` age checks of the last period."""
        key = keys.verify_session(session_hash)
        since = time.time() - self.retention.seconds("verify_session")
        members = self.r.zrangebyscore(key, since, "+inf")
        return [(kind, digest) for kind, _, digest in (m.partition(":") for m in members)]
