"""Review cases and the queue: a hash per case, sorted sets for open/claimed/decided.

A case's top signals and history (JSON longer than 64 bytes) live in a string beside its hash
(`keys.case_detail`), so the hash keeps Redis's compact listpack encoding: ~700 bytes a case
less than one hashtable-encoded hash holding everything.

A case lives in its account's shard (its id names the shard), and each shard keeps its own copy
of the queue's sorted sets, so opening, raising and deciding a case is one slot with the
account. Readers fan out over the shards and merge. A claim runs one Lua check-and-set on the
case's shard, so two reviewers can never take the same case; "claim the next case" picks the
best head across the shards and claims it there, trying the next best if it lost the race.
Scripts first return cases whose lease has run out to the queue (lazily: no background
thread). The time is passed in by the caller's clock, so tests can move it.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

import redis

from agegate.clock import iso
from agegate.storage import keys, replicas
from agegate.storage.keys import Retention

HISTORY_LIMIT = 20
# Rounds of "read every shard's head, claim the best" before answering that none is left.
CLAIM_ROUNDS = 5
KINDS = ("classifier", "report", "parent_request", "content_removal", "age_signal", "appeal")

_LUA_COMMON = """
local case_prefix = ARGV[1]
local open_kind_prefix = ARGV[2]
local now = tonumber(ARGV[3])
local at_iso = ARGV[4]
local ttl = tonumber(ARGV[5])
local function push_history(ck, item)
  local dk = ck .. ':detail'
  local raw = redis.call('GET', dk)
  local d
  if raw then
    d = cjson.decode(raw)
  else  -- a case written before its detail had a key of its own
    d = {top_signals = cjson.decode(redis.call('HGET', ck, 'top_signals') or '[]'),
         history = cjson.decode(redis.call('HGET', ck, 'history') or '[]')}
    redis.call('HDEL', ck, 'top_signals', 'history')
  end
  local h = d.history
  if type(h) ~= 'table' then h = {} end
  table.insert(h, item)
  while #h > __HISTORY_LIMIT__ do table.remove(h, 1) end
  d.history = h
  if raw then
    redis.call('SET', dk, cjson.encode(d), 'KEEPTTL')
  else
    redis.call('SET', dk, cjson.encode(d), 'EX', math.max(redis.call('TTL', ck), 1))
  end
end
local function requeue()
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(expired) do
    local ck = case_prefix .. id
    redis.call('ZREM', KEYS[2], id)
    local kind = redis.call('HGET', ck, 'kind')
    if kind and redis.call('HGET', ck, 'status') == 'claimed' then
      local who = redis.call('HGET', ck, 'claimed_by')
      redis.call('HSET', ck, 'status', 'open', 'claimed_by', '', 'lease_expires_at', '',
                 'lease_until', '')
      push_history(ck, {at = at_iso, event = 'lease_expired', actor = who})
      local sk = redis.call('HGET', ck, 'sortkey')
      redis.call('ZADD', KEYS[1], sk, id)
      redis.call('EXPIRE', KEYS[1], ttl)
      redis.call('ZADD', open_kind_prefix .. kind, sk, id)
      redis.call('EXPIRE', open_kind_prefix .. kind, ttl)
    end
  end
  return #expired
end
""".replace("__HISTORY_LIMIT__", str(HISTORY_LIMIT))

# KEYS: open (all), claimed. ARGV: common 1-5, then lease_until, lease_iso, reviewer, mode, target.
_CLAIM = _LUA_COMMON + """
requeue()
local lease_until = ARGV[6]
local lease_iso = ARGV[7]
local reviewer = ARGV[8]
local mode = ARGV[9]
local target = ARGV[10]
for _ = 1, 50 do
  local id
  if mode == 'one' then
    id = target
    if not redis.call('ZSCORE', KEYS[1], id) then
      local st = redis.call('HGET', case_prefix .. id, 'status')
      if not st then return {'missing'} end
      return {'not_open', st}
    end
  else
    local src = KEYS[1]
    if target ~= '' then src = open_kind_prefix .. target end
    local top = redis.call('ZRANGE', src, 0, 0)
    if #top == 0 then return {'empty'} end
    id = top[1]
  end
  local ck = case_prefix .. id
  local kind = redis.call('HGET', ck, 'kind')
  redis.call('ZREM', KEYS[1], id)
  if kind then
    redis.call('ZREM', open_kind_prefix .. kind, id)
    redis.call('ZADD', KEYS[2], lease_until, id)
    redis.call('EXPIRE', KEYS[2], ttl)
    redis.call('HSET', ck, 'status', 'claimed', 'claimed_by', reviewer,
               'lease_expires_at', lease_iso, 'lease_until', lease_until)
    push_history(ck, {at = at_iso, event = 'claimed', actor = reviewer})
    return {'ok', id}
  end
  -- The case hash expired under a stale queue entry: drop the entry and look again.
  if mode ~= 'one' and target ~= '' then redis.call('ZREM', open_kind_prefix .. target, id) end
  if mode == 'one' then return {'missing'} end
end
return {'empty'}
"""

_REQUEUE = _LUA_COMMON + """
return requeue()
"""

# KEYS: the case hash. ARGV: common 1-5 (unused), the history item (JSON) with its `step` id.
# Appends the item once (an outbox step may be applied twice); nothing for a case that is gone.
PUSH_HISTORY = _LUA_COMMON + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local item = cjson.decode(ARGV[6])
local raw = redis.call('GET', KEYS[1] .. ':detail')
if raw then
  local h = cjson.decode(raw).history
  if type(h) == 'table' then
    for _, old in ipairs(h) do
      if type(old) == 'table' and old.step == item.step then return 0 end
    end
  end
end
push_history(KEYS[1], item)
return 1
"""


def _shard(case_id: str) -> int:
    """The shard a stored case's id names."""
    shard = keys.shard_of_id(case_id)
    if shard is None:
        raise ValueError(f"not a sharded case id: {case_id!r}")
    return shard


# What a case keeps beside its hash, in its detail string (keys.case_detail).
_DETAIL = ("top_signals", "history")
# Fields a case may lack while they are empty (or, for ref and kinds_seen, at their default).
_OPTIONAL = ("account_id", "score", "due_at", "claimed_by", "lease_expires_at", "lease_until",
             "decision", "note", "decided_at", "ref", "kinds_seen")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _loads(raw: str | None, default: Any) -> Any:
    if not raw:
        return default
    value = json.loads(raw)
    # Lua's cjson writes an empty table as {}; every JSON list we keep is a list.
    return default if value == {} and isinstance(default, list) else value


def _list(value: Any) -> Any:
    # Lua's cjson writes an empty table as {}; every JSON list we keep is a list.
    return [] if value == {} else value


def decode(raw: dict[str, str], detail: str | None) -> dict[str, Any]:
    """A stored case hash and its detail string as the API's case object (a case written
    before the detail had a key of its own holds it in the hash)."""
    def text(name: str) -> str | None:
        return raw.get(name) or None

    more = json.loads(detail) if detail else {}

    def listed(name: str) -> Any:
        return _list(more[name]) if name in more else _loads(raw.get(name), [])

    return {
        "case_id": raw["case_id"],
        "account_id": raw.get("account_id"),
        "kind": raw["kind"],
        "status": raw["status"],
        "priority": float(raw.get("priority") or 0),
        "score": float(raw["score"]) if raw.get("score") else None,
        "top_signals": listed("top_signals"),
        "created_at": raw["created_at"],
        "due_at": text("due_at"),
        "claimed_by": text("claimed_by"),
        "lease_expires_at": text("lease_expires_at"),
        "decision": text("decision"),
        "note": text("note"),
        "decided_at": text("decided_at"),
        "history": listed("history"),
        "ref": _loads(raw.get("ref"), {}),
        # internal fields the services need; the API schemas drop them
        "sortkey": float(raw.get("sortkey") or 0),
        "lease_until": float(raw["lease_until"]) if raw.get("lease_until") else None,
        "kinds_seen": _loads(raw.get("kinds_seen"), [raw["kind"]]),
    }


class CaseStore:
    """Reads are plain; writes join a caller's MULTI pipeline; claims are one Lua script."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention
        self._claim = replicas.ConfirmedScript(client, _CLAIM)
        self._requeue = replicas.ConfirmedScript(client, _REQUEUE)

    def _common_args(self, shard: int, now: datetime) -> list[Any]:
        return [keys.case_prefix(shard), keys.review_open_kind_prefix(shard), now.timestamp(),
                iso(now), self.retention.seconds("case")]

    @staticmethod
    def _queue_keys(shard: int) -> list[str]:
        return [keys.review_open(shard), keys.review_claimed(shard)]

    # -- reads ---------------------------------------------------------------------------
    def read(self, client: Any, case_id: str) -> dict[str, Any] | None:
        """One case (via `client`, which may be a WATCHing pipeline), or None."""
        raw = client.hgetall(keys.case(case_id))
        if not raw.get("case_id"):
            return None
        return decode(raw, client.get(keys.case_detail(case_id)))

    def kind(self, case_id: str) -> str | None:
        """A case's kind, or None for no such case."""
        return self.r.hget(keys.case(case_id), "kind")

    def read_many(self, case_ids: list[str]) -> list[dict[str, Any]]:
        """Several cases in one round trip, in the given order, skipping expired ones."""
        if not case_ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for case_id in case_ids:
            pipe.hgetall(keys.case(case_id))
            pipe.get(keys.case_detail(case_id))
        replies = pipe.execute()
        return [decode(raw, detail) for raw, detail in zip(replies[::2], replies[1::2],
                                                           strict=True)
                if raw.get("case_id")]

    def requeue_expired(self, now: datetime, shard: int | None = None) -> int:
        """Return cases whose lease ran out to the queue (in one shard, or in all). Across all
        shards, one round trip first finds the shards that have any (usually none)."""
        if shard is not None:
            shards: list[int] = [shard]
        else:
            pipe = self.r.pipeline(transaction=False)
            for s in keys.all_shards():
                pipe.zrangebyscore(keys.review_claimed(s), "-inf", now.timestamp(), start=0,
                                   num=1)
            shards = [s for s, due in zip(keys.all_shards(), pipe.execute(), strict=True) if due]
        return sum(int(self._requeue(keys=self._queue_keys(s), args=self._common_args(s, now)))
                   for s in shards)

    def _merged(self, reads: list[tuple[str, Any]], limit: int, newest_first: bool
                ) -> list[str]:
        """Run one scored range read per shard in a pipeline and merge them by score."""
        pipe = self.r.pipeline(transaction=False)
        for method, args in reads:
            getattr(pipe, method)(*args, withscores=True)
        merged = [(score, member) for page in pipe.execute() for member, score in page]
        merged.sort(reverse=newest_first)
        return [member for _, member in merged[:limit]]

    def ids(self, status: str, limit: int, kind: str | None) -> list[str]:
        """Case ids by status: open in queue order, claimed by lease end, decided newest first."""
        shards = keys.all_shards()
        if status == "open":
            return self._merged([("zrange", (keys.review_open(s, kind), 0, limit - 1))
                                 for s in shards], limit, newest_first=False)
        end = -1 if kind else limit - 1
        if status == "claimed":
            return self._merged([("zrange", (keys.review_claimed(s), 0, end)) for s in shards],
                                limit if not kind else 10**9, newest_first=False)
        return self._merged([("zrevrange", (keys.review_decided(s), 0, end)) for s in shards],
                            limit if not kind else 10**9, newest_first=True)

    def depths(self) -> dict[str, int]:
        """Open cases per kind, plus claimed, for the gauges (summed over the shards)."""
        pipe = self.r.pipeline(transaction=False)
        for shard in keys.all_shards():
            for kind in KINDS:
                pipe.zcard(keys.review_open(shard, kind))
            pipe.zcard(keys.review_claimed(shard))
        counts = pipe.execute()
        width = len(KINDS) + 1
        totals = [sum(counts[i::width]) for i in range(width)]
        return {**dict(zip(KINDS, totals[:-1], strict=True)), "claimed": totals[-1]}

    # -- claims --------------------------------------------------------------------------
    def claim(
        self, now: datetime, lease_until: datetime, reviewer: str, *, case_id: str | None = None,
        kind: str | None = None,
    ) -> tuple[str, str | None]:
        """('ok', id) | ('empty', None) | ('missing', None) | ('not_open', status)."""
        if case_id:
            shard = keys.shard_of_id(case_id)
            if shard is None:
                return "missing", None
            return self._claim_in(shard, now, lease_until, reviewer, "one", case_id)
        self.requeue_expired(now)
        for _ in range(CLAIM_ROUNDS):
            heads = self._heads(kind)
            if not heads:
                return "empty", None
            for _, shard, head in heads:
                outcome, detail = self._claim_in(shard, now, lease_until, reviewer, "one", head)
                if outcome == "ok":
                    return outcome, detail
                # Another reviewer took it (or it expired) between our read and our claim.
        return "empty", None

    def _heads(self, kind: str | None) -> list[tuple[float, int, str]]:
        """Each shard's top open case (of `kind`), best first: (sort key, shard, case id)."""
        pipe = self.r.pipeline(transaction=False)
        for shard in keys.all_shards():
            pipe.zrange(keys.review_open(shard, kind), 0, 0, withscores=True)
        heads = [(score, shard, member) for shard, page in zip(keys.all_shards(), pipe.execute(),
                                                               strict=True)
                 for member, score in page]
        heads.sort()
        return heads

    def _claim_in(self, shard: int, now: datetime, lease_until: datetime, reviewer: str,
                  mode: str, target: str) -> tuple[str, str | None]:
        result = self._claim(
            keys=self._queue_keys(shard),
            args=[*self._common_args(shard, now), lease_until.timestamp(), iso(lease_until),
                  reviewer, mode, target],
        )
        return result[0], (result[1] if len(result) > 1 else None)

    # -- writes (on a MULTI pipeline) ---------------------------------------------------
    def queue_create(self, pipe: redis.client.Pipeline, case: dict[str, Any],
                     account_hash: str) -> None:
        """Write a new open case and put it in the queue."""
        ttl = self.retention.seconds("case")
        key = keys.case(case["case_id"])
        pipe.hset(key, mapping=self._fields(case))  # type: ignore[arg-type]
        pipe.expire(key, ttl)
        pipe.set(keys.case_detail(case["case_id"]), self._detail(case), ex=ttl)
        self._queue_enqueue(pipe, case["case_id"], case["kind"], case["sortkey"])
        index = keys.account_cases(account_hash)  # the same shard: the case id names it
        pipe.sadd(index, case["case_id"])
        pipe.expire(index, ttl)

    def _queue_enqueue(self, pipe: redis.client.Pipeline, case_id: str, kind: str,
                       sortkey: float, only_lower: bool = False) -> None:
        ttl = self.retention.seconds("case")
        shard = _shard(case_id)
        for zkey in (keys.review_open(shard), keys.review_open(shard, kind)):
            if only_lower:
                pipe.zadd(zkey, {case_id: sortkey}, lt=True)
            else:
                pipe.zadd(zkey, {case_id: sortkey})
            pipe.expire(zkey, ttl)

    def queue_update(self, pipe: redis.client.Pipeline, case: dict[str, Any]) -> None:
        """Rewrite a case's fields; re-position it in the queue if it is open."""
        key = keys.case(case["case_id"])
        fields = self._fields(case)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        # (the detail fields only in a hash written before they had a key of their own)
        pipe.hdel(key, *(name for name in (*_OPTIONAL, *_DETAIL) if name not in fields))
        ttl = self.retention.seconds("case")
        pipe.expire(key, ttl)
        pipe.set(keys.case_detail(case["case_id"]), self._detail(case), ex=ttl)
        if case["status"] == "open":
            self._queue_enqueue(pipe, case["case_id"], case["kind"], case["sortkey"])

    def queue_decided(self, pipe: redis.client.Pipeline, case: dict[str, Any],
                      at: datetime) -> None:
        """Move a case out of the queue and into the decided list."""
        self.queue_update(pipe, case)
        case_id = case["case_id"]
        shard = _shard(case_id)
        for zkey in (keys.review_open(shard), keys.review_open(shard, case["kind"]),
                     keys.review_claimed(shard)):
            pipe.zrem(zkey, case_id)
        ttl = self.retention.seconds("case")
        decided = keys.review_decided(shard)
        pipe.zadd(decided, {case_id: at.timestamp()})
        pipe.zremrangebyscore(decided, "-inf", at.timestamp() - ttl)
        pipe.expire(decided, ttl)

    def queue_history(self, pipe: redis.client.Pipeline, case_id: str,
                      item: dict[str, Any]) -> None:
        """Append an item to a case's history from a unit of work in any shard: through that
        unit's outbox (the case may live in another slot), applied once."""
        from agegate.storage.outbox import Outbox

        Outbox(self.r, self.retention).queue(pipe, "case_history", {
            "key": keys.case(case_id), "item": {**item, "step": secrets.token_urlsafe(9)}})

    def queue_delete(self, pipe: redis.client.Pipeline, case_ids: list[str]) -> None:
        """Forget cases entirely (termination deletes everything about the account)."""
        for case_id in case_ids:
            shard = _shard(case_id)
            pipe.delete(keys.case(case_id), keys.case_detail(case_id))
            for zkey in (keys.review_open(shard), keys.review_claimed(shard),
                         keys.review_decided(shard),
                         *(keys.review_open(shard, kind) for kind in KINDS)):
                pipe.zrem(zkey, case_id)

    @staticmethod
    def _detail(case: dict[str, Any]) -> str:
        """The case's detail string: its top signals and its (capped) history."""
        return _dumps({"top_signals": case.get("top_signals") or [],
                       "history": (case.get("history") or [])[-HISTORY_LIMIT:]})

    @staticmethod
    def _fields(case: dict[str, Any]) -> dict[str, Any]:
        """The hash fields of a case, without the empty and default ones: decode() reads a
        missing field as its default, and each field of a hash this size costs ~80 bytes."""
        def text(value: Any) -> str:
            return "" if value is None else str(value)

        fields = {
            "case_id": case["case_id"],
            "account_id": text(case.get("account_id")),
            "kind": case["kind"],
            "status": case["status"],
            "priority": repr(float(case.get("priority") or 0)),
            "score": "" if case.get("score") is None else repr(float(case["score"])),
            "created_at": case["created_at"],
            "due_at": text(case.get("due_at")),
            "claimed_by": text(case.get("claimed_by")),
            "lease_expires_at": text(case.get("lease_expires_at")),
            "lease_until": "" if case.get("lease_until") is None else repr(case["lease_until"]),
            "decision": text(case.get("decision")),
            "note": text(case.get("note")),
            "decided_at": text(case.get("decided_at")),
            "ref": _dumps(case.get("ref") or {}),
            "sortkey": repr(float(case["sortkey"])),
            "kinds_seen": _dumps(case.get("kinds_seen") or [case["kind"]]),
        }
        defaults = {"ref": "{}", "kinds_seen": _dumps([case["kind"]])}
        return {name: value for name, value in fields.items()
                if not (name in _OPTIONAL and value in ("", defaults.get(name)))}
