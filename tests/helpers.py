"""Assertions over the real keyspace, shared by every area's tests."""

from __future__ import annotations

from typing import Any

import redis
from click.testing import CliRunner, Result

from agegate.cli_audit import audit as audit_cli


def dump_keyspace(client: redis.Redis) -> dict[str, str]:
    """Every key with a printable rendering of its value (strings, hashes, sets, zsets, streams)."""
    out: dict[str, str] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "stream":
            value = client.xrange(key)
        else:
            value = kind
        out[key] = repr(value)
    return out


# The live events stream carries consumer groups, so it is trimmed by age, never expired
# (keys.py, Retention.events_days); so does the signal stream, the platform's input queue, whose
# entries are deleted as soon as they are applied (keys.py, "signal stream").
NO_TTL_BY_DESIGN = {"agegate:events", "agegate:signals"}


def keys_without_ttl(client: redis.Redis) -> list[str]:
    """Keys that would live forever: the retention table says none may (but the events
    stream, which it says is trimmed by age instead)."""
    return [key for key in client.scan_iter(count=1000)
            if key not in NO_TTL_BY_DESIGN and client.ttl(key) < 0]


def assert_nowhere(client: redis.Redis, *needles: str) -> None:
    """None of the needles appears in any key name or value."""
    for key, value in dump_keyspace(client).items():
        for needle in needles:
            assert needle not in key, f"{needle!r} found in key {key}"
            assert needle not in value, f"{needle!r} found in the value of {key}"


def block_identities(state: Any, identifiers: list[tuple[str, str]], ttl_seconds: int = 3600
                     ) -> None:
    """Write identity blocks as enforcement does, through the app's own storage."""
    state.identities.block(identifiers, ttl_seconds)


def across_shards(client: redis.Redis, command: str, key_of: Any) -> int:
    """The sum of one counting command (e.g. zcard) over every shard's copy of a key."""
    from agegate.storage import keys

    return sum(int(getattr(client, command)(key_of(shard))) for shard in keys.all_shards())


def audit_stream_of(state: Any, account_id: str) -> str:
    """The audit stream an account's entries are written to (its shard's)."""
    from agegate.storage import keys

    return keys.audit_stream(keys.shard_of(state.hasher.account(account_id)))


def audit_verify(monkeypatch: Any, redis_url: str) -> Result:
    """`agegate audit verify` as an operator runs it, against the tests' Redis and secret."""
    from tests.conftest import API_KEYS, SECRET

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("AGEGATE_SECRET_KEY", SECRET)
    monkeypatch.setenv("AGEGATE_API_KEYS", ",".join(f"{k.name}:{k.role}:{k.token}"
                                                    for k in API_KEYS))
    return CliRunner().invoke(audit_cli, ["verify"])
