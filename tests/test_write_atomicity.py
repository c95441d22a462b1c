"""Writes that belong together land together, whatever happens between two commands: a crash
right after the first, or another worker overtaking a slow one. A real Redis behind a real TCP
proxy that cuts a connection right after a chosen command, or keeps an EXEC back
(tests/faults.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask

from agegate import create_app
from agegate.services.webhooks import STALE_MS
from agegate.storage import keys
from agegate.storage.keys import WEBHOOK_GROUP, Retention
from agegate.storage.outbox import Outbox
from agegate.storage.signal_stream import Entry, SignalStreamStore
from tests.conftest import API_KEYS, TEST_KEYS, auth, cluster_mode, sandbox
from tests.faults import ReplyLosingProxy
from tests.helpers import keys_without_ttl
from tests.webhook_receiver import receiver  # noqa: F401

# The proxy stands for one Redis server; a cluster client would find the other nodes itself.
pytestmark = pytest.mark.skipif(cluster_mode(), reason="the proxy fronts a single Redis")

LOOPBACK = {"webhook_allow_http": True, "webhook_allowed_networks": ("127.0.0.0/8",)}
DAY = 86_400


@pytest.fixture
def proxy(redis_url: str, redis_client) -> Iterator[ReplyLosingProxy]:
    server = ReplyLosingProxy(redis_url)
    yield server
    server.close()


@pytest.fixture
def make_app(config, clock) -> Iterator[Callable[..., Flask]]:
    """Apps with config overrides, closed after the test (their connections go to the proxy:
    left to the collector, they would surface as unclosed sockets in some later test)."""
    made: list[Flask] = []

    def make(**overrides: object) -> Flask:
        made.append(create_app(config.with_overrides(**overrides), clock=clock))
        return made[-1]

    yield make
    for app in made:
        app.extensions["agegate"].close()


@pytest.fixture
def proxied(proxy: ReplyLosingProxy) -> Iterator[redis.Redis]:
    """A Redis client whose connections go through the proxy."""
    client = redis.Redis.from_url(proxy.url, decode_responses=True)
    yield client
    client.close()


def test_test_modes_events_stream_is_never_left_without_its_ttl(make_app, proxy, redis_client):
    """Test mode's events stream is created with its consumer group and expires within a day
    (every test-mode key does): a crash right after the group's creation must not leave it
    without an expiry. Here every connection that creates it is cut right after Redis did so."""
    app = make_app(redis_url=proxy.url, api_keys=API_KEYS + TEST_KEYS, **LOOPBACK)
    client = app.test_client()
    stream = app.extensions["agegate"].config.events_stream + ":test"
    hook = {"url": "http://127.0.0.1:9/hook", "events": ["account.terminated"]}
    # The group is created by one script (storage/events.py), called by its SHA once Redis has
    # it: load it, so that what is cut is the call that ran, not an unknown-script refusal.
    ensure = app.extensions["agegate"].events._ensure_group.script
    ensure.load(redis_client)
    redis_client.delete(stream)  # earlier tests in this Redis may have created it
    proxy.lose_replies_to(ensure.sha.encode(), 10)  # never gets further (its retries too)
    failed = client.post("/v1/admin/webhooks", json=hook, headers=sandbox("admin"))
    assert failed.status_code == 503, failed.json
    assert proxy.lost > 0 and redis_client.exists(stream)  # Redis did create it
    assert keys_without_ttl(redis_client) == []
    proxy.lose_replies_to(ensure.sha.encode(), 0)
    created = client.post("/v1/admin/webhooks", json=hook, headers=sandbox("admin"))
    assert created.status_code == 201, created.json
    assert 0 < redis_client.ttl(stream) <= DAY
    assert keys_without_ttl(redis_client) == []


def _webhook_job(app):
    [job] = [j for j in app.extensions["agegate"].worker_jobs if j.name == "webhooks"]
    return job


def test_a_second_fan_out_of_an_event_never_resets_its_delivery(
        make_app, proxy, redis_client, receiver):  # noqa: F811
    """Two workers fan out one event: worker A read it and is slow to write its deliveries
    (its EXEC kept back), worker B takes the event over as A's, queues the delivery and
    attempts it; then A's write lands. The attempt count, the schedule and the delivery log
    stay B's: nothing is attempted again early, nothing logged twice."""
    worker_a = make_app(redis_url=proxy.url, **LOOPBACK)
    worker_b = make_app(**LOOPBACK)
    admin = worker_b.test_client()
    hook = admin.post("/v1/admin/webhooks", headers=auth("admin"),
                      json={"url": receiver.url, "events": ["account.terminated"]}).json
    receiver.secrets.append(hook["secret"])
    assert admin.post("/v1/accounts/acc-1/termination", headers=auth("admin"),
                      json={"reason": "test"}).status_code == 202
    stream = worker_b.extensions["agegate"].events.stream

    proxy.delay_exec()
    failures: list[BaseException] = []

    def fan_out_a() -> None:
        try:
            _webhook_job(worker_a).fan_out("w-a")
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            failures.append(error)

    slow = threading.Thread(target=fan_out_a)
    slow.start()
    assert proxy.delayed.wait(10), "worker A never wrote its deliveries"
    # A is taking too long: its events look abandoned (idle past STALE_MS) to worker B.
    pending = [p["message_id"] for p in
               redis_client.xpending_range(stream, WEBHOOK_GROUP, "-", "+", 10)]
    assert len(pending) == 2  # account.terminated (subscribed), deletion_requested (not)
    redis_client.xclaim(stream, WEBHOOK_GROUP, "w-a", 0, pending, idle=STALE_MS * 2,
                        justid=True)
    _webhook_job(worker_b).run_once("w-b")  # fans the two events out, attempts the delivery
    assert _webhook_job(worker_b).wait()
    [first] = receiver.requests
    assert first.status == 503  # refused: retried after FIRST_RETRY_SECONDS
    proxy.release()
    slow.join(30)
    assert not slow.is_alive() and failures == []

    delivery_id = f"{hook['webhook_id']}.{first.event_id}"
    record = redis_client.hgetall(keys.webhook_delivery(delivery_id))
    assert (record["attempt"], record["status"]) == ("1", "retrying")
    _webhook_job(worker_b).run_once("w-b")  # not due again yet: nothing to attempt
    assert _webhook_job(worker_b).wait()
    assert len(receiver.requests) == 1
    log = admin.get(f"/v1/admin/webhooks/{hook['webhook_id']}/deliveries",
                    headers=auth("admin")).json["deliveries"]
    assert [(e["attempt"], e["status"]) for e in log] == [(1, "retrying")]


def test_an_outbox_set_member_never_leaves_its_set_without_a_ttl(proxy, proxied, redis_client):
    """The outbox's "add a member" step (a parent request waiting on an account of another
    shard) must leave the set with its TTL whatever happens to the set meanwhile: here another
    drainer removes its last member (so Redis deletes the set) while this one is sending."""
    key = keys.parent_requests_waiting("0" * 32)
    redis_client.sadd(key, "preq_old")
    redis_client.expire(key, 10 * DAY)  # longer than the step asks: no need to extend it
    redis_client.xadd(keys.outbox(0), {"op": "set_add", "data": json.dumps(
        {"key": key, "member": "preq_new", "ttl": DAY})})
    outbox = Outbox(proxied, Retention())
    redis_client.script_flush()  # so the step's script is loaded (and its SADD kept back)
    proxy.delay_command(b"SADD")
    drained: list[int] = []
    drainer = threading.Thread(target=lambda: drained.append(outbox.drain(0)))
    drainer.start()
    assert proxy.delayed.wait(5)
    redis_client.srem(key, "preq_old")  # the last member: the set is gone
    proxy.release()
    drainer.join(30)
    assert drained == [1]
    assert redis_client.smembers(key) == {"preq_new"}
    assert 0 < redis_client.ttl(key) <= DAY


def test_a_dead_letter_is_never_left_without_its_ttl(proxy, proxied, redis_client):
    """A dead letter and its stream's expiry go together: a worker that dies mid-send (here
    each time, its retries too) never leaves the dead-letter stream without a TTL."""
    store = SignalStreamStore(proxied, "agegate:signals", Retention())
    entry = Entry("1-1", {"account_id": "acc-1", "signals": "not json"})
    proxy.cut_before(b"EXPIRE", 10)  # a separate EXPIRE command never gets through
    try:
        store.dead_letter(entry, {"code": "malformed_json"})
    except redis.ConnectionError:
        pass  # died mid-send: whatever got through must still expire
    assert keys_without_ttl(redis_client) == []
    proxy.cut_before(b"EXPIRE", 0)
    store.dead_letter(entry, {"code": "malformed_json"})
    assert redis_client.xlen(store.dead) >= 1
    assert 0 < redis_client.ttl(store.dead) <= Retention().seconds("signal_dead_letter")
    assert keys_without_ttl(redis_client) == []
