"""Signed webhooks through the HTTP API, delivered to a real HTTP receiver on loopback by the
worker job, and by a real `agegate worker` process that is killed and restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from agegate.clock import parse_iso
from agegate.storage import keys
from agegate.webhooks import InvalidSignature, sign, verify
from tests.cli_env import service_env
from tests.conftest import auth
from tests.helpers import assert_nowhere, dump_keyspace, keys_without_ttl
from tests.webhook_receiver import receiver  # noqa: F401

# Storage across accounts and shards: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster

URL = "/v1/admin/webhooks"


def register(client, url: str, events=("account.terminated",)) -> dict:
    response = client.post(URL, json={"url": url, "events": list(events)}, headers=auth("admin"))
    assert response.status_code == 201, response.json
    return response.json


def terminate(client, account_id: str) -> None:
    response = client.post(f"/v1/accounts/{account_id}/termination", headers=auth("admin"),
                           json={"reason": "test"})
    assert response.status_code == 202, response.json


def job(client):
    [webhooks] = [j for j in client.application.extensions["agegate"].worker_jobs
                  if j.name == "webhooks"]
    return webhooks


def deliveries(client, webhook_id: str) -> list[dict]:
    response = client.get(f"{URL}/{webhook_id}/deliveries", headers=auth("admin"))
    assert response.status_code == 200, response.json
    return response.json["deliveries"]


@pytest.mark.parametrize(("url", "events"), [
    ("ftp://example.org/hook", ["account.terminated"]),
    ("not a url", ["account.terminated"]),
    ("https://user:pw@example.org/hook", ["account.terminated"]),
    ("http://localhost/v1/deletions", ["account.terminated"]),  # the service itself
    ("http://localhost:80/anything", ["account.terminated"]),
    ("https://example.org/hook", ["account.exploded"]),
    ("https://example.org/hook", []),
])
def test_bad_webhooks_are_422_and_store_nothing(client, redis_client, url, events):
    before = dump_keyspace(redis_client)
    response = client.post(URL, json={"url": url, "events": events}, headers=auth("admin"))
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    assert dump_keyspace(redis_client) == before


def test_register_list_rotate_delete(client, redis_client, clock):
    created = register(client, "https://hooks.example.org/agegate",
                       ["account.terminated", "account.reinstated"])
    assert created["secret"].startswith("whsec_")
    # Stored encrypted under the service secret: the plain secret is nowhere in Redis.
    assert_nowhere(redis_client, created["secret"])
    listed = client.get(URL, headers=auth("admin")).json["webhooks"]
    assert listed == [{"webhook_id": created["webhook_id"],
                       "url": "https://hooks.example.org/agegate",
                       "events": ["account.reinstated", "account.terminated"],
                       "created_at": "2026-11-24T13:30:00Z", "live_secrets": 1,
                       "rotation_ends_at": None}]
    rotated = client.post(f"{URL}/{created['webhook_id']}/secret", headers=auth("admin")).json
    assert rotated["secret"] != created["secret"]
    assert rotated["previous_secret_expires_at"] == "2026-11-25T13:30:00Z"
    assert client.get(URL, headers=auth("admin")).json["webhooks"][0]["live_secrets"] == 2
    clock.instant += timedelta(hours=24, seconds=1)
    assert client.get(URL, headers=auth("admin")).json["webhooks"][0]["live_secrets"] == 1
    assert client.get(URL, headers=auth("reviewer")).status_code == 403
    assert client.delete(f"{URL}/{created['webhook_id']}",
                         headers=auth("admin")).status_code == 204
    assert client.get(URL, headers=auth("admin")).json["webhooks"] == []
    assert client.delete(f"{URL}/{created['webhook_id']}",
                         headers=auth("admin")).status_code == 404
    assert client.post(f"{URL}/wh_nope/secret", headers=auth("admin")).status_code == 404
    assert keys_without_ttl(redis_client) == []


def test_a_refused_delivery_is_retried_within_ten_seconds_and_signed(client, clock,
                                                                     receiver):  # noqa: F811
    hook = register(client, receiver.url)
    receiver.secrets.append(hook["secret"])
    terminate(client, "acc-1")  # account.terminated (subscribed), deletion_requested (not)
    assert job(client).run_once("w-test") >= 1
    [first] = receiver.requests
    assert first.status == 503 and first.verified_with == [hook["secret"]]
    assert json.loads(first.body)["type"] == "account.terminated"
    [log] = deliveries(client, hook["webhook_id"])
    assert (log["status"], log["attempt"], log["http_status"]) == ("retrying", 1, 503)
    assert log["next_attempt_at"] == "2026-11-24T13:30:05Z"  # within 10 s
    assert job(client).run_once("w-test") == 0  # not yet due
    clock.instant += timedelta(seconds=5)
    assert job(client).run_once("w-test") == 1
    assert set(receiver.delivered()) == {first.event_id}
    assert receiver.requests[1].headers["Agegate-Event-Id"] == first.event_id
    assert receiver.requests[1].body == first.body
    newest = deliveries(client, hook["webhook_id"])[0]
    assert (newest["status"], newest["attempt"]) == ("delivered", 2)


def test_both_secrets_sign_for_24_hours_after_a_rotation(client, clock, receiver):  # noqa: F811
    receiver.refuse_first = False
    hook = register(client, receiver.url)
    new = client.post(f"{URL}/{hook['webhook_id']}/secret", headers=auth("admin")).json["secret"]
    receiver.secrets.extend([hook["secret"], new])
    terminate(client, "acc-1")
    job(client).run_once("w-test")
    [during] = receiver.requests
    assert during.headers["Agegate-Signature"].count("v1=") == 2
    assert during.verified_with == [hook["secret"], new]
    clock.instant += timedelta(hours=24, seconds=1)
    terminate(client, "acc-2")
    job(client).run_once("w-test")
    after = receiver.requests[-1]
    assert after.headers["Agegate-Signature"].count("v1=") == 1
    assert after.verified_with == [new]


def test_a_delivery_that_keeps_failing_is_recorded_failed_after_24_hours(client, clock,
                                                                         receiver):  # noqa: F811
    receiver.always_fail = True
    hook = register(client, receiver.url)
    receiver.secrets.append(hook["secret"])
    terminate(client, "acc-1")
    start = clock.instant
    for _ in range(60):
        job(client).run_once("w-test")
        last = deliveries(client, hook["webhook_id"])[0]
        if last["status"] == "failed":
            break
        clock.instant = parse_iso(last["next_attempt_at"])
    assert last["status"] == "failed"
    assert timedelta(hours=23) < clock.instant - start <= timedelta(hours=24)
    # Exponential: 5 s, 10 s, 20 s, ... capped at an hour.
    assert len(receiver.requests) == last["attempt"] and 20 < last["attempt"] < 40
    job(client).run_once("w-test")
    assert len(receiver.requests) == last["attempt"]  # never again


def test_verify_rejects_stale_forged_and_tampered_deliveries():
    body = b'{"id":"1-0","type":"account.terminated"}'
    now = 1_800_000_000
    headers = {"Agegate-Timestamp": str(now), "Agegate-Signature": sign(["s3cret"], now, body)}
    assert verify("s3cret", headers, body, now=now + 299)["type"] == "account.terminated"
    lowered = {k.lower(): v for k, v in headers.items()}
    assert verify("s3cret", lowered, body.decode(), now=now)["id"] == "1-0"
    for secret, hdrs, payload, at in [
        ("s3cret", headers, body, now + 301),  # older than 5 minutes
        ("other", headers, body, now),
        ("s3cret", headers, body + b" ", now),
        ("s3cret", {**headers, "Agegate-Signature": ""}, body, now),
        ("s3cret", {"Agegate-Signature": headers["Agegate-Signature"]}, body, now),
    ]:
        with pytest.raises(InvalidSignature):
            verify(secret, hdrs, payload, now=at)


def _start_worker(redis_url, tmp_path, name: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agegate.cli", "worker", "--consumer", name],
        env={**os.environ, **service_env(redis_url, tmp_path)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    assert "agegate worker" in proc.stdout.readline()
    return proc


def _wait_for(predicate, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_a_killed_and_restarted_worker_loses_no_delivery(client, redis_url, tmp_path,
                                                         receiver):  # noqa: F811
    hook = register(client, receiver.url)
    receiver.secrets.append(hook["secret"])
    worker = _start_worker(redis_url, tmp_path, "w-1")
    try:
        for n in range(3):
            terminate(client, f"acc-a{n}")
        # Each first attempt is refused; the worker has retries queued when it is killed.
        assert _wait_for(lambda: len(receiver.requests) >= 3), receiver.requests
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=10)  # reaps it and closes its pipe
        for n in range(3):
            terminate(client, f"acc-b{n}")  # emitted while no worker runs
        worker = _start_worker(redis_url, tmp_path, "w-2")
        assert _wait_for(lambda: len(receiver.delivered()) == 6), (
            len(receiver.delivered()), len(receiver.requests))
        delivered = receiver.delivered()
        assert all(r.verified_with == [hook["secret"]] for r in delivered.values())
        accounts = sorted(json.loads(r.body)["account_id"] for r in delivered.values())
        assert accounts == ["acc-a0", "acc-a1", "acc-a2", "acc-b0", "acc-b1", "acc-b2"]
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=20)
        assert worker.returncode == 0 and "Traceback" not in output
    finally:
        if worker.poll() is None:
            worker.kill()


def test_deleting_a_webhook_drops_its_queued_deliveries(client, redis_client,
                                                         receiver):  # noqa: F811
    hook = register(client, receiver.url)
    other = register(client, receiver.url, ["account.deletion_requested"])
    receiver.secrets.extend([hook["secret"], other["secret"]])
    receiver.refuse_first = False
    terminate(client, "acc-1")
    assert client.delete(f"{URL}/{hook['webhook_id']}", headers=auth("admin")).status_code == 204
    job(client).run_once("w-test")
    # Only the remaining webhook's event arrived; nothing is left queued, and every key expires.
    assert [json.loads(r.body)["type"] for r in receiver.requests] == [
        "account.deletion_requested"]
    assert receiver.requests[0].verified_with == [other["secret"]]
    assert redis_client.zcard(keys.webhook_due()) == 0
    assert keys_without_ttl(redis_client) == []
