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
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from agegate.clock import iso
from agegate.crypto import HmacSha256
from agegate.storage import keys
from agegate.storage.keys import Retention

GENESIS = "0" * 64
# One account's index keeps its newest entries; the stream keeps everything for the retention.
MAX_ACCOUNT_ENTRIES = 1000

# The append as a Lua function, so a script that decides something and records the decision
# (the age check) can call it in the same atomic step. The per-account index holds the entries
# themselves, newest first, so one account's trail is a single range read rather than a scan.
# Inside a script every write is also written to the AOF and costs ~10x a read, so the shared
# stream and heads get their TTL rewritten only once it has run down by a minute (of six years),
# and the index is trimmed only when it is over its cap.
APPEND_FUNCTION = """
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
"""
# KEYS: stream, heads, account index ("" for none). ARGV: entry JSON, MINID, TTL, chain id,
# entry hash, index cap.
_APPEND = APPEND_FUNCTION + """
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


@dataclass(slots=True)
class PreparedAlternatives:
    """One entry per possible outcome, all on the same head; only one is ever appended.

    Kept as the parts the entries share plus each outcome's details and hash, so a script
    that decides the outcome receives the shared bytes once and assembles the entry it
    appends: `head + details[i] + ',"hash":"' + hashes[i] + '"' + tail`.
    """

    head: str  # '{"account_id":...,"chain":...,"details":'
    tail: str  # ',"id":...,"prev_hash":...}'
    details: list[str]
    hashes: list[str]
    shared: dict[str, Any]
    alternatives: list[dict[str, Any]]
    entry_id: str
    prev_hash: str
    index: str  # the account's index key, or "" for none
    min_id: int
    ttl: int

    @property
    def chain_id(self) -> str:
        return str(self.shared["chain"])

    def encoded(self, i: int) -> str:
        """Outcome i's entry as stored: a sort_keys dump of `entry(i).entry`."""
        return self.head + self.details[i] + ',"hash":"' + self.hashes[i] + '"' + self.tail

    def entry(self, i: int) -> PreparedEntry:
        """Outcome i as a single prepared entry."""
        entry = {**self.shared, "details": self.alternatives[i], "id": self.entry_id,
                 "prev_hash": self.prev_hash, "hash": self.hashes[i]}
        return PreparedEntry(entry=entry, encoded=self.encoded(i), index=self.index,
                             min_id=self.min_id, ttl=self.ttl)


HASHED_FIELDS = ("id", "chain", "at", "actor", "action", "account_id", "details")


_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode
_string = json.encoder.encode_basestring_ascii  # what _dumps writes for one str, in C


def _dumps_flat(details: dict[str, Any]) -> str:
    """_dumps(details), spelled out for the usual flat dict of str keys and str/None values
    (a fraction of the cost of the general encoder); anything else goes to _dumps."""
    try:
        return "{" + ",".join([_string(key) + ":" + ("null" if value is None else _string(value))
                               for key, value in sorted(details.items())]) + "}"
    except TypeError:  # a key or value that is not a str (or keys that do not sort)
        return _dumps(details)


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes a hash covers: every field but the hashes, sorted, no whitespace."""
    body = {k: entry.get(k) for k in HASHED_FIELDS}
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
        self._mac = HmacSha256(self._key)
        self.retention = retention

    def chain_hash(self, prev_hash: str, entry: dict[str, Any]) -> str:
        """HMAC over the previous hash and the canonical entry."""
        message = prev_hash.encode() + b"\n" + canonical(entry)
        return hmac.new(self._key, message, "sha256").hexdigest()

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
        return self.prepare_alternatives(
            chain_id, prev_hash, entry_id=entry_id, at=at, actor=actor, action=action,
            account_id=account_id, account_hash=account_hash, alternatives=[details],
        ).entry(0)

    def prepare_alternatives(
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
        alternatives: list[dict[str, Any]],
    ) -> PreparedAlternatives:
        """One entry per `details` alternative, all on `prev_hash`; only one may be appended.

        The fields the alternatives share are encoded once and spliced around each one's
        details: the bytes equal `canonical(entry)` and a sort_keys dump of the whole entry
        (tests compare them), at a fraction of the cost of a full dump per alternative.
        """
        at_text = iso(at)
        shared = {"account_id": account_id, "action": action, "actor": actor, "at": at_text,
                  "chain": chain_id}
        # Sorted keys: account_id, action, actor, at, chain < details < hash < id < prev_hash.
        head = ('{"account_id":' + ("null" if account_id is None else _string(account_id))
                + ',"action":' + _string(action) + ',"actor":' + _string(actor)
                + ',"at":' + _string(at_text) + ',"chain":' + _string(chain_id)
                + ',"details":')
        tail_id = ',"id":' + _string(entry_id)
        # chain_hash's message, prev_hash + "\n" + canonical(entry), shares everything up to
        # the details: hash that part once.
        mac = self._mac.with_prefix((prev_hash + "\n" + head).encode())
        encoded_details = [_dumps_flat(details) for details in alternatives]
        hashes = [mac.hexdigest((body + tail_id + "}").encode()) for body in encoded_details]
        ttl = self.retention.seconds("audit")
        return PreparedAlternatives(
            head=head, tail=tail_id + ',"prev_hash":' + _string(prev_hash) + "}",
            details=encoded_details, hashes=hashes, shared=shared, alternatives=alternatives,
            entry_id=entry_id, prev_hash=prev_hash,
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

    def verify(self) -> tuple[int, list[ChainProblem]]:
        """Recompute every hash, oldest first, chain by chain; returns (checked, problems).

        The first retained entry of a chain starts it (older ones may have been trimmed by the
        retention table); after that every entry must link to the one before it in its chain,
        and each chain must end at the head recorded for it.
        """
        problems: list[ChainProblem] = []
        last: dict[str, str] = {}
        checked = 0
        for entry in self._entries(reverse=False):
            checked += 1
            entry_id, chain_id = entry.get("id", "?"), entry.get("chain", "")
            if chain_id in last and entry.get("prev_hash") != last[chain_id]:
                problems.append(ChainProblem(entry_id, "prev_hash does not link"))
            if self.chain_hash(entry.get("prev_hash", ""), entry) != entry.get("hash"):
                problems.append(ChainProblem(entry_id, "hash does not match content"))
            last[chain_id] = entry.get("hash", "")
        heads = self.r.hgetall(keys.AUDIT_HEADS)
        for chain_id, head in heads.items():
            # A chain with no retained entries may simply have aged out of the stream.
            if chain_id in last and last[chain_id] != head:
                problems.append(ChainProblem(chain_id, "chain does not end at its recorded head"))
        return checked, problems
