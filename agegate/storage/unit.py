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

Durable acknowledgements (storage/replicas.py): with AGEGATE_REDIS_MIN_REPLICAS set, the attempt
whose EXEC applied WAITs for the replicas on its own connection before anything learns it was
applied; too few in time is a 503 for the caller (`NotReplicated`), whose participants abandon
as for any unknown outcome and whose follow-up steps are left to `agegate worker`.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.exceptions import WatchError
from redis.retry import Retry

from agegate.errors import StorageUnavailable
from agegate.storage import keys, replicas
from agegate.storage.keys import Retention

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


def transact(client: redis.Redis, build: Callable[[Any], Any], *watch: str,
             tag: str | None = None, shard: int | None = None) -> Any:
    """Run `build(pipe)` as WATCH(*watch) ... MULTI ... EXEC, at most once; return its value.

    `build` reads first (the pipe is in immediate mode), calls `pipe.multi()`, then queues
    writes through storage methods; a WATCH conflict runs it again on fresh reads. Every key it
    writes must share one hash slot with the watched keys (`tag` names that slot's hash tag when
    nothing is watched, or `shard` the shard). A connection error before the outcome is known
    is answered by the marker: applied once, or retried, never both.
    """
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
                    pipe.watch(marker, *watch)
                    if sent:
                        landed = pipe.get(marker)
                        if landed is not None:  # an earlier attempt landed; its reply did not
                            pipe.reset()
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
                    _execute(pipe, wanted)
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


def _execute(pipe: Any, wanted: replicas.Policy) -> None:
    """EXEC; then, when replicas must confirm, WAIT on the connection the EXEC went over.

    Both pipeline kinds hand that connection back to their pool as EXEC returns, where another
    thread could take it, so their reset() is made to keep it until the WAIT has answered.
    """
    if not wanted.replicas:
        pipe.execute()
        return
    held: list[tuple[Any, Any]] = []
    reset = pipe.reset

    def holding_reset() -> None:
        taken = _take_connection(pipe)
        if taken is not None:
            held.append(taken)
        reset()

    pipe.reset = holding_reset
    try:
        pipe.execute()
    except BaseException:
        for connection, pool in held:
            pool.release(connection)
        raise
    finally:
        del pipe.reset
    if not held:  # cannot happen after an EXEC that answered; never acknowledge unconfirmed
        raise replicas.NotReplicated()
    connection, pool = held[0]
    try:
        replicas.wait_on(connection, wanted)
    finally:
        pool.release(connection)


def _take_connection(pipe: Any) -> tuple[Any, Any] | None:
    """Take the connection a pipeline is about to release after its EXEC (watching nothing any
    more), with the pool it belongs to."""
    strategy = getattr(pipe, "_execution_strategy", None)
    if strategy is not None:  # a cluster pipeline
        connection = strategy._transaction_connection
        if connection is None or strategy._watching:
            return None
        node = strategy._nodes_manager.find_connection_owner(connection)
        if node is None or node.redis_connection is None:
            return None
        strategy._transaction_connection = None
        return connection, node.redis_connection.connection_pool
    if pipe.connection is None or pipe.watching:
        return None
    connection, pipe.connection = pipe.connection, None
    return connection, pipe.connection_pool


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
