"""The signal stream: platforms XADD entries, `agegate worker` reads them through one group.

Every stream command lives here: creating the consumer group, reading new entries, taking over
a dead worker's pending ones, acknowledging, dead-lettering and the figures for
`GET /v1/admin/ingest`. An acknowledged entry is deleted in the same MULTI, so message text
leaves Redis as soon as it has been scored; what remains in the stream is exactly what has not
been applied yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis

from agegate.storage import keys, replicas
from agegate.storage.keys import Retention

GROUP = "agegate"
# Dead letters are for humans to inspect: keep the newest ones if a flood of bad entries comes.
DEAD_LETTER_MAXLEN = 100_000


@dataclass
class Entry:
    """One stream entry as read: its stream id, its fields, and how often it was delivered."""

    entry_id: str
    fields: dict[str, str]
    deliveries: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class SignalStreamStore:
    """One signal stream and its consumer group."""

    def __init__(self, client: redis.Redis, stream: str, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.configured = stream
        self.retention = retention
        self._group_ready = False
        self._settle = replicas.ConfirmedScript(client, _SETTLE)
        self._dead_letter = replicas.ConfirmedScript(client, _DEAD_LETTER)

    @property
    def stream(self) -> str:
        """The current keyspace's copy (storage/keyspace.py). Test mode has no stream door (the
        stream is the platform's, not a token's) and no worker reads `<stream>:test`: a test
        token's GET /v1/admin/ingest describes that empty stream, never the live one."""
        return keys.stream(self.configured)

    @property
    def dead(self) -> str:
        return keys.signals_dead(self.stream)

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing; from the stream's start, so
        entries published before the first worker started are applied too."""
        if self._group_ready:
            return
        try:
            self.r.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        self._group_ready = True

    def read_new(self, consumer: str, count: int, block_ms: int) -> list[Entry]:
        """Up to `count` entries never delivered to any worker, waiting at most `block_ms`."""
        try:
            reply = self.r.xreadgroup(GROUP, consumer, {self.stream: ">"}, count=count,
                                      block=block_ms)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self._group_ready = False  # the stream was deleted: recreate on the next batch
            return []
        return [Entry(entry_id, fields or {}) for _, items in reply or [] for entry_id, fields
                in items]

    def claim_stale(self, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Take over up to `count` entries another worker (or this one, before a failure) was
        given at least `min_idle_ms` ago and never acknowledged, with their delivery counts."""
        try:
            reply = self.r.xautoclaim(self.stream, GROUP, consumer, min_idle_ms, "0-0",
                                      count=count)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self._group_ready = False
            return []
        claimed = [(entry_id, fields) for entry_id, fields in reply[1] if entry_id is not None]
        if not claimed:
            return []
        ids = [entry_id for entry_id, _ in claimed]
        # XAUTOCLAIM counts the delivery; XPENDING says how many there have been in all.
        pending = self.r.xpending_range(self.stream, GROUP, min=min(ids, key=_order),
                                        max=max(ids, key=_order), count=len(ids) + 10,
                                        consumername=consumer)
        deliveries = {p["message_id"]: int(p["times_delivered"]) for p in pending}
        return [Entry(entry_id, fields or {}, deliveries.get(entry_id, 1))
                for entry_id, fields in claimed]

    def prune_consumers(self, idle_ms: int) -> list[str]:
        """Forget consumer names that hold no pending entry and have been idle `idle_ms`: each
        worker start adds a name (host and pid), and a stopped worker's would stay forever.
        Safe for a live worker too: its next read brings its name back."""
        gone = [c["name"] for c in self.r.xinfo_consumers(self.stream, GROUP)
                if int(c["pending"]) == 0 and int(c["idle"]) >= idle_ms]
        for name in gone:
            # Only if it is still empty: a name that took an entry meanwhile stays.
            self.r.eval(_DELETE_IF_EMPTY, 1, self.stream, GROUP, name)
        return gone

    def settle(self, entry_ids: list[str]) -> None:
        """Acknowledge applied (or dead-lettered) entries and delete them, in one step: the
        text they carry goes once its effects are written (and, with AGEGATE_REDIS_MIN_REPLICAS,
        confirmed by the replicas: the units that applied them waited for that already)."""
        if not entry_ids:
            return
        self._settle(keys=[self.stream], args=[GROUP, *entry_ids])

    def dead_letter(self, entry: Entry, error: dict[str, Any]) -> None:
        """Copy an entry that cannot be applied to the dead-letter stream with its error.

        Written before the entry is settled (another key, possibly another cluster slot): a
        crash in between leaves a duplicate dead letter, never a lost entry.
        """
        fields = {"entry_id": entry.entry_id, "error": json.dumps(error, sort_keys=True),
                  **{f"entry.{name}": value for name, value in entry.fields.items()}}
        self._dead_letter(keys=[self.dead],
                          args=[DEAD_LETTER_MAXLEN, self.retention.seconds("signal_dead_letter"),
                                *(item for pair in fields.items() for item in pair)])

    def dead_letters(self, count: int = 100) -> list[tuple[str, dict[str, str]]]:
        """The oldest dead letters (for operators and tests)."""
        return self.r.xrange(self.dead, count=count)

    def status(self) -> dict[str, Any]:
        """length, lag, pending, dead and consumers of the stream and its group."""
        pipe = self.r.pipeline(transaction=False)
        pipe.xlen(self.stream)
        pipe.xlen(self.dead)
        pipe.exists(self.stream)
        length, dead, exists = pipe.execute()
        group: dict[str, Any] = {}
        if exists:
            group = next((g for g in self.r.xinfo_groups(self.stream) if g["name"] == GROUP), {})
        pending = int(group.get("pending", 0))
        lag = group.get("lag")
        if lag is None:
            # Redis < 7 has no `lag` (and 7 gives none after some deletions). Every entry still
            # in the stream is either undelivered or pending, because settle() deletes what it
            # acknowledges, so the rest of the stream is the lag.
            lag = max(0, int(length) - pending) if group else int(length)
        return {"stream": self.stream, "group": GROUP, "length": int(length), "lag": int(lag),
                "pending": pending, "dead": int(dead), "consumers": int(group.get("consumers", 0))}


# KEYS: the stream. ARGV: the group, then the entry ids: acknowledged and deleted together.
_SETTLE = """
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
return redis.call('XDEL', KEYS[1], unpack(ids))
"""

# KEYS: the dead-letter stream. ARGV: its MAXLEN, its TTL, then field, value pairs. The letter
# and the stream's expiry in one step: a worker dying between two commands would leave the
# stream without a TTL.
_DEAD_LETTER = """
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# XGROUP DELCONSUMER drops the consumer's pending entries with it, so check and delete in one
# step: a consumer that took an entry since XINFO was read is left alone.
_DELETE_IF_EMPTY = """
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1] end
  end
  if name == ARGV[2] then
    if pending == 0 then return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name) end
    return -1
  end
end
return 0
"""


def _order(entry_id: str) -> tuple[int, int]:
    """Stream ids compare as (milliseconds, sequence), not as strings."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
