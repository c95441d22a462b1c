"""De-identified reviewer examples: a capped, day-ordered store with counts per verdict.

An example is JSON {"x": [...], "verdict", "model", "text_model", "day"}: numbers, a verdict,
two model versions and a date. Members are prefixed with random bytes so that two examples of
one day sort in no meaningful order (an example cannot be matched to a decision by its position
and the audit trail's timestamps), and so that equal examples stay two members.
"""

from __future__ import annotations

import json
import secrets
from datetime import date, timedelta
from typing import Any

import redis

from agegate.storage import keys, keyspace, replicas
from agegate.storage.keys import Retention

# KEYS: examples, counts. ARGV: day ordinal, member, verdict, cap, oldest day ordinal kept, ttl.
# Adds one example, drops the ones past retention and then the oldest beyond the cap, keeps the
# per-verdict counts in step, and refreshes both keys' TTL: one atomic step.
_ADD = """
local function forget(members)
  for i = 1, #members do
    local verdict = string.match(members[i], '^%x+|(%a+)|')
    if verdict then redis.call('HINCRBY', KEYS[2], verdict, -1) end
  end
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[5])
if #old > 0 then
  forget(old)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[5])
end
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if over > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], over)
  local members = {}
  for i = 1, #popped, 2 do members[#members + 1] = popped[i] end
  forget(members)
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return redis.call('ZCARD', KEYS[1])
"""

VERDICTS = ("minor", "adult")


class FeedbackStore:
    """Writes are one script call; reads take the client."""

    def __init__(self, client: redis.Redis, retention: Retention, cap: int) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention
        self.cap = cap
        self._add = replicas.ConfirmedScript(client, _ADD)

    def add(self, example: dict[str, Any], day: date) -> int:
        """Store one example of ``day``; returns how many are stored now."""
        if not keyspace.current().live:
            # A verdict on a test token's made-up account teaches the model nothing (API.md,
            # "Test mode"): the test keyspace keeps no examples at all.
            return 0
        verdict = example["verdict"]
        if verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {verdict!r}")
        body = json.dumps(example, separators=(",", ":"), sort_keys=True)
        member = f"{secrets.token_hex(8)}|{verdict}|{body}"
        oldest = day - timedelta(days=self.retention.feedback_example_days)
        return int(self._add(keys=[keys.feedback_examples(), keys.feedback_counts()],
                             args=[day.toordinal(), member, verdict, self.cap,
                                   oldest.toordinal(),
                                   self.retention.seconds("feedback_example")]))

    def counts(self) -> dict[str, int]:
        """Stored examples per verdict."""
        raw = self.r.hgetall(keys.feedback_counts())
        return {v: max(0, int(raw.get(v, 0))) for v in VERDICTS}

    def all(self) -> list[dict[str, Any]]:
        """Every stored example, oldest day first."""
        members = self.r.zrange(keys.feedback_examples(), 0, -1)
        return [json.loads(m.split("|", 2)[2]) for m in members]
