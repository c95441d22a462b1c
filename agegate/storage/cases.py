"""Review cases and the queue: a hash per case, sorted sets for open/claimed/decided.

Claims run in one Lua script so two reviewers can never take the same case, and the script
first returns cases whose lease has run out to the queue (lazily: no background thread). The
time is passed in by the caller's clock, so tests can move it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis

from agegate.clock import iso
from agegate.storage import keys
from agegate.storage.keys import Retention

HISTORY_LIMIT = 20
KINDS = ("classifier", "report", "parent_request", "content_removal", "age_signal", "appeal")

_LUA_COMMON = """
local case_prefix = ARGV[1]
local open_kind_prefix = ARGV[2]
local now = tonumber(ARGV[3])
local at_iso = ARGV[4]
local ttl = tonumber(ARGV[5])
local function push_history(ck, item)
  local raw = redis.call('HGET', ck, 'history')
  local h = {}
  if raw and raw ~= '' then h = cjson.decode(raw) end
  table.insert(h, item)
  while #h > __HISTORY_LIMIT__ do table.remove(h, 1) end
  redis.call('HSET', ck, 'history', cjson.encode(h))
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


def decode(raw: dict[str, str]) -> dict[str, Any]:
    """A stored case hash as the API's case object."""
    def text(name: str) -> str | None:
        return raw.get(name) or None

    return {
        "case_id": raw["case_id"],
        "account_id": raw.get("account_id"),
        "kind": raw["kind"],
        "status": raw["status"],
        "priority": float(raw.get("priority") or 0),
        "score": float(raw["score"]) if raw.get("score") else None,
        "top_signals": _loads(raw.get("top_signals"), []),
        "created_at": raw["created_at"],
        "due_at": text("due_at"),
        "claimed_by": text("claimed_by"),
        "lease_expires_at": text("lease_expires_at"),
        "decision": text("decision"),
        "note": text("note"),
        "decided_at": text("decided_at"),
        "history": _loads(raw.get("history"), []),
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
        self._claim = client.register_script(_CLAIM)
        self._requeue = client.register_script(_REQUEUE)

    def _common_args(self, now: datetime) -> list[Any]:
        return [keys.CASE_PREFIX, keys.REVIEW_OPEN_KIND_PREFIX, now.timestamp(), iso(now),
                self.retention.seconds("case")]

    # -- reads ---------------------------------------------------------------------------
    def read(self, client: Any, case_id: str) -> dict[str, Any] | None:
        """One case (via `client`, which may be a WATCHing pipeline), or None."""
        raw = client.hgetall(keys.case(case_id))
        return decode(raw) if raw.get("case_id") else None

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
        return [decode(raw) for raw in pipe.execute() if raw.get("case_id")]

    def requeue_expired(self, now: datetime) -> int:
        """Return cases whose lease ran out to the queue."""
        return int(self._requeue(keys=[keys.REVIEW_OPEN, keys.REVIEW_CLAIMED],
                                 args=self._common_args(now)))

    def ids(self, status: str, limit: int, kind: str | None) -> list[str]:
        """Case ids by status: open in queue order, claimed by lease end, decided newest first."""
        if status == "open":
            return self.r.zrange(keys.review_open(kind), 0, limit - 1)
        if status == "claimed":
            return self.r.zrange(keys.REVIEW_CLAIMED, 0, -1 if kind else limit - 1)
        return self.r.zrevrange(keys.REVIEW_DECIDED, 0, -1 if kind else limit - 1)

    def depths(self) -> dict[str, int]:
        """Open cases per kind, plus claimed, for the gauges."""
        pipe = self.r.pipeline(transaction=False)
        for kind in KINDS:
            pipe.zcard(keys.review_open(kind))
        pipe.zcard(keys.REVIEW_CLAIMED)
        counts = pipe.execute()
        return {**dict(zip(KINDS, counts[:-1], strict=True)), "claimed": counts[-1]}

    # -- claims --------------------------------------------------------------------------
    def claim(
        self, now: datetime, lease_until: datetime, reviewer: str, *, case_id: str | None = None,
        kind: str | None = None,
    ) -> tuple[str, str | None]:
        """('ok', id) | ('empty', None) | ('missing', None) | ('not_open', status)."""
        mode, target = ("one", case_id) if case_id else ("next", kind or "")
        result = self._claim(
            keys=[keys.REVIEW_OPEN, keys.REVIEW_CLAIMED],
            args=[*self._common_args(now), lease_until.timestamp(), iso(lease_until), reviewer,
                  mode, target],
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
        self._queue_enqueue(pipe, case["case_id"], case["kind"], case["sortkey"])
        index = keys.account_cases(account_hash)
        pipe.sadd(index, case["case_id"])
        pipe.expire(index, ttl)

    def _queue_enqueue(self, pipe: redis.client.Pipeline, case_id: str, kind: str,
                       sortkey: float, only_lower: bool = False) -> None:
        ttl = self.retention.seconds("case")
        for zkey in (keys.REVIEW_OPEN, keys.review_open(kind)):
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
        cleared = [name for name in _OPTIONAL if name not in fields]
        if cleared:
            pipe.hdel(key, *cleared)
        pipe.expire(key, self.retention.seconds("case"))
        if case["status"] == "open":
            self._queue_enqueue(pipe, case["case_id"], case["kind"], case["sortkey"])

    def queue_decided(self, pipe: redis.client.Pipeline, case: dict[str, Any],
                      at: datetime) -> None:
        """Move a case out of the queue and into the decided list."""
        self.queue_update(pipe, case)
        case_id = case["case_id"]
        for zkey in (keys.REVIEW_OPEN, keys.review_open(case["kind"]), keys.REVIEW_CLAIMED):
            pipe.zrem(zkey, case_id)
        ttl = self.retention.seconds("case")
        pipe.zadd(keys.REVIEW_DECIDED, {case_id: at.timestamp()})
        pipe.zremrangebyscore(keys.REVIEW_DECIDED, "-inf", at.timestamp() - ttl)
        pipe.expire(keys.REVIEW_DECIDED, ttl)

    def queue_delete(self, pipe: redis.client.Pipeline, case_ids: list[str]) -> None:
        """Forget cases entirely (termination deletes everything about the account)."""
        for case_id in case_ids:
            pipe.delete(keys.case(case_id))
            for zkey in (keys.REVIEW_OPEN, keys.REVIEW_CLAIMED, keys.REVIEW_DECIDED,
                         *(keys.review_open(kind) for kind in KINDS)):
                pipe.zrem(zkey, case_id)

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
            "top_signals": _dumps(case.get("top_signals") or []),
            "created_at": case["created_at"],
            "due_at": text(case.get("due_at")),
            "claimed_by": text(case.get("claimed_by")),
            "lease_expires_at": text(case.get("lease_expires_at")),
            "lease_until": "" if case.get("lease_until") is None else repr(case["lease_until"]),
            "decision": text(case.get("decision")),
            "note": text(case.get("note")),
            "decided_at": text(case.get("decided_at")),
            "history": _dumps((case.get("history") or [])[-HISTORY_LIMIT:]),
            "ref": _dumps(case.get("ref") or {}),
            "sortkey": repr(float(case["sortkey"])),
            "kinds_seen": _dumps(case.get("kinds_seen") or [case["kind"]]),
        }
        defaults = {"ref": "{}", "kinds_seen": _dumps([case["kind"]])}
        return {name: value for name, value in fields.items()
                if not (name in _OPTIONAL and value in ("", defaults.get(name)))}
