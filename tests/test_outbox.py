"""The per-shard outbox: what a unit of work causes outside its slot is applied exactly once,
right after the unit or, after a crash, by `agegate worker`."""

from __future__ import annotations

import json
import threading
import time

import pytest

from agegate.storage import keys
from tests.conftest import auth
from tests.helpers import across_shards

pytestmark = pytest.mark.cluster


def leave_in_outbox(redis_client, shard: int, op: str, data: dict) -> None:
    """What a process that crashed right after its unit of work leaves behind."""
    redis_client.xadd(keys.outbox(shard), {"op": op, "data": json.dumps(data)})


def outbox_job(app):
    (job,) = [job for job in app.extensions["agegate"].worker_jobs if job.name == "outbox"]
    return job


def test_units_leave_nothing_in_the_outboxes(app, client, redis_client):
    client.post("/v1/age-checks", json={"date_of_birth": "2012-01-01", "country": "US",
                                        "device_id": "dev-1", "email": "kid@example.com"},
                headers=auth("registration"))
    client.post("/v1/accounts/acc-1/termination", json={"reason": "x"}, headers=auth("admin"))
    assert across_shards(redis_client, "xlen", keys.outbox) == 0
    assert outbox_job(app).run_once("test") == 0
    events = app.extensions["agegate"].events.read_all()
    assert [e["type"] for e in events] == ["account.terminated", "account.deletion_requested"]


def test_the_worker_applies_a_crashed_units_steps_once(app, client, redis_client):
    state = app.extensions["agegate"]
    device = state.hasher.short("device", "dev-crash")
    event = {"stream": state.config.events_stream,
             "fields": {"type": "account.terminated", "account_id": "acc-crash",
                        "at": "2026-11-24T13:30:00Z", "deletion_id": "del_s3_x"},
             "min_id": 0, "ttl": 3600}
    block = {"keys": [keys.retry_block("device", device)], "until": int(time.time()) + 3600}
    leave_in_outbox(redis_client, 3, "event", event)
    leave_in_outbox(redis_client, 3, "block", block)
    # Two workers drain the same shard at once: each step still lands once.
    job = outbox_job(app)
    threads = [threading.Thread(target=job.run_once, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert job.run_once("w1") == 0
    assert [e["account_id"] for e in state.events.read_all()] == ["acc-crash"]
    again = client.post("/v1/age-checks", json={"date_of_birth": "1990-01-01", "country": "US",
                                                "device_id": "dev-crash"},
                        headers=auth("registration"))
    assert again.json["reason"] == "previous_underage_attempt"
    assert across_shards(redis_client, "xlen", keys.outbox) == 0


def test_a_step_applied_twice_does_not_relay_twice_or_shorten_a_block(app, redis_client):
    state = app.extensions["agegate"]
    outbox = state.outbox
    device = state.hasher.short("device", "dev-long")
    key = keys.identity_block("device", device)
    redis_client.set(key, "1", ex=10_000)
    event = {"stream": state.config.events_stream,
             "fields": {"type": "account.terminated", "account_id": "acc-twice",
                        "at": "2026-11-24T13:30:00Z"}, "min_id": 0, "ttl": 3600}
    leave_in_outbox(redis_client, 5, "event", event)
    entry_id = redis_client.xrange(keys.outbox(5))[-1][0]
    assert outbox.drain(5) == 1
    # As if a drainer had died between applying the step and deleting it: the same entry again.
    redis_client.delete(keys.outbox(5))
    redis_client.xadd(keys.outbox(5), {"op": "event", "data": json.dumps(event)}, id=entry_id)
    assert outbox.drain(5) == 1
    leave_in_outbox(redis_client, 5, "block", {"keys": [key], "until": int(time.time()) + 60})
    outbox.drain(5)
    assert [e["account_id"] for e in state.events.read_all()] == ["acc-twice"]
    assert redis_client.ttl(key) > 9_000


def test_an_entry_relayed_days_ago_and_still_in_its_outbox_is_not_relayed_again(
        app, redis_client):
    """A step leaves its outbox only once its writes are confirmed (replicas may lag for days,
    a worker may be down): the relay remembers an entry as long as an outbox keeps steps, and
    that memory's TTL comes from the retention table."""
    state = app.extensions["agegate"]
    stream = state.config.events_stream
    event = {"stream": stream, "fields": {"type": "account.terminated", "account_id": "acc-late",
                                          "at": "2026-11-24T13:30:00Z"}, "min_id": 0, "ttl": 0}
    leave_in_outbox(redis_client, 6, "event", event)
    entry_id = redis_client.xrange(keys.outbox(6))[-1][0]
    assert state.outbox.drain(6) == 1
    memory = keys.events_relayed(stream)
    # Two days on, after other events were relayed, the same entry is drained again (its
    # deletion never got through).
    redis_client.zadd(memory, {f"6:{entry_id}": time.time() - 2 * 86_400})
    other = {**event, "fields": {**event["fields"], "account_id": "acc-other"}}
    leave_in_outbox(redis_client, 7, "event", other)
    assert state.outbox.drain(7) == 1
    redis_client.delete(keys.outbox(6))
    redis_client.xadd(keys.outbox(6), {"op": "event", "data": json.dumps(event)}, id=entry_id)
    assert state.outbox.drain(6) == 1
    assert [e["account_id"] for e in state.events.read_all()] == ["acc-late", "acc-other"]
    assert 0 < redis_client.ttl(memory) == state.retention.seconds("events_relayed")


def test_scripts_a_redis_forgot_are_loaded_again(app, client, redis_client):
    """A restarted or failed-over node, or SCRIPT FLUSH, answers NOSCRIPT: the outbox's steps
    and the stores' scripts load theirs there and go through, never a 500."""
    denied = {"date_of_birth": "2012-01-01", "country": "US", "device_id": "dev-flush"}
    redis_client.script_flush()
    assert client.post("/v1/age-checks", json=denied,
                       headers=auth("registration")).json["decision"] == "deny"
    assert across_shards(redis_client, "xlen", keys.outbox) == 0  # its retry block was applied
    again = client.post("/v1/age-checks", json={**denied, "date_of_birth": "1990-01-01"},
                        headers=auth("registration")).json
    assert again["reason"] == "previous_underage_attempt"
    # A store's own script (the review queue's claim) after the scripts are gone again.
    assert client.post("/v1/accounts/acc-flush/age-signals", headers=auth("signals"), json={
        "source": "google_play_age_signals", "observed_at": "2026-11-24T13:00:00Z",
        "age_lower": 13, "age_upper": 15, "method": "guardian_declared"}).json["action"] == \
        "case_opened"
    redis_client.script_flush()
    claimed = client.post("/v1/review/claims", headers=auth("reviewer"))
    assert claimed.status_code == 200, claimed.json
