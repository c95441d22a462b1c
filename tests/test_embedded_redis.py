"""The embedded Redis is a real server whose data survives a restart (AOF on)."""

from __future__ import annotations

import redis

from agegate.storage.embedded import EmbeddedRedis


def test_data_survives_a_restart(tmp_path):
    server = EmbeddedRedis(tmp_path / "r")
    url = server.start()
    client = redis.Redis.from_url(url, decode_responses=True)
    client.set("k", "v", ex=3600)
    client.xadd("s", {"a": "1"})
    client.close()
    server.stop()
    assert not (tmp_path / "r" / "redis.sock").exists() or not server._ping()
    again = EmbeddedRedis(tmp_path / "r")
    client = redis.Redis.from_url(again.start(), decode_responses=True)
    try:
        assert client.get("k") == "v" and client.xlen("s") == 1
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        client.close()
        again.stop()


def test_a_running_server_is_reused(tmp_path):
    first = EmbeddedRedis(tmp_path / "r")
    first.start()
    second = EmbeddedRedis(tmp_path / "r")
    try:
        assert second.start() == first.url
        assert second.process is None  # it did not start a second server
    finally:
        first.stop()
