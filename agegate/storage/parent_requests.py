"""Parent requests: the request hash, the parent's bounded text, the access export, and the
index of verified, undecided requests by due date."""

from __future__ import annotations

import json
from typing import Any

import redis

from agegate.storage import keys, replicas
from agegate.storage.keys import Retention

# Check-and-count in one step, so parallel guesses can never exceed the allowed wrong codes.
# ARGV: now (seconds), now (ISO), the wrong-code limit, then the code's hash under every live
# key (a code mailed before a key rotation still verifies after it).
_VERIFY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local f = redis.call('HMGET', KEYS[1], 'status', 'code_hash', 'code_expires_ts')
local function right(stored)
  for i = 4, #ARGV do if stored == ARGV[i] then return true end end
  return false
end
if f[1] == 'locked' then return {'locked'} end
if f[1] ~= 'pending_verification' then
  if right(f[2]) then return {'done', f[1]} end
  return {'wrong_done', f[1]}
end
if tonumber(f[3]) <= tonumber(ARGV[1]) then return {'expired'} end
if right(f[2]) then
  redis.call('HSET', KEYS[1], 'status', 'verified', 'verified_at', ARGV[2])
  return {'ok'}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'status', 'locked')
  return {'locked_now', tostring(attempts)}
end
return {'wrong', tostring(attempts)}
"""


def _shard(request_id: str) -> int:
    """The shard a stored request's id names."""
    shard = keys.shard_of_id(request_id)
    if shard is None:
        raise ValueError(f"not a sharded request id: {request_id!r}")
    return shard


class ParentRequestStore:
    """Reads are plain; writes join a caller's MULTI pipeline; the code check is one script."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention
        self._verify = replicas.ConfirmedScript(client, _VERIFY)

    # -- reads ---------------------------------------------------------------------------
    def read(self, request_id: str) -> dict[str, str]:
        """The request hash ({} when there is none)."""
        return self.r.hgetall(keys.parent_request(request_id))

    def details(self, request_id: str) -> str:
        """The parent's free text ("" once dropped)."""
        return self.r.get(keys.parent_request_details(request_id)) or ""

    def export(self, request_id: str) -> Any:
        """The access export, or None."""
        raw = self.r.get(keys.parent_request_export(request_id))
        return None if raw is None else json.loads(raw)

    def open_ids(self, due_before: float | None, limit: int) -> list[str]:
        """Verified, undecided request ids by due date (only those due before, if given),
        merged from every shard's index."""
        top = f"({due_before}" if due_before is not None else "+inf"
        pipe = self.r.pipeline(transaction=False)
        for shard in keys.all_shards():
            pipe.zrangebyscore(keys.parent_requests_open(shard), "-inf", top, start=0,
                               num=limit, withscores=True)
        merged = sorted((score, member) for page in pipe.execute() for member, score in page)
        return [member for _, member in merged[:limit]]

    def overdue_count(self, now: float) -> int:
        """Verified, undecided requests due before `now`, summed over the shards."""
        pipe = self.r.pipeline(transaction=False)
        for shard in keys.all_shards():
            pipe.zcount(keys.parent_requests_open(shard), "-inf", f"({now}")
        return int(sum(pipe.execute()))

    def watched_keys(self, request_id: str) -> list[str]:
        """What a change to one request WATCHes."""
        return [keys.parent_request(request_id)]

    # -- the code check ------------------------------------------------------------------
    def check_code(self, request_id: str, code_hashes: list[str], now_ts: int, now_iso: str,
                   max_wrong: int) -> list[str]:
        """Check a code (its hash under each live key) and count a wrong one, in one step:
        ['ok'] | ['missing'] | ['locked'] | ['expired'] | ['done', status] |
        ['wrong_done', status] | ['wrong', n] | ['locked_now', n]."""
        return self._verify(keys=[keys.parent_request(request_id)],
                            args=[now_ts, now_iso, max_wrong, *code_hashes])

    # -- writes --------------------------------------------------------------------------
    def queue_create(self, pipe: redis.client.Pipeline, request_id: str,
                     record: dict[str, str], details: str) -> None:
        """A new, unverified request; it expires soon unless the parent proves the mailbox."""
        ttl = self.retention.seconds("parent_request_unverified")
        meta_key = keys.parent_request(request_id)
        pipe.hset(meta_key, mapping=record)  # type: ignore[arg-type]
        pipe.expire(meta_key, ttl)
        if details:
            pipe.set(keys.parent_request_details(request_id), details, ex=ttl)

    def delete(self, request_id: str) -> None:
        """Forget a request whose code could not be mailed."""
        self.r.delete(keys.parent_request(request_id), keys.parent_request_details(request_id))

    def queue_verified(self, pipe: redis.client.Pipeline, request_id: str,
                       case_id: str | None, due_ts: float) -> None:
        """Keep a verified request for its full retention and list it by due date."""
        meta_key = keys.parent_request(request_id)
        if case_id:
            pipe.hset(meta_key, "case_id", case_id)
        pipe.expire(meta_key, self.retention.seconds("parent_request"))
        pipe.expire(keys.parent_request_details(request_id),
                    self.retention.seconds("parent_request_details"))
        index = keys.parent_requests_open(_shard(request_id))
        pipe.zadd(index, {request_id: due_ts})
        pipe.expire(index, self.retention.seconds("parent_request"))

    def queue_fields(self, pipe: redis.client.Pipeline, request_id: str,
                     fields: dict[str, str]) -> None:
        """Set some fields of a request (e.g. while it waits for the child's age)."""
        pipe.hset(keys.parent_request(request_id), mapping=fields)  # type: ignore[arg-type]

    def queue_child(self, pipe: redis.client.Pipeline, request_id: str, account_id: str) -> None:
        """Attach the child's platform account id."""
        pipe.hset(keys.parent_request(request_id), "child_account_id", account_id)

    def queue_decided(self, pipe: redis.client.Pipeline, request_id: str,
                      fields: dict[str, str], export: Any) -> None:
        """Record the outcome, drop the parent's text, unlist it, keep any export."""
        pipe.hset(keys.parent_request(request_id), mapping=fields)  # type: ignore[arg-type]
        # The parent's free text was needed only to decide.
        pipe.delete(keys.parent_request_details(request_id))
        pipe.zrem(keys.parent_requests_open(_shard(request_id)), request_id)
        if export is not None:
            pipe.set(keys.parent_request_export(request_id), json.dumps(export),
                     ex=self.retention.seconds("export"))
