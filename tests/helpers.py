"""Assertions over the real keyspace, shared by every area's tests."""

from __future__ import annotations

import redis


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


def keys_without_ttl(client: redis.Redis) -> list[str]:
    """Keys that would live forever: the retention table says none may."""
    return [key for key in client.scan_iter(count=1000) if client.ttl(key) < 0]


def assert_nowhere(client: redis.Redis, *needles: str) -> None:
    """None of the needles appears in any key name or value."""
    for key, value in dump_keyspace(client).items():
        for needle in needles:
            assert needle not in key, f"{needle!r} found in key {key}"
            assert needle not in value, f"{needle!r} found in the value of {key}"
