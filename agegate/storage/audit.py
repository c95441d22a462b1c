"""The append-only, hash-chained audit trail: one Redis Stream, many single-writer chains.

Each writer process keeps its own chain (an id, and the last hash in memory), so an append needs
no WATCH and no read: it joins the caller's MULTI as plain writes, and writers never contend.
Each entry's hash is an HMAC-SHA256, under the service secret, of the previous hash in its chain
and the entry's canonical JSON. Keyed, so someone with write access to Redis but not the secret
cannot rewrite history and re-chain it without `agegate audit verify` noticing; each chain's
last hash is also kept in Redis, so cutting entries off the end of a chain is noticed as well.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from agegate.clock import iso
from agegate.crypto import key_id, split_keys
from agegate.storage import keys
from agegate.storage.keys import Retention

GENESIS = "0" * 64
# One account's index keeps its newest entries; the stream keeps everything for the retention.
MAX_ACCOUNT_ENTRIES = 1000

# The append as one Lua script inside the caller's MULTI. The per-account index holds the entries
# themselves, newest first, so one account's trail is a single range read rather than a scan.
# Inside a script every write is also written to the AOF and costs ~10x a read, so the shared
# stream and heads get their TTL rewritten only once it has run down by a minute (of six years),
# and the index is trimmed only when it is over its cap.
_APPEND = """
local function refresh_ttl(key, ttl)
  local slack = math.min(60, math.floor(tonumber(ttl) / 1000))
  if redis.call('TTL', key) < tonumber(ttl) - slack then redis.call('EXPIRE', key, ttl) end
end
local function audit_append(stream, heads, index, entry, minid, ttl, chain, hash, cap)
  redis.call('XADD', stream, 'MINID', '~', minid, '*', 'entry', entry)
  refresh_ttl(stream, ttl)
  redis.call('HSET', heads, chain, hash)
  refresh_ttl(heads, ttl)
  if index ~= '' then
    if redis.call('LPUSH', index, entry) > tonumber(cap) then
      redis.call('LTRIM', index, 0, tonumber(cap) - 1)
    end
    redis.call('EXPIRE', index, ttl)
  end
end
-- KEYS: stream, heads, account index ("" for none). ARGV: entry JSON, MINID, TTL, chain id,
-- entry hash, index cap.
audit_append(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return 1
"""


@dataclass(frozen=True)
class PreparedEntry:
    """An entry hashed onto its chain and encoded, with the arguments its append needs."""

    entry: dict[str, Any]
    encoded: str
    index: str  # the account's index key, or "" for none
    min_id: int
    ttl: int

    @property
    def hash(self) -> str:
        return str(self.entry["hash"])


HASHED_FIELDS = ("id", "chain", "at", "actor", "action", "account_id", "details")
# Entries written since key rotation came in name the key that hashed them (hashed too, so it
# cannot be swapped); older entries have no key_id and verify under whichever live key fits.
KEY_ID_FIELD = "key_id"


_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes a hash covers: every field but the hashes, sorted, no whitespace."""
    body = {k: entry.get(k) for k in HASHED_FIELDS}
    if KEY_ID_FIELD in entry:
        body[KEY_ID_FIELD] = entry[KEY_ID_FIELD]
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass
class ChainProblem:
    """Where and why the chain does not verify."""

    entry_id: str
    problem: str


class AuditLog:
    """Writes join a caller's WATCH/MULTI transaction; reads are plain."""

    def __init__(self, client: redis.Redis, secret_key: str | Sequence[str],
                 retention: Retention) -> None:
        self.r = client
        # Live keys by id, primary first: the primary hashes new entries, all verify.
        self._keys = {key_id(secret): hmac.new(
            hashlib.sha256(("agegate/audit/" + secret).encode()).digest(),
            digestmod=hashlib.sha256) for secret in split_keys(secret_key)}
        self._primary = next(iter(self._keys))
        self.retention = retention

    def _mac(self, kid: str, prev_hash: str, entry: dict[str, Any]) -> str:
        mac = self._keys[kid].copy()
        mac.update(prev_hash.encode() + b"\n" + canonical(entry))
        return str(mac.hexdigest())

    def chain_hash(self, prev_hash: str, entry: dict[str, Any]) -> str:
        """HMAC over the previous hash and the canonical entry, under the key it names."""
        return self._mac(entry.get(KEY_ID_FIELD, self._primary), prev_hash, entry)

    def hash_verifies(self, entry: dict[str, Any]) -> bool:
        """Whether the entry's hash is right under the key it names (an unknown key id never
        verifies); an entry from before key ids verifies under any live key."""
        prev, stored = entry.get("prev_hash", ""), str(entry.get("hash", ""))
        kid = entry.get(KEY_ID_FIELD)
        if kid is not None:
            return kid in self._keys and hmac.compare_digest(self._mac(kid, prev, entry), stored)
        return any(hmac.compare_digest(self._mac(k, prev, entry), stored) for k in self._keys)

    def prepare(
        self,
        chain_id: str,
        prev_hash: str,
        *,
        entry_id: str,
        at: datetime,
        actor: str,
        action: str,
        account_id: str | None,
        account_hash: str | None,
        details: dict[str, Any],
    ) -> PreparedEntry:
        """Build, chain-hash and encode one entry."""
        entry: dict[str, Any] = {
            "id": entry_id, "chain": chain_id, "at": iso(at), "actor": actor, "action": action,
            "account_id": account_id, "details": details, "prev_hash": prev_hash,
            KEY_ID_FIELD: self._primary,
        }
        entry["hash"] = self.chain_hash(prev_hash, entry)
        ttl = self.retention.seconds("audit")
        return PreparedEntry(
            entry=entry, encoded=_dumps(entry),
            index=keys.audit_index(account_hash) if account_hash else "",
            min_id=max(int(at.timestamp() * 1000) - ttl * 1000, 0), ttl=ttl,
        )

    def queue_append(self, pipe: redis.client.Pipeline, prepared: PreparedEntry) -> None:
        """Queue the append on a MULTI pipeline: one EVAL instead of seven commands."""
        pipe.eval(_APPEND, 3, keys.AUDIT_STREAM, keys.AUDIT_HEADS, prepared.index,
                  prepared.encoded, prepared.min_id, prepared.ttl, prepared.entry["chain"],
                  prepared.hash, MAX_ACCOUNT_ENTRIES)

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
        if account_hash is not None:
            members = self.r.lrange(keys.audit_index(account_hash), 0, limit - 1)
            return [json.loads(member) for member in members]
        out = []
        for entry in self._entries(reverse=True):
            out.append(entry)
            if len(out) >= limit:
                break
        return out

    # -- the anchor kept outside Redis ----------------------------------------------------
    def _signature(self, kid: str, body: dict[str, Any]) -> str:
        mac = self._keys[kid].copy()
        mac.update(b"checkpoint\n" + json.dumps(body, sort_keys=True, separators=(",", ":"))
                   .encode())
        return str(mac.hexdigest())

    def checkpoint(self, now: datetime) -> dict[str, Any]:
        """Every chain's current head (hash, entry id, time and length), signed under the
        primary key. Kept outside Redis, it lets `verify` notice entries removed from the end of
        a chain, or a whole chain, together with its head field."""
        chains: dict[str, dict[str, Any]] = {}
        for entry in self._entries(reverse=False):
            chain = chains.setdefault(entry.get("chain", ""), {"entries": 0})
            chain.update(hash=entry.get("hash"), entry_id=entry.get("id"), at=entry.get("at"))
            chain["entries"] += 1
        body = {"created_at": iso(now), "chains": chains, "key_id": self._primary}
        return {**body, "signature": self._signature(self._primary, body)}

    def _checkpoint_problems(self, checkpoint: dict[str, Any], found: set[str],
                             now: datetime) -> list[ChainProblem]:
        body = {k: v for k, v in checkpoint.items() if k != "signature"}
        kid = str(body.get("key_id", ""))
        if kid not in self._keys or not hmac.compare_digest(
                self._signature(kid, body), str(checkpoint.get("signature", ""))):
            return [ChainProblem("checkpoint", "its signature does not verify under a live key")]
        problems = []
        oldest_kept = now.timestamp() - self.retention.seconds("audit")
        for chain_id, head in sorted(body.get("chains", {}).items()):
            if head.get("hash") in found:
                continue
            if datetime.fromisoformat(str(head["at"]).replace("Z", "+00:00")).timestamp() \
                    < oldest_kept:
                continue  # aged out under the retention table, as it should
            problems.append(ChainProblem(chain_id, (
                f"entry {head.get('entry_id')} (entry {head.get('entries')} of the chain at the "
                "checkpoint) is gone: the chain was truncated or dropped")))
        return problems

    def verify(self, checkpoint: dict[str, Any] | None = None,
               now: datetime | None = None) -> tuple[int, list[ChainProblem]]:
        """Recompute every hash, oldest first, chain by chain; returns (checked, problems).

        The first retained entry of a chain starts it (older ones may have been trimmed by the
        retention table); after that every entry must link to the one before it in its chain,
        and each chain must end at the head recorded for it. With a checkpoint, every head it
        holds must still be in its chain (unless aged out by retention).
        """
        problems: list[ChainProblem] = []
        last: dict[str, str] = {}
        wanted = {(c, str(h.get("hash"))) for c, h in
                  ((checkpoint or {}).get("chains") or {}).items()}
        found: set[str] = set()
        checked = 0
        for entry in self._entries(reverse=False):
            checked += 1
            entry_id, chain_id = entry.get("id", "?"), entry.get("chain", "")
            if (chain_id, entry.get("hash")) in wanted:
                found.add(str(entry.get("hash")))
            if chain_id in last and entry.get("prev_hash") != last[chain_id]:
                problems.append(ChainProblem(entry_id, "prev_hash does not link"))
            if not self.hash_verifies(entry):
                problems.append(ChainProblem(entry_id, "hash does not match content"))
            last[chain_id] = entry.get("hash", "")
        heads = self.r.hgetall(keys.AUDIT_HEADS)
        for chain_id, head in heads.items():
            # A chain with no retained entries may simply have aged out of the stream.
            if chain_id in last and last[chain_id] != head:
                problems.append(ChainProblem(chain_id, "chain does not end at its recorded head"))
        if checkpoint is not None:
            problems += self._checkpoint_problems(checkpoint, found, now or datetime.now(UTC))
        return checked, problems
