"""Writes that belong together land together, whatever happens between two commands: a crash
right after the first, or another worker overtaking a slow one. A real Redis behind a real TCP
proxy that cuts a connection right after a chosen command, or keeps an EXEC back
(tests/faults.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agegate import create_app
from tests.conftest import API_KEYS, TEST_KEYS, cluster_mode, sandbox
from tests.faults import ReplyLosingProxy
from tests.helpers import keys_without_ttl

# The proxy stands for one Redis server; a cluster client would find the other nodes itself.
pytestmark = pytest.mark.skipif(cluster_mode(), reason="the proxy fronts a single Redis")

LOOPBACK = {"webhook_allow_http": True, "webhook_allowed_networks": ("127.0.0.0/8",)}
DAY = 86_400


@pytest.fixture
def proxy(redis_url: str, redis_client) -> Iterator[ReplyLosingProxy]:
    server = ReplyLosingProxy(redis_url)
    yield server
    server.close()


def test_test_modes_events_stream_is_never_left_without_its_ttl(config, clock, proxy,
                                                                redis_client):
    """Test mode's events stream is created with its consumer group and expires within a day
    (every test-mode key does): a crash right after the group's creation must not leave it
    without an expiry. Here every connection that creates it is cut right after Redis did so."""
    app = create_app(config.with_overrides(redis_url=proxy.url, api_keys=API_KEYS + TEST_KEYS,
                                           **LOOPBACK), clock=clock)
    client = app.test_client()
    stream = app.extensions["agegate"].config.events_stream + ":test"
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["account.terminated"]}
    proxy.lose_replies_to(b"XGROUP", 10)  # the process never gets further (its retries too)
    failed = client.post("/v1/admin/webhooks", json=hook, headers=sandbox("admin"))
    assert failed.status_code == 503, failed.json
    assert keys_without_ttl(redis_client) == []
    proxy.lose_replies_to(b"XGROUP", 0)
    created = client.post("/v1/admin/webhooks", json=hook, headers=sandbox("admin"))
    assert created.status_code == 201, created.json
    assert 0 < redis_client.ttl(stream) <= DAY
    assert keys_without_ttl(redis_client) == []
