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
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any, Protocol

import redis
from redis.exceptions import WatchError

from agegate.errors import StorageUnavailable
from agegate.storage import keys
from agegate.storage.keys import Retention

# Conflicting writers retry; past this many conflicts in one call the store is too contended.
MAX_ATTEMPTS = 100
MARKER_SECONDS = Retention.unit_marker_seconds


class Participant(Protocol):
    """Something that must learn whether an attempt was applied (e.g. an audit chain)."""

    def commit(self) -> None: ...

    def abandon(self) -> None: ...


class UnitOfWork:
    """What one transact() call holds: each attempt's participants and finishing steps."""

    def __init__(self) -> None:
        self.attempts: list[dict[Any, Participant]] = []
        self.finishers: list[Callable[[], None]] = []
        self.held: list[Any] = []

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
             tag: str | None = None) -> Any:
    """Run `build(pipe)` as WATCH(*watch) ... MULTI ... EXEC, at most once; return its value.

    `build` reads first (the pipe is in immediate mode), calls `pipe.multi()`, then queues
    writes through storage methods; a WATCH conflict runs it again on fresh reads. Every key it
    writes must share one hash slot with the watched keys (`tag` names that slot's hash tag when
    nothing is watched). A connection error before the outcome is known is answered by the
    marker: applied once, or retried, never both.
    """
    unit = UnitOfWork()
    outer = getattr(_local, "unit", None)
    _local.unit = unit
    marker = keys.unit_marker(tag if tag is not None else keys.hash_tag(*watch),
                              secrets.token_urlsafe(12))
    sent: list[tuple[int, Any]] = []  # attempts whose EXEC was sent: (number, build's value)
    try:
        with client.pipeline(transaction=True) as pipe:
            for _ in range(MAX_ATTEMPTS):
                try:
                    pipe.watch(marker, *watch)
                    if sent:
                        applied = pipe.get(marker)
                        if applied is not None:  # an earlier attempt landed; its reply did not
                            pipe.reset()
                            return _applied(unit, sent, int(applied))
                    unit.attempts.append({})
                    number = len(unit.attempts) - 1
                    value = build(pipe)
                    if not pipe.explicit_transaction:
                        if not sent:  # it only read: nothing to apply
                            pipe.reset()
                            return _applied(unit, [(number, value)], number)
                        pipe.multi()  # seal off any earlier attempt still in flight
                    pipe.set(marker, number, ex=MARKER_SECONDS)
                    sent.append((number, value))
                    pipe.execute()
                    return _applied(unit, sent, number)
                except WatchError:
                    continue  # a conflict, or a dead connection: the marker tells which
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


def _applied(unit: UnitOfWork, sent: list[tuple[int, Any]], number: int) -> Any:
    """Attempt `number` was applied: tell its participants and return its value."""
    for participant in unit.attempts[number].values():
        participant.commit()
    return dict(sent)[number]
