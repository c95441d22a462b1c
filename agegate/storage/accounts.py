"""Per-account records: the meta hash (status, score, band) and the model's bounded state.

Both keys share the account's hash tag and are refreshed to the account retention on every
write, so an account nobody signals about for a year disappears on its own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from agegate.storage import keys
from agegate.storage.age_signals import VERIFIED_ADULT_FIELD
from agegate.storage.keys import Retention
from agegate.storage.outbox import Outbox
from agegate.storage.scripts import Calls, Script
from agegate.storage.unit import SlotScript

# The meta fields folding signals reads (beside the deletion marker, the state, the open-case
# pointer and the entries' applied-markers).
VIEW_FIELDS = ("processing", "case_score", VERIFIED_ADULT_FIELD)

# One slot's signals, applied only if everything the caller read is unchanged (storage/unit.py
# apply_scripted: KEYS[1] the unit's marker, ARGV[1] its TTL).
# ARGV[2]: the account TTL, ARGV[3]: an entry marker's TTL, ARGV[4]: VERIFIED_ADULT_FIELD,
# ARGV[5]: the standing TTL (the meta hash's TTL follows _REFRESH_META's rule).
# Then per account, KEYS: deletion marker, state, open-case pointer, meta, m entry markers;
# ARGV: m, the fingerprint of what was read, the new state, n meta fields, n field/value
# pairs, the m markers' values ("" for an entry applied before: its marker stays as it is).
# The fingerprint is `fingerprint()` below, computed alike.
_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
local function fingerprint(values)
  local parts = {}
  for i = 1, #values do
    local v = values[i]
    if v then parts[i] = #v .. ':' .. v else parts[i] = '-' end
  end
  return redis.sha1hex(table.concat(parts, ','))
end
local groups = {}
local k, a = 2, 6
while k <= #KEYS do
  local m, nf = tonumber(ARGV[a]), tonumber(ARGV[a + 3])
  local names = {KEYS[k], KEYS[k + 1], KEYS[k + 2]}
  for j = 1, m do names[3 + j] = KEYS[k + 3 + j] end
  local values = redis.call('MGET', unpack(names))
  local meta = redis.call('HMGET', KEYS[k + 3], 'processing', 'case_score', ARGV[4])
  for j = 1, 3 do values[#values + 1] = meta[j] end
  if fingerprint(values) ~= ARGV[a + 1] then return 0 end
  groups[#groups + 1] = {k, a, m, nf}
  k, a = k + 4 + m, a + 4 + 2 * nf + m
end
for _, g in ipairs(groups) do
  local k, a, m, nf = g[1], g[2], g[3], g[4]
  for j = 1, m do
    local value = ARGV[a + 3 + 2 * nf + j]
    if value ~= '' then redis.call('SET', KEYS[k + 3 + j], value, 'EX', ARGV[3]) end
  end
  redis.call('SET', KEYS[k + 1], ARGV[a + 2], 'EX', ARGV[2])
  redis.call('HSETNX', KEYS[k + 3], 'status', 'active')
  if nf > 0 then redis.call('HSET', KEYS[k + 3], unpack(ARGV, a + 4, a + 3 + 2 * nf)) end
  local f = redis.call('HMGET', KEYS[k + 3], 'status', 'processing', 'verified', ARGV[4])
  local ttl = ARGV[2]
  if f[1] == 'restricted' or f[2] == 'stopped' or (f[3] and f[3] ~= '')
      or (f[4] and f[4] ~= '') then
    ttl = ARGV[5]
  end
  redis.call('EXPIRE', KEYS[k + 3], ttl)
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""
RECORD_SCRIPT = Script(_RECORD)


def fingerprint(values: Sequence[str | None]) -> str:
    """What the record script compares: SHA1 of the values read, each length-prefixed."""
    joined = ",".join("-" if v is None else f"{len(v.encode())}:{v}" for v in values)
    return hashlib.sha1(joined.encode()).hexdigest()  # noqa: S324 - a change check, not a MAC


def encode_state(state: Any) -> str:
    """A model state as stored: compact JSON (numpy numbers as plain ones)."""
    return json.dumps(state, separators=(",", ":"), default=_plain)


@dataclass(frozen=True)
class SignalView:
    """What folding signals into one account reads, with its fingerprint."""

    deletion_id: str | None
    state: Any
    case_id: str | None
    processing: str | None
    case_score: str | None
    adult_until: str | None
    applied: tuple[str | None, ...]  # each entry's applied-marker, in the order asked
    fingerprint: str


@dataclass
class AccountWrite:
    """One account's share of a slot's record script."""

    account_hash: str
    view: SignalView
    state: Any
    meta: dict[str, str]
    # (entry hash, marker value) of every entry read, in the order read; "" leaves a marker
    markers: list[tuple[str, str]]


def _plain(value: Any) -> Any:
    """numpy scalars and arrays in a model state, as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _mget(client: Any, *names: str) -> list[str | None]:
    """MGET of keys in one slot. redis-py's cluster pipeline refuses its `mget` method (it
    cannot know the keys share a slot); the command itself is fine and the slot is checked."""
    return client.execute_command("MGET", *names)


# The meta hash's TTL, from what it holds after the write: an account restricted pending
# verification, one whose processing a parent's objection stopped, or one verified adult keeps
# that standing for Retention.account_standing_days, not the 365 days of an idle account (the
# restriction, the objection and the evidence would otherwise vanish with the score). Set on
# every write, so lifting a restriction brings the plain account TTL back.
# KEYS: the meta hash. ARGV: account TTL, standing TTL, the age-signal adult field.
_REFRESH_META = """
local f = redis.call('HMGET', KEYS[1], 'status', 'processing', 'verified', ARGV[3])
local ttl = ARGV[1]
if f[1] == 'restricted' or f[2] == 'stopped' or (f[3] and f[3] ~= '')
    or (f[4] and f[4] ~= '') then
  ttl = ARGV[2]
end
redis.call('EXPIRE', KEYS[1], ttl)
return tonumber(ttl)
"""


class AccountStore:
    """Reads take a client or a WATCHing pipeline; writes join a caller's MULTI pipeline."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.retention = retention
        self.outbox = Outbox(client, retention)

    def meta(self, client: Any, account_hash: str) -> dict[str, str]:
        """The meta hash ({} for an account never seen)."""
        return client.hgetall(keys.account(account_hash))

    def seen(self, client: Any, account_hash: str) -> bool:
        """True when the platform told this service about the account (signals, an age check
        naming it, a content removal) or it was terminated. A parent request's own case does
        not count: a request must never make an account out of a name."""
        return bool(client.exists(keys.account_deletion(account_hash), keys.account(account_hash),
                                  keys.account_state(account_hash),
                                  keys.account_identifiers(account_hash),
                                  keys.content_removals(account_hash)))

    def existing_hash(self, candidates: list[str]) -> str | None:
        """Of an account's hashes under each live key (primary first), the first under which
        this service holds anything (one round trip), else None."""
        pipe = self.r.pipeline(transaction=False)
        for account_hash in candidates:
            pipe.exists(keys.account_deletion(account_hash), *keys.account_keys(account_hash))
        for account_hash, found in zip(candidates, pipe.execute(), strict=True):
            if found:
                return account_hash
        return None

    def state(self, client: Any, account_hash: str) -> Any:
        """The model's aggregate state, or None."""
        raw = client.get(keys.account_state(account_hash))
        return json.loads(raw) if raw else None

    def queue_signal_view(self, calls: Calls, account_hash: str,
                          entry_hashes: Sequence[str]) -> tuple[int, int]:
        """Queue the reads of `signal_view_of` (two commands, one slot)."""
        return (calls.command("MGET", keys.account_deletion(account_hash),
                              keys.account_state(account_hash),
                              keys.account_open_case(account_hash),
                              *[keys.account_applied(account_hash, e) for e in entry_hashes]),
                calls.command("HMGET", keys.account(account_hash), *VIEW_FIELDS))

    @staticmethod
    def signal_view_of(found: list[str | None], meta: list[str | None]) -> SignalView:
        """The replies of `queue_signal_view` as a SignalView."""
        deletion_id, raw_state, case_id, *applied = found
        processing, case_score, adult_until = meta
        return SignalView(deletion_id, json.loads(raw_state) if raw_state else None, case_id,
                          processing, case_score, adult_until, tuple(applied),
                          fingerprint([*found, *meta]))

    def record_unit(self, tag: str, writes: Sequence[AccountWrite]) -> SlotScript:
        """One slot's record script call: every account's state, meta fields and entry
        markers, applied only if each account's view is unchanged."""
        names: list[str] = []
        args: list[Any] = [self.retention.seconds("account"),
                           self.retention.seconds("signal_entry"), VERIFIED_ADULT_FIELD,
                           self.retention.seconds("account_standing")]
        for w in writes:
            h = w.account_hash
            names += [keys.account_deletion(h), keys.account_state(h), keys.account_open_case(h),
                      keys.account(h), *[keys.account_applied(h, e) for e, _ in w.markers]]
            args += [len(w.markers), w.view.fingerprint, encode_state(w.state), len(w.meta),
                     *[item for pair in w.meta.items() for item in pair],
                     *[value for _, value in w.markers]]
        return SlotScript(tag, names, args)

    def overview(self, account_hash: str) -> tuple[dict[str, str], str | None, str | None]:
        """(meta, open case id, deletion id) in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(keys.account(account_hash))
        pipe.get(keys.account_open_case(account_hash))
        pipe.get(keys.account_deletion(account_hash))
        meta, case_id, deletion_id = pipe.execute()
        return meta, case_id, deletion_id

    def open_case(self, client: Any, account_hash: str, kind: str = "classifier") -> str | None:
        """The account's one open case id of `kind`'s pointer (age signals keep their own)."""
        return client.get(keys.open_case_pointer(account_hash, kind))

    def deletion_and_open_case(self, client: Any, account_hash: str
                               ) -> tuple[str | None, str | None]:
        """(deletion id, open case id) in one round trip."""
        deletion_id, case_id = _mget(client, keys.account_deletion(account_hash),
                                     keys.account_open_case(account_hash))
        return deletion_id, case_id

    def case_ids(self, client: Any, account_hash: str) -> list[str]:
        """Every case id opened on the account, sorted."""
        return sorted(client.smembers(keys.account_cases(account_hash)))

    def linked_identifiers(self, client: Any, account_hash: str) -> list[tuple[str, str]]:
        """The (kind, keyed hash) identifiers the account used in its age checks."""
        members = client.zrange(keys.account_identifiers(account_hash), 0, -1)
        return [(kind, digest) for kind, _, digest in (m.partition(":") for m in members)]

    def queue_forget(self, pipe: redis.client.Pipeline, account_hash: str) -> None:
        """Delete everything held on the account (termination)."""
        pipe.delete(*keys.account_keys(account_hash))

    def queue_meta(self, pipe: redis.client.Pipeline, account_hash: str, account_id: str,
                   fields: dict[str, Any], drop: tuple[str, ...] = ()) -> None:
        """Set some meta fields (creating the account as active if new) and refresh its TTL."""
        key = keys.account(account_hash)
        pipe.hsetnx(key, "status", "active")
        pipe.hset(key, mapping={"account_id": account_id, **fields})  # type: ignore[dict-item]
        if drop:
            pipe.hdel(key, *drop)
        # EVAL through execute_command: the cluster pipeline has no eval(), but queues EVAL.
        pipe.execute_command("EVAL", _REFRESH_META, 1, key, self.retention.seconds("account"),
                             self.retention.seconds("account_standing"), VERIFIED_ADULT_FIELD)

    def queue_wait(self, pipe: redis.client.Pipeline, account_hash: str,
                   request_id: str) -> None:
        """Note a parent request waiting for this account's age to be established. The
        request's unit of work is in the request's shard, which need not be the account's (a
        child named by email): the note goes through that unit's outbox."""
        self.outbox.queue(pipe, "set_add", {
            "key": keys.parent_requests_waiting(account_hash), "member": request_id,
            "ttl": self.retention.seconds("parent_request")})

    def queue_unwait(self, pipe: redis.client.Pipeline, account_hash: str,
                     request_id: str) -> None:
        """The request no longer waits (through the outbox, as queue_wait)."""
        self.outbox.queue(pipe, "set_remove", {
            "key": keys.parent_requests_waiting(account_hash), "member": request_id})

    def unwait(self, account_hash: str, request_id: str) -> None:
        """Drop a request that no longer waits (decided elsewhere) from the account's list."""
        self.r.srem(keys.parent_requests_waiting(account_hash), request_id)

    def waiting(self, client: Any, account_hash: str) -> list[str]:
        """Parent requests waiting for this account's age, oldest id first."""
        return sorted(client.smembers(keys.parent_requests_waiting(account_hash)))

    def shorten_applied(self, pairs: list[tuple[str, str]]) -> None:
        """Give stream-entry markers, as (account hash, entry hash) pairs, the settled TTL."""
        if not pairs:
            return
        ttl = self.retention.seconds("settled_signal_entry")
        pipe = self.r.pipeline(transaction=False)  # one key each, in many slots
        for account_hash, entry_hash in pairs:
            pipe.expire(keys.account_applied(account_hash, entry_hash), ttl)
        pipe.execute()

    def mark_applied(self, account_hash: str, entry_hash: str, value: str) -> None:
        """Note that an applied entry's follow-up step is done too (keeping the marker's TTL)."""
        self.r.set(keys.account_applied(account_hash, entry_hash), value, xx=True,
                   keepttl=True)

    def queue_drop_state(self, pipe: redis.client.Pipeline, account_hash: str) -> None:
        """Forget the model state (an objection to processing)."""
        pipe.delete(keys.account_state(account_hash))

    def queue_pointer(self, pipe: redis.client.Pipeline, account_hash: str,
                      case_id: str | None, kind: str = "classifier") -> None:
        """Point the account at its one open case (of `kind`'s pointer), or clear it."""
        key = keys.open_case_pointer(account_hash, kind)
        if case_id:
            pipe.set(key, case_id, ex=self.retention.seconds("case"))
        else:
            pipe.delete(key)
