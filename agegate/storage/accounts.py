"""Per-account records: the meta hash (status, score, band) and the model's bounded state.

Both keys share the account's hash tag and are refreshed to the account retention on every
write, so an account nobody signals about for a year disappears on its own.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from agegate.storage import keys
from agegate.storage.age_signals import VERIFIED_ADULT_FIELD
from agegate.storage.keys import Retention
from agegate.storage.outbox import Outbox


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

    def signal_view(self, client: Any, account_hash: str, entry_hash: str | None = None
                    ) -> tuple[str | None, Any, str | None, str | None, str | None, str | None,
                               str | None]:
        """What folding signals in reads: (deletion id, model state, open case id, processing,
        the open case's score, until when an enhanced age signal shows a verified adult, the
        stream entry's applied-marker if `entry_hash` is given)."""
        marker = [keys.account_applied(account_hash, entry_hash)] if entry_hash else []
        deletion_id, raw_state, case_id, *applied = _mget(
            client, keys.account_deletion(account_hash), keys.account_state(account_hash),
            keys.account_open_case(account_hash), *marker)
        processing, case_score, adult_until = client.hmget(
            keys.account(account_hash), "processing", "case_score", VERIFIED_ADULT_FIELD)
        state = json.loads(raw_state) if raw_state else None
        return (deletion_id, state, case_id, processing, case_score, adult_until,
                applied[0] if applied else None)

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

    def queue_state(self, pipe: redis.client.Pipeline, account_hash: str, state: Any) -> None:
        """Store the model state (bounded; never text)."""
        raw = json.dumps(state, separators=(",", ":"), default=_plain)
        pipe.set(keys.account_state(account_hash), raw, ex=self.retention.seconds("account"))

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

    def queue_applied(self, pipe: redis.client.Pipeline, account_hash: str,
                      entry_hash: str, value: str) -> None:
        """Mark a stream entry applied, in the MULTI that writes its effects on the state."""
        pipe.set(keys.account_applied(account_hash, entry_hash), value,
                 ex=self.retention.seconds("signal_entry"))

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
