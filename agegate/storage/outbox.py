"""The per-shard outbox: steps a unit of work must cause outside its own hash slot.

A unit of work writes one shard's slot. What it must also cause elsewhere — an event on the
contract's one events stream, identity and retry blocks (tagged by each identifier's hash), an
audit index entry for an account of another shard — it appends to its shard's outbox stream in
the same MULTI (the transactional-outbox pattern). Right after the unit is applied the same
process drains that shard, and `agegate worker` drains every shard, so a crash between the two
steps is repaired, not lost. Every step is idempotent, so two drainers may race harmlessly:

- an event is relayed once: the relay script records the outbox entry's id beside the events
  stream (same slot) and skips ids it has seen;
- a block sets an absolute expiry and never shortens a longer one;
- an index entry is a sorted-set member (adding it twice changes nothing);
- lifting a block deletes its key (deleting twice changes nothing);
- a set member (a parent request waiting on an account) is added or removed (twice is once),
  an added one with the set's TTL in the same script (never shortened);
- a case history item carries a step id and is appended only if that id is not there yet.

A step is removed from the outbox only once its writes are confirmed by the replicas
AGEGATE_REDIS_MIN_REPLICAS asks for (storage/replicas.py: WAIT on the node each key lives on);
one that is not stays for the next drain.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis
from redis.cluster import RedisCluster

from agegate.storage import keys, replicas, unit
from agegate.storage.cases import PUSH_HISTORY
from agegate.storage.keys import Retention
from agegate.storage.scripts import Script

log = logging.getLogger("agegate.storage")

BATCH = 100

# KEYS: events stream, relayed ids. ARGV: relay id, now (s), MINID, stream TTL, memory, fields...
# A stream TTL of 0 means none: the live stream carries consumer groups (ours and downstream
# systems'), which an expiry after a quiet month would delete with it, so it is trimmed by age
# (MINID) instead, and a TTL an older version set is removed. Test mode's stream expires.
_RELAY = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[3], '*', unpack(fields))
if tonumber(ARGV[4]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
else
  redis.call('PERSIST', KEYS[1])
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[5]))
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""

# KEYS: one block key. ARGV: expiry (unix s), now (unix s). Never shortens a longer block.
_BLOCK = """
local ttl = tonumber(ARGV[1]) - tonumber(ARGV[2])
if ttl <= 0 then return 0 end
if redis.call('TTL', KEYS[1]) < ttl then redis.call('SET', KEYS[1], '1', 'EX', ttl) end
return 1
"""

# KEYS: a capped sorted set (an audit index, an install's accounts). ARGV: score, member, cap,
# TTL.
_CAPPED_ZADD = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[3]) then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: a set. ARGV: member, TTL. Adds the member and extends the set's TTL to at least this,
# in one step: read apart from the write, a set deleted in between (its last member removed)
# came back without any TTL.
_SET_ADD = """
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


class Outbox:
    """Queue steps inside a unit of work; apply them after it, or from the worker."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention
        (self._relay, self._block, self._capped_zadd, self._set_add,
         self._push_history) = self._scripts = (
            Script(_RELAY), Script(_BLOCK), Script(_CAPPED_ZADD), Script(_SET_ADD),
            Script(PUSH_HISTORY))

    # -- inside a unit of work -----------------------------------------------------------
    def queue(self, pipe: redis.client.Pipeline, op: str, data: dict[str, Any]) -> None:
        """Append one step to the current unit's shard outbox; it is applied after the unit."""
        key = self.drain_after_unit()
        pipe.xadd(key, {"op": op, "data": json.dumps(data, separators=(",", ":"))})
        pipe.expire(key, self.retention.seconds("outbox_steps"))

    def drain_after_unit(self) -> str:
        """Have the current unit drain its shard's outbox once applied; returns the outbox key
        (for a caller whose script appends the step itself)."""
        work = unit.current()
        shard = work.shard
        work.after_commit(("outbox", shard), lambda: self.drain(shard))
        return keys.outbox(shard)

    # -- applying ------------------------------------------------------------------------
    def drain(self, shard: int, batch: int = BATCH) -> int:
        """Apply and remove up to `batch` steps of one shard, oldest first."""
        key = keys.outbox(shard)
        entries = self.r.xrange(key, count=batch)
        # Every step's writes, grouped by the node of their key: one pipeline per node (with
        # its WAIT when replicas must confirm), not one round trip per step.
        by_node: dict[str, list[tuple[str, Any]]] = {}
        done = []
        for entry_id, fields in entries:
            steps = self._steps(shard, entry_id, fields["op"], json.loads(fields["data"]))
            if steps is None:
                continue
            done.append(entry_id)
            for step_key, queue in steps:
                by_node.setdefault(self._node(step_key), []).append((step_key, queue))
        for group in by_node.values():

            def queue_all(pipe: Any, group: list[tuple[str, Any]] = group) -> None:
                for _, queue in group:
                    queue(pipe)

            replicas.confirmed(self.r, group[0][0], queue_all, self._scripts)
        if done:
            self.r.xdel(key, *done)
        return len(done)

    def _node(self, key: str) -> str:
        """The name of the node holding `key` ("" on a single Redis)."""
        if isinstance(self.r, RedisCluster):
            return str(self.r.get_node_from_key(key).name)
        return ""

    def pending(self) -> dict[int, int]:
        """Steps waiting per shard (only shards with any)."""
        pipe = self.r.pipeline(transaction=False)
        for shard in keys.all_shards():
            pipe.xlen(keys.outbox(shard))
        return {shard: n for shard, n in zip(keys.all_shards(), pipe.execute(), strict=True)
                if n}

    def drain_all(self) -> int:
        """One batch from every shard that has steps waiting (the worker's job)."""
        return sum(self.drain(shard) for shard in self.pending())

    def _steps(self, shard: int, entry_id: str, op: str,
               data: dict[str, Any]) -> list[tuple[str, Any]] | None:
        """One outbox entry's writes, as (key, queue(pipe)) pairs; None for an unknown op."""
        now = time.time()
        if op == "event":
            stream = data["stream"]
            fields = [item for pair in data["fields"].items() for item in pair]
            return [(stream, lambda pipe: self._relay.queue(
                pipe, [stream, keys.events_relayed(stream)],
                [f"{shard}:{entry_id}", now, data["min_id"], data["ttl"],
                 self.retention.seconds("events_relayed"), *fields]))]
        if op == "block":
            return [(key, lambda pipe, key=key: self._block.queue(
                pipe, [key], [data["until"], int(now)])) for key in data["keys"]]
        if op == "unblock":
            return [(key, lambda pipe, key=key: pipe.delete(key)) for key in data["keys"]]
        if op == "capped_zadd":
            return [(data["key"], lambda pipe: self._capped_zadd.queue(
                pipe, [data["key"]], [data["score"], data["member"], data["cap"], data["ttl"]]))]
        if op == "set_add":  # e.g. a parent request waiting on an account of another shard
            return [(data["key"], lambda pipe: self._set_add.queue(
                pipe, [data["key"]], [data["member"], int(data["ttl"])]))]
        if op == "set_remove":
            return [(data["key"], lambda pipe: pipe.srem(data["key"], data["member"]))]
        if op == "case_history":  # a case of another shard (applied once: its step id)
            return [(data["key"], lambda pipe: self._push_history.queue(
                pipe, [data["key"]], ["", "", 0, "", 0, json.dumps(data["item"])]))]
        # Written by a newer version: leave it for that version's worker.
        log.warning("unknown outbox step %r left in shard %s", op, shard)
        return None


class OutboxJob:
    """`agegate worker` job: apply what units of work left in the shards' outboxes."""

    name = "outbox"

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def run_once(self, consumer: str) -> int:
        """One batch per shard with steps waiting; 0 when every outbox is empty."""
        return self.outbox.drain_all()
