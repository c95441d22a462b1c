"""The append-only, hash-chained audit trail (a Redis Stream plus a head pointer).

Each entry's hash is an HMAC-SHA256, under the service secret, of the previous hash and the
entry's canonical JSON. Keyed, so someone with write access to Redis but not the secret cannot
rewrite history and re-chain it without `agegate audit verify` noticing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from agegate.storage import keys
from agegate.storage.keys import Retention

GENESIS = "0" * 64


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes a hash covers: every field but the hashes, sorted, no whitespace."""
    body = {k: entry[k] for k in ("id", "at", "actor", "action", "account_id", "details")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass
class ChainProblem:
    """Where and why the chain does not verify."""

    entry_id: str
    problem: str


class AuditLog:
    """Writes join a caller's WATCH/MULTI transaction; reads are plain."""

    def __init__(self, client: redis.Redis, secret_key: str, retention: Retention) -> None:
        self.r = client
        self._key = hashlib.sha256(("agegate/audit/" + secret_key).encode()).digest()
        self.retention = retention

    def chain_hash(self, prev_hash: str, entry: dict[str, Any]) -> str:
        """HMAC over the previous hash and the canonical entry."""
        message = prev_hash.encode() + b"\n" + canonical(entry)
        return hmac.new(self._key, message, "sha256").hexdigest()

    def read_head(self, pipe: redis.client.Pipeline) -> str:
        """Read the chain head; call before pipe.multi() so the head is WATCHed."""
        return pipe.get(keys.AUDIT_HEAD) or GENESIS

    def queue_append(
        self,
        pipe: redis.client.Pipeline,
        prev_hash: str,
        *,
        entry_id: str,
        at: datetime,
        actor: str,
        action: str,
        account_id: str | None,
        account_hash: str | None,
        details: dict[str, Any],
    ) -> dict[str, Any]:
        """Queue one entry on a MULTI pipeline; returns the entry (with its hash)."""
        entry: dict[str, Any] = {
            "id": entry_id,
            "at": at.isoformat().replace("+00:00", "Z"),
            "actor": actor,
            "action": action,
            "account_id": account_id,
            "details": details,
        }
        entry["prev_hash"] = prev_hash
        entry["hash"] = self.chain_hash(prev_hash, entry)
        ttl = self.retention.seconds("audit")
        min_ms = int(at.timestamp() * 1000) - ttl * 1000
        fields = {"entry": json.dumps(entry, sort_keys=True, separators=(",", ":"))}
        pipe.xadd(keys.AUDIT_STREAM, fields, minid=max(min_ms, 0), approximate=True)
        pipe.expire(keys.AUDIT_STREAM, ttl)
        pipe.set(keys.AUDIT_HEAD, entry["hash"], ex=ttl)
        if account_hash:
            index = keys.audit_index(account_hash)
            pipe.zadd(index, {entry_id: at.timestamp()})
            pipe.zremrangebyscore(index, "-inf", at.timestamp() - ttl)
            pipe.expire(index, ttl)
        return entry

    def _entries(self, reverse: bool, count: int = 500) -> Iterator[dict[str, Any]]:
        """Walk the stream in pages, oldest first or newest first."""
        cursor = "+" if reverse else "-"
        exclusive = False
        while True:
            start = f"({cursor}" if exclusive else cursor
            if reverse:
                page = self.r.xrevrange(keys.AUDIT_STREAM, max=start, min="-", count=count)
            else:
                page = self.r.xrange(keys.AUDIT_STREAM, min=start, max="+", count=count)
            if not page:
                return
            for stream_id, fields in page:
                yield json.loads(fields["entry"])
                cursor = stream_id
            exclusive = True

    def recent(self, account_hash: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; for one account through its index, else the whole trail."""
        if account_hash is None:
            out = []
            for entry in self._entries(reverse=True):
                out.append(entry)
                if len(out) >= limit:
                    break
            return out
        wanted = set(self.r.zrevrange(keys.audit_index(account_hash), 0, limit - 1))
        if not wanted:
            return []
        found = []
        for entry in self._entries(reverse=True):
            if entry["id"] in wanted:
                found.append(entry)
                if len(found) == len(wanted):
                    break
        return found

    def verify(self) -> tuple[int, list[ChainProblem]]:
        """Recompute every hash, oldest first; returns (entries checked, problems)."""
        problems: list[ChainProblem] = []
        expected_prev: str | None = None
        checked = 0
        for entry in self._entries(reverse=False):
            checked += 1
            if expected_prev is not None and entry.get("prev_hash") != expected_prev:
                problems.append(ChainProblem(entry.get("id", "?"), "prev_hash does not link"))
            if self.chain_hash(entry.get("prev_hash", ""), entry) != entry.get("hash"):
                problems.append(ChainProblem(entry.get("id", "?"), "hash does not match content"))
            expected_prev = entry.get("hash")
        head = self.r.get(keys.AUDIT_HEAD)
        if checked and head != expected_prev:
            problems.append(ChainProblem("head", "head does not point at the last entry"))
        return checked, problems
