"""The append-only, hash-chained audit trail: one Redis Stream per shard, many single-writer
chains.

Each writer process keeps its own chain per shard (an id, and the last hash in memory), so an
append needs no WATCH and no read: it joins the caller's MULTI as plain writes in the unit's
shard, and writers never contend. Each entry's hash is an HMAC-SHA256, under the service secret,
of the previous hash in its chain and the entry's canonical JSON. Keyed, so someone with write
access to Redis but not the secret cannot rewrite history and re-chain it without `agegate
audit verify` noticing; each chain's last hash is also kept in Redis, so cutting entries off the
end of a chain is noticed as well. Verification walks every shard.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from agegate.clock import iso, parse_iso
from agegate.crypto import key_id, split_keys
from agegate.storage import keys
from agegate.storage.keys import Retention
from agegate.storage.outbox import Outbox

GENESIS = "0" * 64
# One account's index keeps its newest entries; the stream keeps everything for the retention.
MAX_ACCOUNT_ENTRIES = 1000
# Orders entries a process writes within one millisecond (or under a fixed test clock).
_sequence = itertools.count()

# KEYS: the shard's stream; then the account's index (same slot), or, for an account of
# another shard, the shard's outbox. ARGV: entry JSON, MINID, TTL, shard; then "" or the
# index's key, score, cap, outbox TTL. The index member is `shard:stream id`, short enough
# for the sorted set's compact encoding; the outbox step is the one Outbox applies.
_APPEND = """
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'entry', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if #KEYS < 2 then return id end
local ref = ARGV[4] .. ':' .. id
if ARGV[5] == '' then
  redis.call('ZADD', KEYS[2], ARGV[6], ref)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[7]) + 1))
  redis.call('EXPIRE', KEYS[2], ARGV[3])
else
  redis.call('XADD', KEYS[2], '*', 'op', 'capped_zadd', 'data', cjson.encode({
    key = ARGV[5], score = ARGV[6], member = ref, cap = ARGV[7], ttl = ARGV[3]}))
  redis.call('EXPIRE', KEYS[2], ARGV[8])
end
return id
"""


@dataclass(frozen=True)
class PreparedEntry:
    """An entry hashed onto its chain and encoded, with the arguments its append needs."""

    entry: dict[str, Any]
    encoded: str
    shard: int  # the unit's shard: its stream and heads
    index: str  # the account's index key, or "" for none
    index_shard: int | None
    score: int  # its place in the account's index: time in ms, then order within the process
    min_id: int
    ttl: int

    @property
    def hash(self) -> str:
        return str(self.entry["hash"])


HASHED_FIELDS = ("id", "chain", "at", "actor", "action", "account_id", "details")
# Entries written since key rotation came in name the key that hashed them (hashed too, so it
# cannot be swapped); older entries have no key_id and verify under whichever live key fits.
KEY_ID_FIELD = "key_id"
# Entries after a chain's first name their predecessor's time (hashed too): when a chain's
# oldest surviving entry does not start it, `verify` checks that what came before it was older
# than the retention cut-off, i.e. aged out rather than deleted.
PREV_AT_FIELD = "prev_at"


_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes a hash covers: every field but the hashes, sorted, no whitespace."""
    body = {k: entry.get(k) for k in HASHED_FIELDS}
    for optional in (KEY_ID_FIELD, PREV_AT_FIELD):
        if optional in entry:
            body[optional] = entry[optional]
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
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        # Live keys by id, primary first: the primary hashes new entries, all verify.
        self._keys = {key_id(secret): hmac.new(
            hashlib.sha256(("agegate/audit/" + secret).encode()).digest(),
            digestmod=hashlib.sha256) for secret in split_keys(secret_key)}
        self._primary = next(iter(self._keys))
        self.retention = retention
        self.outbox = Outbox(client, retention)

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
        shard: int,
        chain_id: str,
        prev_hash: str,
        *,
        prev_at: str = "",
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
        if prev_hash != GENESIS:
            entry[PREV_AT_FIELD] = prev_at
        entry["hash"] = self.chain_hash(prev_hash, entry)
        ttl = self.retention.seconds("audit")
        millis = int(at.timestamp() * 1000)
        return PreparedEntry(
            entry=entry, encoded=_dumps(entry), shard=shard,
            index=keys.audit_index(account_hash) if account_hash else "",
            index_shard=keys.shard_of(account_hash) if account_hash else None,
            score=millis * 1000 + next(_sequence) % 1000,
            min_id=max(millis - ttl * 1000, 0), ttl=ttl,
        )

    def queue_append(self, pipe: redis.client.Pipeline, prepared: PreparedEntry) -> None:
        """Queue the append on a MULTI pipeline. The entry is stored once, in the shard's
        stream; the account's index holds only a reference to it (`shard:stream id`), which
        only Redis knows once the XADD has run, so the XADD and the index write are one EVAL
        (sent whole, so nothing needs loading on the cluster's nodes first). An account of
        another shard gets its index entry through this shard's outbox."""
        stream, heads = keys.audit_stream(prepared.shard), keys.audit_heads(prepared.shard)
        pipe.hset(heads, prepared.entry["chain"], prepared.hash)
        pipe.expire(heads, prepared.ttl)
        # EVAL through execute_command: redis-py's cluster pipeline has no eval() method, but
        # queues a plain EVAL (routed by its keys) like any other command.
        args = [prepared.encoded, prepared.min_id, prepared.ttl, prepared.shard]
        if not prepared.index:
            pipe.execute_command("EVAL", _APPEND, 1, stream, *args)
        elif prepared.index_shard == prepared.shard:
            pipe.execute_command("EVAL", _APPEND, 2, stream, prepared.index, *args, "",
                                 prepared.score, MAX_ACCOUNT_ENTRIES)
        else:
            outbox = self.outbox.drain_after_unit()
            pipe.execute_command("EVAL", _APPEND, 2, stream, outbox, *args, prepared.index,
                                 prepared.score, MAX_ACCOUNT_ENTRIES,
                                 self.retention.seconds("outbox_steps"))

    def _entries(self, shard: int, reverse: bool, count: int = 500
                 ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Walk one shard's stream in pages, oldest first or newest first: (stream id, entry)."""
        stream = keys.audit_stream(shard)
        cursor = "+" if reverse else "-"
        exclusive = False
        while True:
            start = f"({cursor}" if exclusive else cursor
            if reverse:
                page = self.r.xrevrange(stream, max=start, min="-", count=count)
            else:
                page = self.r.xrange(stream, min=start, max="+", count=count)
            if not page:
                return
            for stream_id, fields in page:
                yield stream_id, json.loads(fields["entry"])
                cursor = stream_id
            exclusive = True

    def recent(self, account_hash: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; for one account through its index, else merged from every shard."""
        if account_hash is not None:
            members = self.r.zrevrange(keys.audit_index(account_hash), 0, limit - 1)
            return self._resolve(members)
        pipe = self.r.pipeline(transaction=False)
        for shard in keys.all_shards():
            pipe.xrevrange(keys.audit_stream(shard), count=limit)
        # Across shards, by the time each entry records (the service's clock): stream ids come
        # from each node's own clock, and two nodes' clocks need not agree. Within a shard, and
        # between entries of one instant, the stream's order.
        merged = []
        for page in pipe.execute():
            for stream_id, fields in page:
                entry = json.loads(fields["entry"])
                merged.append(((parse_iso(entry["at"]), _stream_order(stream_id)), entry))
        merged.sort(key=lambda item: item[0], reverse=True)
        return [entry for _, entry in merged[:limit]]

    def _resolve(self, members: list[str]) -> list[dict[str, Any]]:
        """An index's references, read from the streams in one round trip (in order). An
        entry gone from its stream (trimmed by the retention table) is gone from the trail;
        an index written before references held the entry itself."""
        pipe = self.r.pipeline(transaction=False)
        for member in members:
            if not member.startswith("{"):
                shard, _, stream_id = member.partition(":")
                pipe.xrange(keys.audit_stream(int(shard)), min=stream_id, max=stream_id)
        pages = iter(pipe.execute())
        entries = []
        for member in members:
            if member.startswith("{"):
                entries.append(json.loads(member))
            elif page := next(pages):
                entries.append(json.loads(page[0][1]["entry"]))
        return entries

    # -- the anchor kept outside Redis ----------------------------------------------------
    def _signature(self, kid: str, body: dict[str, Any]) -> str:
        mac = self._keys[kid].copy()
        mac.update(b"checkpoint\n" + json.dumps(body, sort_keys=True, separators=(",", ":"))
                   .encode())
        return str(mac.hexdigest())

    def checkpoint(self, now: datetime) -> dict[str, Any]:
        """Every chain's current head (hash, entry id, time and length) in every shard, signed
        under the primary key. Kept outside Redis, it lets `verify` notice entries removed from
        the end of a chain, or a whole chain, together with its head field."""
        chains: dict[str, dict[str, Any]] = {}
        for _, entry in (item for shard in keys.all_shards()
                         for item in self._entries(shard, reverse=False)):
            chain = chains.setdefault(entry.get("chain", ""), {"entries": 0})
            chain.update(hash=entry.get("hash"), entry_id=entry.get("id"), at=entry.get("at"))
            chain["entries"] += 1
        body = {"created_at": iso(now), "chains": chains, "key_id": self._primary}
        return {**body, "signature": self._signature(self._primary, body)}

    def _checkpoint_problems(self, checkpoint: dict[str, Any], found: dict[str, int],
                             aged_out: set[str], cutoff: float) -> list[ChainProblem]:
        body = {k: v for k, v in checkpoint.items() if k != "signature"}
        kid = str(body.get("key_id", ""))
        if kid not in self._keys or not hmac.compare_digest(
                self._signature(kid, body), str(checkpoint.get("signature", ""))):
            return [ChainProblem("checkpoint", "its signature does not verify under a live key")]
        problems = []
        for chain_id, head in sorted(body.get("chains", {}).items()):
            recorded = int(head.get("entries") or 0)
            if head.get("hash") in found:
                # Entries up to the head it had: as many as then, unless the oldest aged out.
                kept = found[str(head.get("hash"))]
                if kept > recorded or (kept < recorded and chain_id not in aged_out):
                    problems.append(ChainProblem(chain_id, (
                        f"{kept} entries up to the checkpoint's head, which had {recorded}: "
                        "entries were removed from the chain")))
                continue
            if datetime.fromisoformat(str(head["at"]).replace("Z", "+00:00")).timestamp() \
                    < cutoff:
                continue  # aged out under the retention table, as it should
            problems.append(ChainProblem(chain_id, (
                f"entry {head.get('entry_id')} (entry {recorded} of the chain at the "
                "checkpoint) is gone: the chain was truncated or dropped")))
        return problems

    def _start_problem(self, entry: dict[str, Any], cutoff: float) -> str | None:
        """Why a chain's oldest surviving entry cannot be where it starts, or None. It either
        starts the chain (GENESIS), or what came before it was older than the retention
        cut-off, so it aged out; otherwise the oldest entries were deleted."""
        if entry.get("prev_hash") == GENESIS:
            return None
        before = entry.get(PREV_AT_FIELD)
        if before is None:  # an entry from before PREV_AT_FIELD: only its own time is known
            before = entry.get("at")
        try:
            when = datetime.fromisoformat(str(before).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return "names no valid time for the entry before it"
        if when < cutoff:
            return None
        return ("the chain's earlier entries are gone although they were younger than the "
                "retention cut-off: they were deleted")

    def verify(self, checkpoint: dict[str, Any] | None = None,
               now: datetime | None = None) -> tuple[int, list[ChainProblem]]:
        """Recompute every hash, oldest first, chain by chain; returns (checked, problems).

        A chain's oldest surviving entry must start it (GENESIS) or follow an entry older than
        the retention cut-off (one that aged out); after that every entry must link to the one
        before it in its chain, and each chain must end at the head recorded for it. With a
        checkpoint, every head it holds must still be in its chain (unless aged out by
        retention), with as many entries up to it as the checkpoint counted (fewer only when
        the chain's oldest entries aged out).
        """
        problems: list[ChainProblem] = []
        cutoff = (now or datetime.now(UTC)).timestamp() - self.retention.seconds("audit")
        wanted = {(c, str(h.get("hash"))) for c, h in
                  ((checkpoint or {}).get("chains") or {}).items()}
        found: dict[str, int] = {}  # checkpoint heads found: entries of their chain up to them
        aged_out: set[str] = set()  # chains whose oldest entries aged out
        checked = 0
        for shard in keys.all_shards():
            last: dict[str, str] = {}
            counts: dict[str, int] = {}
            for _, entry in self._entries(shard, reverse=False):
                checked += 1
                entry_id, chain_id = entry.get("id", "?"), entry.get("chain", "")
                counts[chain_id] = counts.get(chain_id, 0) + 1
                if chain_id not in last:
                    why = self._start_problem(entry, cutoff)
                    if why is not None:
                        problems.append(ChainProblem(entry_id, why))
                    elif entry.get("prev_hash") != GENESIS:
                        aged_out.add(chain_id)
                if (chain_id, entry.get("hash")) in wanted:
                    found[str(entry.get("hash"))] = counts[chain_id]
                if chain_id in last and entry.get("prev_hash") != last[chain_id]:
                    problems.append(ChainProblem(entry_id, "prev_hash does not link"))
                if not self.hash_verifies(entry):
                    problems.append(ChainProblem(entry_id, "hash does not match content"))
                last[chain_id] = entry.get("hash", "")
            heads = self.r.hgetall(keys.audit_heads(shard))
            for chain_id, head in heads.items():
                # A chain with no retained entries may simply have aged out of the stream.
                if chain_id in last and last[chain_id] != head:
                    problems.append(ChainProblem(chain_id,
                                                 "chain does not end at its recorded head"))
        if checkpoint is not None:
            problems += self._checkpoint_problems(checkpoint, found, aged_out, cutoff)
        return checked, problems


def _stream_order(stream_id: str) -> tuple[int, int]:
    """A stream id as a sortable (ms, sequence)."""
    millis, _, sequence = stream_id.partition("-")
    return int(millis), int(sequence or 0)

