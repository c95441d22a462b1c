"""Durable acknowledgements (API.md): a write is acknowledged once enough replicas have it.

Redis replicates asynchronously, so a primary that dies right after answering can take an
acknowledged write with it. With `AGEGATE_REDIS_MIN_REPLICAS` at 1 or more, every write path
ends with `WAIT numreplicas timeout` on the primary that owns the written slot, on the
connection that made the last write there (WAIT counts what *that connection* wrote), and
refuses to acknowledge otherwise: `NotReplicated`, a 503 `storage_unavailable` with
Retry-After, whose retry is safe because every write is idempotent.

- Units of work (storage/unit.py, `known_applied`: the one place a unit is known applied, by
  a MULTI/EXEC or a slot's script) are confirmed through their applied-once markers
  (`confirm_units`): PEXPIRE on the marker, then WAIT, in one round trip to the slot's primary.
  The marker must be there (so the unit is on that node, even after a failover moved the slot)
  and the PEXPIRE is a write replicated after the unit, so the WAIT confirms the unit too.
- Writes outside a unit (the outbox's steps, the signal stream's acknowledgements and dead
  letters, the stores' Lua scripts) run through `confirmed()`: a non-transactional pipeline on
  the key's primary with WAIT as its last command.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client import Counter
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from agegate.errors import StorageUnavailable
from agegate.storage.keyspace import LiveOnly
from agegate.storage.scripts import Script

# Live writes only: test mode's requests count in agegate_test_requests_total alone.
WAIT_TIMEOUTS = LiveOnly(Counter(
    "agegate_redis_wait_timeouts_total",
    "Writes that fewer than AGEGATE_REDIS_MIN_REPLICAS replicas confirmed within "
    "AGEGATE_REDIS_WAIT_MS (each answered 503, or left for a later retry)",
))


@dataclass(frozen=True)
class Policy:
    """How many replicas must confirm a write, and how long to wait for them."""

    replicas: int = 0
    timeout_ms: int = 500


NO_WAIT = Policy()
_policies: weakref.WeakKeyDictionary[Any, Policy] = weakref.WeakKeyDictionary()


class NotReplicated(StorageUnavailable):
    """The write reached the primary, but too few replicas confirmed it in time."""

    message = "The change was not confirmed by enough replicas in time; try again."


def require(client: redis.Redis, replicas: int, timeout_ms: int) -> None:
    """Every write through `client` must be confirmed by `replicas` replicas."""
    _policies[client] = Policy(replicas, timeout_ms)


def policy(client: Any) -> Policy:
    """The client's policy (no waiting unless `require` said otherwise)."""
    return _policies.get(client, NO_WAIT)


def wait_on(connection: Any, wanted: Policy) -> None:
    """WAIT on the connection that just wrote; NotReplicated unless enough replicas have it."""
    try:
        connection.send_command("WAIT", wanted.replicas, wanted.timeout_ms)
        acked = int(connection.read_response())
    except redis.RedisError as error:
        connection.disconnect()  # its reply may still be on the way: never reuse it
        WAIT_TIMEOUTS.inc()
        raise NotReplicated() from error
    check(acked, wanted)


def check(acked: Any, wanted: Policy) -> None:
    """A WAIT's reply: NotReplicated when fewer replicas than wanted confirmed."""
    if isinstance(acked, Exception) or int(acked) < wanted.replicas:
        WAIT_TIMEOUTS.inc()
        raise NotReplicated()


def confirm_units(client: Any, markers: Sequence[str], ttl_ms: int) -> None:
    """Units of work known applied (by a MULTI/EXEC or a slot's script, each with its
    applied-once marker): NotReplicated unless each one's primary has it on enough replicas.

    Per primary, one round trip: PEXPIRE on each unit's marker (keeping its TTL), then WAIT.
    The PEXPIRE answers 1 only where the unit really is (after a failover, the new primary may
    not have it: never acknowledged then) and is itself a write, replicated after the unit, so
    the WAIT that follows on the same connection confirms the unit too, whichever connection
    applied it.
    """
    wanted = policy(client)
    if not wanted.replicas or not markers:
        return
    by_node: dict[Any, list[str]] = {}
    for marker in markers:
        node = client.get_node_from_key(marker).name if isinstance(client, RedisCluster) else ""
        by_node.setdefault(node, []).append(marker)
    for group in by_node.values():

        def touch(pipe: Any, group: list[str] = group) -> None:
            for marker in group:
                pipe.pexpire(marker, ttl_ms)

        try:
            replies = confirmed(client, group[0], touch)
        except redis.RedisError as error:
            WAIT_TIMEOUTS.inc()
            raise NotReplicated() from error
        if not all(replies):  # a unit missing where its slot now lives
            WAIT_TIMEOUTS.inc()
            raise NotReplicated()


def node_client(client: Any, key: str) -> Any:
    """The client of the primary that owns `key`'s slot (the client itself on a single Redis)."""
    if isinstance(client, RedisCluster):
        return client.get_redis_connection(client.get_node_from_key(key))
    return client


def node_pipeline(client: Any, key: str) -> Any:
    """A non-transactional pipeline on the primary that owns `key`'s slot: every command it
    queues goes over one connection, so a WAIT queued last covers them all."""
    return node_client(client, key).pipeline(transaction=False)


def confirmed(client: Any, key: str, queue: Callable[[Any], None],
              scripts: Sequence[Script] = ()) -> list[Any]:
    """Run what `queue(pipe)` queues (keys of `key`'s slot only) on that slot's primary, then
    WAIT there; the replies of the queued commands. Raises the first command error, or
    NotReplicated. A call of one of `scripts` (`Script.queue`) that the node refuses with
    NOSCRIPT loads them there and sends the whole queue once more: every write sent this way
    is idempotent (it is sent again after a lost reply too)."""
    wanted = policy(client)
    for attempt in (1, 2):
        pipe = node_pipeline(client, key)
        try:
            queue(pipe)
            if wanted.replicas:
                pipe.execute_command("WAIT", wanted.replicas, wanted.timeout_ms)
            replies = pipe.execute()
            break
        except NoScriptError:
            if attempt == 2 or not scripts:
                raise
            for script in scripts:
                script.load(node_client(client, key))
        finally:
            pipe.reset()
    if wanted.replicas:
        check(replies.pop(), wanted)
    return replies


class ConfirmedScript:
    """A store's Lua script that writes, called like redis-py's `register_script` object and
    confirmed like a unit of work's writes. Every key must share a slot."""

    def __init__(self, client: Any, source: str) -> None:
        self.client = client
        self.script = Script(source)

    def __call__(self, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        replies = confirmed(self.client, keys[0],
                            lambda pipe: self.script.queue(pipe, list(keys), list(args)),
                            [self.script])
        return replies[0]


def status(client: Any) -> list[dict[str, int]]:
    """Per primary: replicas connected, and in sync (online and acknowledging within a second
    of the primary's offset), from INFO replication."""
    if isinstance(client, RedisCluster):
        primaries = [client.get_redis_connection(node) for node in client.get_primaries()]
    else:
        primaries = [client]
    found = []
    for primary in primaries:
        info = primary.info("replication")
        replicas = [value for name, value in info.items()
                    if name.startswith("slave") and isinstance(value, dict)]
        in_sync = sum(1 for r in replicas if r.get("state") == "online"
                      and int(r.get("lag", 99)) <= 1)
        found.append({"connected": int(info.get("connected_slaves", 0)), "in_sync": in_sync})
    return found
