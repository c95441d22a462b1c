"""Which keyspace the current request or job works in: the live one, or test mode's.

Test tokens (`name:role:token:test` in AGEGATE_API_KEYS, API.md "Test mode") must never touch
live data. That is decided once per request, from the token, by the auth hook (agegate/auth.py),
and once per job by `agegate worker`; everything below the service layer then follows it:

- every key name comes from storage/keys.py, whose every name starts with `current().prefix`
  (`agegate` or `agegate-test`);
- every stream the service names (the events stream) gets `current().stream(name)`
  (`agegate:events`, or `agegate:events:test`);
- every TTL comes from `Retention.seconds`, which caps it with `current().ttl(...)` at 24 hours
  in the test keyspace.

No service checks "is this a test?": a service that writes an account, a case or an event
writes it where the keyspace says, so no branch can forget. A ContextVar (not a thread-local)
so that a thread or an asyncio task that copies its context carries the keyspace with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

TEST_TTL_SECONDS = 86_400


@dataclass(frozen=True)
class Keyspace:
    """A prefix for every key, a suffix for every stream, and a ceiling on every TTL."""

    name: str
    prefix: str
    stream_suffix: str
    # None: the Retention table as it stands; else no key outlives this many seconds.
    max_ttl: int | None

    @property
    def live(self) -> bool:
        """The production keyspace: metrics, model feedback and live webhooks see only this."""
        return self is LIVE

    def stream(self, name: str) -> str:
        """This keyspace's copy of a stream the configuration names."""
        return name + self.stream_suffix

    def ttl(self, seconds: int) -> int:
        """A TTL from the Retention table, capped by this keyspace."""
        return seconds if self.max_ttl is None else min(seconds, self.max_ttl)


LIVE = Keyspace(name="live", prefix="agegate", stream_suffix="", max_ttl=None)
TEST = Keyspace(name="test", prefix="agegate-test", stream_suffix=":test",
                max_ttl=TEST_TTL_SECONDS)

_current: ContextVar[Keyspace] = ContextVar("agegate_keyspace", default=LIVE)


def current() -> Keyspace:
    """The keyspace of the request or job in progress (LIVE outside any)."""
    return _current.get()


def enter(space: Keyspace) -> Token[Keyspace]:
    """Switch to `space` until `leave(token)` (the auth hook and its teardown)."""
    return _current.set(space)


def leave(token: Token[Keyspace]) -> None:
    """Back to the keyspace before the matching `enter`."""
    _current.reset(token)


class _Uncounted:
    """What a LiveOnly counter hands out in the test keyspace: counts nothing."""

    def labels(self, *_: Any, **__: Any) -> _Uncounted:
        return self

    def inc(self, amount: float = 1) -> None:
        return None


class LiveOnly:
    """A Prometheus counter that counts in the live keyspace only: a test token's requests
    count in `agegate_test_requests_total` and nowhere else (API.md "Test mode")."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter

    def labels(self, *values: str) -> Any:
        return self.counter.labels(*values) if current().live else _Uncounted()

    def inc(self, amount: float = 1) -> None:
        if current().live:
            self.counter.inc(amount)


@contextmanager
def using(space: Keyspace) -> Iterator[Keyspace]:
    """Run a block in `space` (worker jobs, tests)."""
    token = enter(space)
    try:
        yield space
    finally:
        leave(token)
