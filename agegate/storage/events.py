"""The events stream downstream systems read with a consumer group.

The contract names one stream (AGEGATE_EVENTS_STREAM); test mode has its own beside it
(`<stream>:test`, storage/keyspace.py). A unit of work writes one shard's slot,
so it queues its events in that shard's outbox (storage/outbox.py), which relays each to the
stream exactly once, right after the unit and, after a crash, from `agegate worker`.
"""

from __future__ import annotations

from datetime import datetime

import redis

from agegate.clock import iso
from agegate.storage import keys, keyspace, replicas
from agegate.storage.keys import Retention
from agegate.storage.outbox import Outbox

# KEYS: the events stream. ARGV: group, start id, stream TTL (0: none). Creates the group (and
# the stream) and sets the stream's expiry in one step, so no crash between the two can leave
# a stream without a TTL in test mode's keyspace (where every key expires). The live stream
# gets none (and loses one an older version set): an expiry would delete its groups.
_ENSURE_GROUP = """
local created = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM')
if type(created) == 'table' and created.err
    and not string.find(created.err, 'BUSYGROUP', 1, true) then
  return created
end
local ttl = tonumber(ARGV[3])
if ttl == 0 then
  redis.call('PERSIST', KEYS[1])
elseif redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return 1
"""


class EventStream:
    """Events with retention trimming, queued in a caller's unit of work."""

    def __init__(self, client: redis.Redis, stream: str, retention: Retention) -> None:
        self.r = client
        self.configured = stream
        self.retention = retention
        self.outbox = Outbox(client, retention)
        self._ensure_group = replicas.ConfirmedScript(client, _ENSURE_GROUP)

    @property
    def stream(self) -> str:
        """The stream of the current keyspace: AGEGATE_EVENTS_STREAM, or `<it>:test` for test
        tokens (storage/keyspace.py), so live consumers never read a test event."""
        return keys.stream(self.configured)

    def queue_emit(
        self,
        pipe: redis.client.Pipeline,
        event_type: str,
        *,
        account_id: str,
        at: datetime,
        **ids: str,
    ) -> None:
        """Queue one event: type, account_id, at, and the ids it concerns."""
        ttl = self.retention.seconds("events")
        fields = {
            "type": event_type,
            "account_id": account_id,
            "at": iso(at),
            **{k: v for k, v in ids.items() if v is not None},
        }
        min_ms = int(at.timestamp() * 1000) - ttl * 1000
        self.outbox.queue(pipe, "event", {"stream": self.stream, "fields": fields,
                                          "min_id": max(min_ms, 0), "ttl": self._stream_ttl()})

    def _stream_ttl(self) -> int:
        """0 (no expiry) for the live stream, which carries consumer groups: trimmed by age
        instead (keys.py, Retention.events_days). Test mode's stream expires as all its keys do."""
        return 0 if keyspace.current().live else self.retention.seconds("events")

    def trim(self, now: datetime) -> int:
        """Drop entries older than the retention period (XTRIM MINID): what keeps a stream
        that no longer expires from growing through a quiet month. Returns entries dropped."""
        cutoff = int(now.timestamp() * 1000) - self.retention.seconds("events") * 1000
        return int(self.r.xtrim(self.stream, minid=max(cutoff, 0), approximate=False))

    # -- consumer groups (agegate worker) ------------------------------------------------
    def ensure_group(self, group: str, start: str = "$") -> None:
        """Create `group` reading after `start` (now, by default; idempotent), and the stream
        with its expiry in the same script (none for the live stream, see _ENSURE_GROUP)."""
        self._ensure_group(keys=[self.stream], args=[group, start, self._stream_ttl()])

    def read_group(self, group: str, consumer: str, count: int, stale_ms: int,
                   recover_from: str = "$") -> list[tuple[str, dict[str, str]]]:
        """Up to `count` entries for `consumer`: first ones another consumer left unacknowledged
        for `stale_ms` (it died), then new ones. Entries stay pending until acknowledged. A
        group that vanished (NOGROUP) is created again reading after `recover_from` (the
        caller's last entry handled, so nothing emitted in between is skipped)."""
        try:
            claimed = self.r.xautoclaim(self.stream, group, consumer, min_idle_time=stale_ms,
                                        start_id="0-0", count=count)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            # The stream expired, and its group with it, after a retention period without
            # events (test mode's stream: a day without test traffic; the live one never
            # expires, but may be deleted by hand): start it again where the caller left off.
            self.ensure_group(group, recover_from)
            return []
        entries = [(entry_id, fields or {}) for entry_id, fields in claimed[1]]
        if len(entries) < count:
            reply = self.r.xreadgroup(group, consumer, {self.stream: ">"},
                                      count=count - len(entries))
            for _, items in reply or []:
                entries.extend((entry_id, fields or {}) for entry_id, fields in items)
        return entries

    def ack(self, group: str, entry_ids: list[str]) -> None:
        """Acknowledge entries once the writes they caused are in (the stream's own slot)."""
        if entry_ids:
            self.r.xack(self.stream, group, *entry_ids)

    def read_all(self, count: int = 1000) -> list[dict[str, str]]:
        """Every retained event, oldest first (for operators and tests)."""
        return [fields for _, fields in self.r.xrange(self.stream, count=count)]
