"""One unit of work: WATCH ... MULTI ... EXEC in one hash slot, applied at most once.

redis-py resends a command after a connection error, and re-runs a watched transaction when its
connection dies; either way a transaction whose EXEC was applied but whose reply was lost would
be applied twice (two audit entries on one chain head, two cases, two deletions). So every unit
of work also writes a marker, unique to the call, in the same MULTI and the same slot, and WATCHes
it from the start of every attempt:

- an attempt that finds its call's marker knows an earlier attempt was applied, and returns that
  attempt's result instead of applying anything again;
- no two attempts of one call can both apply: the first EXEC sets the marker, and every other
  attempt watched it, so its EXEC is refused.

The marker lives for `Retention.unit_marker_seconds`, far longer than the client's socket timeout.
Services see only `transact(client, build, *watch, tag=...)` and the pipeline storage methods
queue writes on; what must follow the outcome (the audit chain's head) joins the unit through
`current().join(...)`.

The batch-first paths (many accounts' signals at once) use `apply_scripted` instead: each slot's
share of the batch is one server-side script that checks what was read is unchanged and applies
the slot's writes atomically, with the same kind of marker, all slots in one pipeline.

Durable acknowledgements (storage/replicas.py): with AGEGATE_REDIS_MIN_REPLICAS set, a unit known
applied (`known_applied`, the one place) is confirmed by the replicas of its slot's primary
before anything learns it was applied; too few in time is a 503 for the caller
(`NotReplicated`), whose participants abandon as for any unknown outcome and whose follow-up
steps are left to `agegate worker`.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.exceptions import WatchError
from redis.retry import Retry

from agegate.errors import StorageUnavailable
from agegate.storage import keys, replicas
from agegate.storage.keys import Retention
from agegate.storage.scripts import Calls, Script

# Conflicting writers retry; past this many conflicts in one call the store is too contended.
MAX_ATTEMPTS = 100
# Connections lost within one call before it gives up (a 503 for the caller).
MAX_LOST_CONNECTIONS = 3
MARKER_SECONDS = Retention.unit_marker_seconds


class Participant(Protocol):
    """Something that must learn whether an attempt was applied (e.g. an audit chain)."""

    def commit(self) -> None: ...

    def abandon(self) -> None: ...


class UnitOfWork:
    """What one transact() call holds: each attempt's participants and finishing steps."""

    def __init__(self, tag: str | None) -> None:
        self.tag = tag
        self.attempts: list[dict[Any, Participant]] = []
        self.finishers: list[Callable[[], None]] = []
        self.held: list[Any] = []
        self.after: dict[Any, Callable[[], Any]] = {}

    @property
    def shard(self) -> int:
        """The shard whose slot this unit writes (every unit writes one shard)."""
        if self.tag is None:
            raise RuntimeError("this unit of work names no shard")
        return keys.shard_of_tag(self.tag)

    def after_commit(self, key: Any, step: Callable[[], Any]) -> None:
        """Run `step` once, after the unit was applied (e.g. drain the shard's outbox)."""
        self.after.setdefault(key, step)

    def join(self, owner: Any, factory: Callable[[], Participant]) -> Any:
        """The current attempt's participant for `owner`, created on first use."""
        attempt = self.attempts[-1]
        if owner not in attempt:
            attempt[owner] = factory()
        return attempt[owner]

    def hold(self, lock: Any) -> None:
        """Acquire `lock` (once per call) and keep it until the whole call is over."""
        if all(held is not lock for held in self.held):
            lock.acquire()
            self.held.append(lock)
            self.finishers.append(lock.release)


_local = threading.local()
log = logging.getLogger("agegate.storage")


def current() -> UnitOfWork:
    """The unit of work in progress on this thread."""
    unit = getattr(_local, "unit", None)
    if unit is None:
        raise RuntimeError("this write belongs inside transact()")
    return unit


def watch(pipe: Any, *names: str) -> None:
    """WATCH more keys from inside a unit of work's build step (before `pipe.multi()`)."""
    pipe.watch(*names)


def known_applied(client: Any, markers: Sequence[str]) -> None:
    """The one place where units of work are known applied (each named by its applied-once
    marker), before anyone learns so: with AGEGATE_REDIS_MIN_REPLICAS, their replicas must
    confirm them first (storage/replicas.py), else NotReplicated (a 503 for the caller)."""
    replicas.confirm_units(client, markers, MARKER_SECONDS * 1000)


def transact(client: redis.Redis, build: Callable[[Any], Any], *watch: str,
             tag: str | None = None, shard: int | None = None, reads: bool = True) -> Any:
    """Run `build(pipe)` as WATCH(*watch) ... MULTI ... EXEC, at most once; return its value.

    `build` reads first (the pipe is in immediate mode), calls `pipe.multi()`, then queues
    writes through storage methods; a WATCH conflict runs it again on fresh reads. Every key it
    writes must share one hash slot with the watched keys (`tag` names that slot's hash tag when
    nothing is watched, or `shard` the shard). A connection error before the outcome is known
    is answered by the marker: applied once, or retried, never both.

    `reads=False` says `build` only writes (it calls `pipe.multi()` first): its first attempt
    then sends MULTI ... EXEC in one round trip, without a WATCH that nothing could trip.
    """
    if reads is False and watch:
        raise ValueError("a unit that watches keys reads them")
    if shard is not None:
        tag = keys.shard_tag(shard)[1:-1]
    unit = UnitOfWork(tag if tag is not None else keys.hash_tag(*watch))
    outer = getattr(_local, "unit", None)
    _local.unit = unit
    marker = keys.unit_marker(unit.tag, secrets.token_urlsafe(12))
    sent: list[tuple[int, Any]] = []  # attempts whose EXEC was sent: (number, build's value)
    lost = 0  # connections lost so far
    applied = False  # whether the call's writes are known to be in
    wanted = replicas.policy(client)
    try:
        with client.pipeline(transaction=True) as pipe:
            _never_resend(pipe)
            for _ in range(MAX_ATTEMPTS):
                try:
                    if reads or sent:
                        pipe.watch(marker, *watch)
                    if sent:
                        landed = pipe.get(marker)
                        if landed is not None:  # an earlier attempt landed; its reply did not
                            pipe.reset()
                            known_applied(client, [marker])
                            value = _applied(unit, sent, int(landed))
                            applied = True
                            return value
                    unit.attempts.append({})
                    number = len(unit.attempts) - 1
                    value = build(pipe)
                    if not _in_multi(pipe):
                        if not sent and not wanted.replicas:  # it only read: nothing to apply
                            pipe.reset()
                            return _applied(unit, [(number, value)], number)
                        # Seal off any earlier attempt still in flight; or, when replicas
                        # must confirm, write the marker anyway, so that the WAIT after it
                        # covers what was read (a retry answering from an earlier, unconfirmed
                        # application must not acknowledge it unconfirmed).
                        pipe.multi()
                    pipe.set(marker, number, ex=MARKER_SECONDS)
                    sent.append((number, value))
                    pipe.execute()
                    known_applied(client, [marker])
                    value = _applied(unit, sent, number)
                    applied = True
                    return value
                except WatchError:
                    continue  # a conflict, or a dead connection: the marker tells which
                except (redis.ConnectionError, redis.TimeoutError):
                    # Not resent by the client (see _never_resend): the marker tells.
                    pipe.reset()
                    lost += 1
                    if lost > MAX_LOST_CONNECTIONS:
                        raise
        raise StorageUnavailable("The store is too busy to apply this change; try again.")
    except Exception:
        # Some attempt may have been applied without our hearing back: its participants must
        # not guess (an audit writer starts a fresh chain).
        for number, _ in sent:
            for participant in unit.attempts[number].values():
                participant.abandon()
        raise
    finally:
        _local.unit = outer
        for step in reversed(unit.finishers):
            step()
        if applied:
            _after_commit(unit)


def _after_commit(unit: UnitOfWork) -> None:
    """Follow-up steps of an applied unit; one that fails is left to `agegate worker`."""
    for step in unit.after.values():
        try:
            step()
        except (redis.RedisError, replicas.NotReplicated) as error:
            # The unit is applied (and confirmed): its outbox keeps the step for the worker.
            log.warning("follow-up step left to the worker: %s", type(error).__name__)


def _in_multi(pipe: Any) -> bool:
    """Whether `build` called pipe.multi() (a plain or a cluster pipeline)."""
    strategy = getattr(pipe, "_execution_strategy", None)
    if strategy is not None:
        return bool(strategy._explicit_transaction)
    return bool(pipe.explicit_transaction)


def _never_resend(pipe: Any) -> None:
    """Make the cluster pipeline report a lost connection instead of resending MULTI/EXEC.

    A plain Pipeline that WATCHes turns a lost connection into a WatchError itself; redis-py's
    cluster transaction instead resends the whole MULTI/EXEC on a new connection, where the
    WATCH no longer holds, so an applied transaction could be applied again. transact() does
    its own retrying, guarded by the marker.
    """
    strategy = getattr(pipe, "_execution_strategy", None)
    if strategy is not None and hasattr(strategy, "_retry"):
        strategy._retry = Retry(NoBackoff(), 0, supported_errors=strategy._retry._supported_errors)


def _applied(unit: UnitOfWork, sent: list[tuple[int, Any]], number: int) -> Any:
    """Attempt `number` was applied: tell its participants and return its value."""
    for participant in unit.attempts[number].values():
        participant.commit()
    return dict(sent)[number]


@dataclass
class SlotScript:
    """One slot's share of a batch: a script call that checks its reads and applies its writes.

    The script gets its unit's applied-once marker as KEYS[1] and the marker's TTL as ARGV[1]
    ahead of `keys` and `args`; it must answer 1 without writing when the marker exists (an
    earlier send of the same call was applied), 0 without writing when what the caller read has
    changed, else write everything, set the marker and answer 1.
    """

    tag: str
    keys: list[str]
    args: list[Any]
    marker: str = field(init=False)

    def __post_init__(self) -> None:
        self.marker = keys.unit_marker(self.tag, secrets.token_urlsafe(12))


def apply_scripted(client: Any, script: Script, units: Sequence[SlotScript]) -> list[bool]:
    """Run every slot's script in one pipeline; per unit, True when applied, False when its
    reads were stale (nothing written: the caller reads again and builds a new unit).

    A lost connection resends the same calls: a script whose marker exists answers "applied"
    without writing again, so each unit is applied at most once either way. The applied ones
    are `known_applied` together (confirmed by replicas there when that is required).
    """
    if not units:
        return []
    calls = Calls(client)
    for work in units:
        calls.script(script, [work.marker, *work.keys], [MARKER_SECONDS, *work.args])
    for lost in range(MAX_LOST_CONNECTIONS + 1):
        try:
            replies = calls.execute()
            break
        except (redis.ConnectionError, redis.TimeoutError):
            if lost == MAX_LOST_CONNECTIONS:
                raise
    applied = [not isinstance(reply, Exception) and int(reply) == 1 for reply in replies]
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply  # a script error: its slot wrote nothing
    known_applied(client, [work.marker for work, done in zip(units, applied, strict=True)
                           if done])
    return applied
