"""Signed webhooks (Standard Webhooks) through the HTTP API, delivered to real receivers on
loopback by the worker job, and by a real `agegate worker` process that is killed and restarted.

Loopback is not a public address: these apps allow http:// and 127.0.0.0/8 on purpose
(AGEGATE_WEBHOOK_ALLOW_HTTP, AGEGATE_WEBHOOK_ALLOWED_NETWORKS), as an operator would for an
internal network; the SSRF tests use apps that allow nothing."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from agegate import create_app
from agegate.clock import parse_iso
from agegate.storage import keys
from tests.cli_env import service_env
from tests.conftest import auth, make_config
from tests.helpers import assert_nowhere, dump_keyspace, keys_without_ttl
from tests.webhook_receiver import raw_server, receiver, start_receiver  # noqa: F401

# Storage across accounts and shards: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster

URL = "/v1/admin/webhooks"
LOOPBACK = {"webhook_allow_http": True, "webhook_allowed_networks": ("127.0.0.0/8",)}
LOOPBACK_ENV = {"AGEGATE_WEBHOOK_ALLOW_HTTP": "true",
                "AGEGATE_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}


@pytest.fixture
def config(redis_url, redis_client, tmp_path):
    """The tests' app, allowing the loopback receivers on purpose."""
    return make_config(redis_url, tmp_path, **LOOPBACK)


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


def run(client) -> int:
    """One round of the webhook job, and wait for the deliveries it started."""
    handled = job(client).run_once("w-test")
    assert job(client).wait()
    return handled


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
    ("https://[::1/hook", ["account.terminated"]),  # malformed: a 422, never a 500
    ("https://[zz]/hook", ["account.terminated"]),
    ("https://a\x00b/hook", ["account.terminated"]),
    ("https://" + "a." * 200 + "org/", ["account.terminated"]),
    ("https://\u2603.example/", ["account.terminated"]),
    ("https://127.0.0.1:99999/", ["account.terminated"]),
])
def test_bad_webhooks_are_422_and_store_nothing(client, redis_client, url, events):
    before = dump_keyspace(redis_client)
    response = client.post(URL, json={"url": url, "events": events}, headers=auth("admin"))
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    assert dump_keyspace(redis_client) == before


def test_register_list_rotate_delete(client, redis_client, clock):
    created = register(client, "https://127.0.0.1:8443/agegate",
                       ["account.terminated", "account.reinstated"])
    assert created["secret"].startswith("whsec_")
    # Stored encrypted under the service secret: the plain secret is nowhere in Redis.
    assert_nowhere(redis_client, created["secret"])
    listed = client.get(URL, headers=auth("admin")).json["webhooks"]
    assert listed == [{"webhook_id": created["webhook_id"],
                       "url": "https://127.0.0.1:8443/agegate",
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
    run(client)
    [first] = receiver.requests
    assert first.status == 503 and first.verified_with == [hook["secret"]]
    assert json.loads(first.body)["type"] == "account.terminated"
    [log] = deliveries(client, hook["webhook_id"])
    assert (log["status"], log["attempt"], log["http_status"]) == ("retrying", 1, 503)
    assert log["next_attempt_at"] == "2026-11-24T13:30:05Z"  # within 10 s
    run(client)  # not yet due
    assert len(receiver.requests) == 1
    clock.instant += timedelta(seconds=5)
    run(client)
    assert set(receiver.delivered()) == {first.event_id}
    assert receiver.requests[1].headers["webhook-id"] == first.event_id
    assert receiver.requests[1].body == first.body
    newest = deliveries(client, hook["webhook_id"])[0]
    assert (newest["status"], newest["attempt"]) == ("delivered", 2)


def test_both_secrets_sign_for_24_hours_after_a_rotation(client, clock, receiver):  # noqa: F811
    receiver.refuse_first = False
    hook = register(client, receiver.url)
    new = client.post(f"{URL}/{hook['webhook_id']}/secret", headers=auth("admin")).json["secret"]
    receiver.secrets.extend([hook["secret"], new])
    terminate(client, "acc-1")
    run(client)
    [during] = receiver.requests
    assert during.headers["webhook-signature"].count("v1,") == 2
    assert during.verified_with == [hook["secret"], new]
    clock.instant += timedelta(hours=24, seconds=1)
    terminate(client, "acc-2")
    run(client)
    after = receiver.requests[-1]
    assert after.headers["webhook-signature"].count("v1,") == 1
    assert after.verified_with == [new]


def test_a_delivery_that_keeps_failing_is_recorded_failed_after_24_hours(client, clock,
                                                                         receiver):  # noqa: F811
    receiver.always_fail = True
    hook = register(client, receiver.url)
    receiver.secrets.append(hook["secret"])
    terminate(client, "acc-1")
    start = clock.instant
    for _ in range(60):
        run(client)
        last = deliveries(client, hook["webhook_id"])[0]
        if last["status"] == "failed":
            break
        clock.instant = parse_iso(last["next_attempt_at"])
    assert last["status"] == "failed"
    assert timedelta(hours=23) < clock.instant - start <= timedelta(hours=24)
    # Exponential: 5 s, 10 s, 20 s, ... capped at an hour.
    assert len(receiver.requests) == last["attempt"] and 20 < last["attempt"] < 40
    run(client)
    assert len(receiver.requests) == last["attempt"]  # never again


def _start_worker(redis_url, tmp_path, name: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agegate.cli", "worker", "--consumer", name],
        env={**os.environ, **service_env(redis_url, tmp_path), **LOOPBACK_ENV},
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
    run(client)
    # Only the remaining webhook's event arrived; nothing is left queued, and every key expires.
    assert [json.loads(r.body)["type"] for r in receiver.requests] == [
        "account.deletion_requested"]
    assert receiver.requests[0].verified_with == [other["secret"]]
    assert redis_client.zcard(keys.webhook_due()) == 0
    assert keys_without_ttl(redis_client) == []


def test_a_delivery_that_expired_in_flight_is_dropped_not_written_back_forever(
        client, redis_client, receiver):  # noqa: F811
    hook = register(client, receiver.url)
    receiver.secrets.append(hook["secret"])
    terminate(client, "acc-1")

    def expire_the_record() -> None:
        # The record reaches the end of its retention while the receiver answers (503).
        for delivery in redis_client.scan_iter("agegate:whd:*"):
            redis_client.delete(delivery)

    receiver.during = expire_the_record
    run(client)
    assert len(receiver.requests) == 1
    assert list(redis_client.scan_iter("agegate:whd:*")) == []
    assert redis_client.zcard(keys.webhook_due()) == 0
    assert keys_without_ttl(redis_client) == []


def test_a_webhook_deleted_while_a_delivery_is_in_flight_gets_no_log_back(
        client, redis_client, receiver):  # noqa: F811
    hook = register(client, receiver.url)
    receiver.secrets.append(hook["secret"])
    terminate(client, "acc-1")
    receiver.during = lambda: client.delete(f"{URL}/{hook['webhook_id']}", headers=auth("admin"))
    run(client)
    assert len(receiver.requests) == 1
    # "Forget a webhook and its log": nothing of it is left, nor queued.
    assert list(redis_client.scan_iter(f"*{hook['webhook_id']}*")) == []
    assert redis_client.zcard(keys.webhook_due()) == 0


# -- Standard Webhooks ------------------------------------------------------------------------
def test_deliveries_follow_standard_webhooks_and_verify_with_its_library(client, receiver):  # noqa: F811
    from standardwebhooks import Webhook

    receiver.refuse_first = False
    hook = register(client, receiver.url)
    # whsec_ and the standard base64 of a 32-byte key.
    assert hook["secret"].startswith("whsec_")
    assert len(base64.b64decode(hook["secret"][6:], validate=True)) == 32
    receiver.secrets.append(hook["secret"])
    terminate(client, "acc-1")
    run(client)
    [request] = receiver.requests
    assert request.verified_with == [hook["secret"]]
    headers = {k.lower(): v for k, v in request.headers.items()}
    event = Webhook(hook["secret"]).verify(request.body, request.headers)
    assert headers["webhook-id"] == event["id"] and event["type"] == "account.terminated"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", headers["webhook-signature"])
    # Tampering with the body, the id or the timestamp fails the package's own check.
    for body, changed in [(request.body + b" ", {}),
                          (request.body, {"webhook-id": "1-1"}),
                          (request.body, {"webhook-timestamp": str(int(time.time()) - 1)})]:
        with pytest.raises(WebhookVerificationError):
            Webhook(hook["secret"]).verify(body, {**headers, **changed})


# -- server-side request forgery ----------------------------------------------------------------
NOT_PUBLIC = [
    "https://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "https://127.0.0.1:6379/", "https://[::1]/", "https://localhost/", "https://LOCALHOST./",
    "https://127.1/", "https://2130706433/", "https://0177.0.0.1/", "https://0x7f.0.0.1/",
    "https://[::ffff:127.0.0.1]/", "https://[::ffff:a9fe:a9fe]/", "https://[2002:7f00:1::]/",
    "https://[64:ff9b::7f00:1]/", "https://10.0.0.5/", "https://172.16.0.1/",
    "https://192.168.1.1/", "https://[fc00::1]/", "https://[fd12:3456::1]/", "https://[fe80::1]/",
    "https://100.64.0.1/", "https://224.0.0.1/", "https://[ff02::1]/", "https://240.0.0.1/",
    "https://255.255.255.255/", "https://0.0.0.0/", "https://[::]/", "https://0/",
    "https://192.0.2.1/", "https://198.18.0.1/", "https://nothing-here.invalid/",
]


@pytest.fixture
def strict_client(redis_url, redis_client, tmp_path, clock):
    """An app that allows http:// but no network beyond public addresses."""
    config = make_config(redis_url, tmp_path, webhook_allow_http=True)
    return create_app(config, clock=clock).test_client()


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_a_url_that_is_not_public_is_refused_at_registration(strict_client, redis_client, url):
    before = dump_keyspace(redis_client)
    for candidate in (url, url.replace("https://", "http://", 1)):
        response = strict_client.post(URL, json={"url": candidate,
                                                 "events": ["account.terminated"]},
                                      headers=auth("admin"))
        assert response.status_code == 422, (candidate, response.json)
        assert list(response.json["error"]["fields"]) == ["url"]
    assert dump_keyspace(redis_client) == before


def test_https_only_unless_http_is_allowed(redis_url, redis_client, tmp_path, clock, receiver):  # noqa: F811
    default = create_app(make_config(redis_url, tmp_path, webhook_allowed_networks=(
        "127.0.0.0/8",)), clock=clock).test_client()
    response = default.post(URL, json={"url": receiver.url, "events": ["account.terminated"]},
                            headers=auth("admin"))
    assert response.status_code == 422 and "https://" in response.json["error"]["fields"]["url"][0]
    https = receiver.url.replace("http://", "https://", 1)
    assert default.post(URL, json={"url": https, "events": ["account.terminated"]},
                        headers=auth("admin")).status_code == 201


def _listener(host: str) -> socket.socket:
    listener = socket.socket()
    listener.bind((host, 0))
    listener.listen(4)
    return listener


def test_each_delivery_vets_the_address_again_and_connects_to_what_it_vetted(
        redis_url, redis_client, tmp_path, clock, receiver):  # noqa: F811
    """DNS rebinding: the name answers an allowed address, then one that is not. A delivery
    that meets the second is refused (`blocked`); one that meets the first connects there,
    without resolving again."""
    app = create_app(make_config(redis_url, tmp_path, webhook_allow_http=True,
                                 webhook_allowed_networks=("127.0.0.1/32",)), clock=clock)
    client = app.test_client()
    attacker = _listener("127.0.0.2")  # not allowed: a rebound answer points here
    answers: list[str] = []

    def rebinding(host: str, port: int, *args: object) -> list[tuple]:
        """A resolver in getaddrinfo's shape (ssrfguard's `resolver=` seam)."""
        assert host == "hooks.test"
        answers.append("127.0.0.1" if len(answers) % 2 == 0 else "127.0.0.2")
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (answers[-1], port))]

    app.extensions["agegate"].webhooks.policy.resolver = rebinding
    receiver.refuse_first = False
    hook = register(client, f"http://hooks.test:{receiver.port}/hook")  # answer 1: allowed
    receiver.secrets.append(hook["secret"])
    terminate(client, "acc-1")
    run(client)  # answer 2: 127.0.0.2, refused before any connection
    [first] = deliveries(client, hook["webhook_id"])
    assert (first["status"], first["http_status"], first["error"]) == ("retrying", None,
                                                                       "blocked")
    assert receiver.requests == []
    clock.instant = parse_iso(first["next_attempt_at"])
    run(client)  # answer 3: 127.0.0.1, connected to as vetted, no further lookup
    assert len(answers) == 3
    [request] = receiver.requests
    assert request.headers["Host"] == f"hooks.test:{receiver.port}"
    assert deliveries(client, hook["webhook_id"])[0]["status"] == "delivered"
    attacker.settimeout(0)
    with pytest.raises(BlockingIOError):
        attacker.accept()  # nothing ever connected to the rebound address
    attacker.close()


def _hooks_test_app(redis_url, tmp_path, clock, answer):
    """An app allowing http:// and 127.0.0.1 only, whose resolver (ssrfguard's `resolver=`
    seam, getaddrinfo's shape) answers `answer(port)` for `hooks.test`."""
    app = create_app(make_config(redis_url, tmp_path, webhook_allow_http=True,
                                 webhook_allowed_networks=("127.0.0.1/32",)), clock=clock)

    def resolver(host: str, port: int, *args: object) -> list[tuple]:
        assert host == "hooks.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))
                for ip in answer(port)]

    app.extensions["agegate"].webhooks.policy.resolver = resolver
    return app, app.test_client()


def test_a_name_answering_an_allowed_and_a_refused_address_is_refused_whole(
        redis_url, redis_client, tmp_path, clock, receiver):  # noqa: F811
    """Every answer must be allowed (ssrfguard's on_partial_block="reject"): using only the
    allowed half would hide a rebinding attempt."""
    answers = [["127.0.0.1"]]
    app, client = _hooks_test_app(redis_url, tmp_path, clock, lambda port: answers[-1])
    receiver.refuse_first = False
    hook = register(client, f"http://hooks.test:{receiver.port}/hook")
    answers.append(["127.0.0.1", "10.0.0.1"])
    response = client.post(URL, json={"url": f"http://hooks.test:{receiver.port}/other",
                                      "events": ["account.terminated"]}, headers=auth("admin"))
    assert response.status_code == 422 and list(response.json["error"]["fields"]) == ["url"]
    assert "10.0.0.1" not in json.dumps(response.json)  # never an address in what is shown
    terminate(client, "acc-1")
    run(client)
    [log] = deliveries(client, hook["webhook_id"])
    assert (log["status"], log["error"]) == ("retrying", "blocked")
    assert receiver.requests == []


def test_a_name_that_never_resolves_is_cut_at_the_deadline(
        redis_url, redis_client, tmp_path, clock, receiver):  # noqa: F811
    """getaddrinfo takes no timeout: the lookup is given up on at the delivery's deadline, and
    no worker thread of the HTTP client (not a daemon) is left blocked in it."""
    stuck = threading.Event()
    answers = ["127.0.0.1"]

    def answer(port: int) -> list[str]:
        if not answers:
            stuck.wait(30)
        return answers

    app, client = _hooks_test_app(redis_url, tmp_path, clock, answer)
    hook = register(client, f"http://hooks.test:{receiver.port}/hook")
    answers.clear()  # from now on the name hangs
    terminate(client, "acc-1")
    started = time.monotonic()
    try:
        run(client)
        assert time.monotonic() - started < 5 + 1.5
        [log] = deliveries(client, hook["webhook_id"])
        assert (log["status"], log["error"]) == ("retrying", "timeout")
        until = time.monotonic() + 1
        while time.monotonic() < until and [t for t in threading.enumerate()
                                            if t.name == "AnyIO worker thread"]:
            time.sleep(0.05)
        assert [t.name for t in threading.enumerate() if t.name == "AnyIO worker thread"] == []
    finally:
        stuck.set()
    assert receiver.requests == []


def test_a_proxy_in_the_environment_is_not_used(client, receiver, monkeypatch):  # noqa: F811
    """A proxy resolves the name itself, out of the guard's reach: deliveries ignore the
    environment's proxy settings and connect to the vetted address."""
    proxy = _listener("127.0.0.1")
    address = f"http://127.0.0.1:{proxy.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, address)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    receiver.refuse_first = False
    hook = register(client, receiver.url)
    receiver.secrets.append(hook["secret"])
    terminate(client, "acc-1")
    run(client)
    assert deliveries(client, hook["webhook_id"])[0]["status"] == "delivered"
    proxy.settimeout(0)
    with pytest.raises(BlockingIOError):
        proxy.accept()  # nothing went through the proxy
    proxy.close()


def test_the_reply_body_is_not_waited_for(client, raw_server):  # noqa: F811
    from tests.webhook_receiver import slow_body

    target = raw_server(slow_body)
    hook = register(client, target.url)
    terminate(client, "acc-1")
    started = time.monotonic()
    run(client)
    assert time.monotonic() - started < 2
    [log] = deliveries(client, hook["webhook_id"])
    assert (log["status"], log["http_status"], log["error"]) == ("delivered", 200, None)


def test_a_redirect_is_not_followed(client, raw_server):  # noqa: F811
    from tests.webhook_receiver import redirects

    target = raw_server(redirects)
    hook = register(client, target.url)
    terminate(client, "acc-1")
    run(client)
    [log] = deliveries(client, hook["webhook_id"])
    assert (log["status"], log["http_status"], log["error"]) == ("retrying", 307, "status")
    assert target.connections == 1


# -- receivers that misbehave -----------------------------------------------------------------
@pytest.mark.parametrize(("behaviour", "reason"), [
    ("garbage", "not_http"),  # BadStatusLine
    ("long_line", "not_http"),  # LineTooLong
    ("too_many_headers", "not_http"),
    ("closes_without_reply", "not_http"),  # RemoteDisconnected
    ("resets", "refused"),  # ConnectionResetError
    ("hangs", "timeout"),
    ("dribbles", "timeout"),  # each byte within a second; the whole reply is cut at 5 s
])
def test_every_failure_is_an_attempt_with_its_reason_class(
        client, raw_server, behaviour, reason):  # noqa: F811
    from tests import webhook_receiver

    target = raw_server(getattr(webhook_receiver, behaviour))
    hook = register(client, target.url)
    terminate(client, "acc-1")
    started = time.monotonic()
    job(client).run_once("w-test")
    assert time.monotonic() - started < 2  # the round only starts the delivery
    assert job(client).wait()
    assert time.monotonic() - started < 5 + 1.5  # 5 s for the whole delivery
    [log] = deliveries(client, hook["webhook_id"])
    assert (log["status"], log["attempt"], log["http_status"], log["error"]) == (
        "retrying", 1, None, reason)


def test_a_refused_connection_is_an_attempt(client):
    closed = _listener("127.0.0.1")
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    hook = register(client, f"http://127.0.0.1:{port}/hook")
    terminate(client, "acc-1")
    run(client)
    [log] = deliveries(client, hook["webhook_id"])
    assert (log["status"], log["error"]) == ("retrying", "refused")


def test_a_hanging_receiver_holds_up_neither_other_receivers_nor_the_worker(
        client, raw_server, receiver):  # noqa: F811
    from agegate.worker import Worker
    from tests.webhook_receiver import hangs

    hanging = register(client, raw_server(hangs).url)
    receiver.refuse_first = False
    good = register(client, receiver.url)
    receiver.secrets.append(good["secret"])
    for n in range(6):  # six deliveries to the hanging receiver queued ahead of the good ones
        terminate(client, f"acc-{n}")
    worker = Worker(client.application.extensions["agegate"].worker_jobs, "w-test")
    started = time.monotonic()
    worker.run_round()
    assert time.monotonic() - started < 2  # signal ingest and the outbox ran at once too
    deadline = time.monotonic() + 3
    while len(receiver.delivered()) < 6 and time.monotonic() < deadline:
        worker.run_round()
        time.sleep(0.05)
    # All six reached the good receiver while the hanging one still held its share.
    assert len(receiver.delivered()) == 6
    assert time.monotonic() - started < 4.5
    assert job(client).wait()
    attempts = deliveries(client, hanging["webhook_id"])
    assert attempts and {a["error"] for a in attempts} == {"timeout"}


def test_webhook_settings_are_read_and_a_bad_network_refuses_to_boot():
    from agegate.config import ConfigError, from_env

    secret = {"AGEGATE_SECRET_KEY": "s" * 40}
    config = from_env({**secret, "AGEGATE_WEBHOOK_ALLOW_HTTP": "true",
                       "AGEGATE_WEBHOOK_ALLOWED_NETWORKS": "10.20.0.0/16, fd00::/8"}).validate()
    assert config.webhook_allow_http
    assert config.webhook_allowed_networks == ("10.20.0.0/16", "fd00::/8")
    assert not from_env(secret).validate().webhook_allow_http
    with pytest.raises(ConfigError, match="AGEGATE_WEBHOOK_ALLOWED_NETWORKS"):
        from_env({**secret, "AGEGATE_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/33"}).validate()
    # Inside NAT64's prefix: it would allow every IPv4 address behind it, loopback and the
    # metadata service included (ssrfguard refuses such a policy), so the service does not boot.
    with pytest.raises(ConfigError, match="AGEGATE_WEBHOOK_ALLOWED_NETWORKS"):
        from_env({**secret, "AGEGATE_WEBHOOK_ALLOWED_NETWORKS": "64:ff9b::/96"}).validate()


# -- rotating AGEGATE_SECRET_KEY ---------------------------------------------------------------
OLD_KEY = "old-service-key-0123456789-abcdefghijklmnopqrstuvwxyz"
NEW_KEY = "new-service-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def _app_with_key(redis_url, tmp_path, clock, secret_key: str):
    return create_app(make_config(redis_url, tmp_path, secret_key=secret_key, **LOOPBACK),
                      clock=clock).test_client()


def test_after_a_key_rotation_the_worker_reseals_so_the_old_key_can_go(
        redis_url, redis_client, tmp_path, clock, receiver):  # noqa: F811
    receiver.refuse_first = False
    before = _app_with_key(redis_url, tmp_path, clock, OLD_KEY)
    hook = register(before, receiver.url)
    receiver.secrets.append(hook["secret"])
    sealed = redis_client.hget(keys.webhook(hook["webhook_id"]), "secrets")
    # The rotation: the new key first, the old one still listed; a worker starts and re-seals.
    during = _app_with_key(redis_url, tmp_path, clock, f"{NEW_KEY},{OLD_KEY}")
    run(during)
    assert redis_client.hget(keys.webhook(hook["webhook_id"]), "secrets") != sealed
    # The old key dropped: deliveries are still signed with the webhook's secret.
    after = _app_with_key(redis_url, tmp_path, clock, NEW_KEY)
    terminate(after, "acc-1")
    run(after)
    [request] = receiver.requests
    assert request.verified_with == [hook["secret"]] and request.status == 200
    assert_nowhere(redis_client, hook["secret"])


def test_a_delivery_no_key_can_sign_is_never_sent(redis_url, redis_client, tmp_path, clock,
                                                  receiver):  # noqa: F811
    before = _app_with_key(redis_url, tmp_path, clock, OLD_KEY)
    hook = register(before, receiver.url)
    # The old key dropped before any worker re-sealed: nothing opens the webhook's secret.
    after = _app_with_key(redis_url, tmp_path, clock, NEW_KEY)
    terminate(after, "acc-1")
    run(after)
    assert receiver.requests == []  # never an unsigned request
    [log] = deliveries(after, hook["webhook_id"])
    assert (log["status"], log["http_status"], log["error"]) == ("retrying", None, "unsigned")


# -- the events stream and its consumer groups -------------------------------------------------
def test_the_events_stream_never_expires_with_its_groups_and_is_trimmed_by_age(
        client, redis_client, clock, receiver):  # noqa: F811
    state = client.application.extensions["agegate"]
    stream = state.events.stream
    register(client, receiver.url)
    redis_client.xgroup_create(stream, "payments", id="$")  # a downstream system's group
    # An entry from 40 days before the service's clock, then today's events.
    old_ms = int((clock.now() - timedelta(days=40)).timestamp() * 1000)
    redis_client.xadd(stream, {"type": "account.terminated", "account_id": "acc-old"},
                      id=f"{old_ms}-0")
    terminate(client, "acc-1")
    run(client)
    # No TTL: after a quiet month the groups are still there (an EXPIRE would take them).
    assert redis_client.ttl(stream) == -1
    assert {g["name"] for g in redis_client.xinfo_groups(stream)} == {"agegate-webhooks",
                                                                      "payments"}
    # Trimmed by age instead: the 40-day-old entry went, today's stayed.
    accounts = [e["account_id"] for e in state.events.read_all()]
    assert "acc-old" not in accounts and "acc-1" in accounts
    # A TTL an older version set is removed with the next event.
    redis_client.expire(stream, 86_400)
    terminate(client, "acc-2")
    assert redis_client.ttl(stream) == -1


def test_a_lost_group_is_created_again_without_losing_or_repeating_events(
        client, redis_client, receiver):  # noqa: F811
    receiver.refuse_first = False
    state = client.application.extensions["agegate"]
    hook = register(client, receiver.url)
    receiver.secrets.append(hook["secret"])
    terminate(client, "acc-1")
    run(client)
    assert [json.loads(r.body)["account_id"] for r in receiver.requests] == ["acc-1"]
    # The stream vanishes with its groups (as the old 30-day EXPIRE did after a quiet month),
    # and events come in before the worker notices.
    redis_client.delete(state.events.stream)
    terminate(client, "acc-2")
    terminate(client, "acc-3")
    for _ in range(3):
        run(client)
    # Each once (the two new ones go out side by side: PER_WEBHOOK, so in either order).
    got = [json.loads(r.body)["account_id"] for r in receiver.requests]
    assert got[0] == "acc-1" and sorted(got[1:]) == ["acc-2", "acc-3"]
    assert all(r.verified_with == [hook["secret"]] for r in receiver.requests)


def _certificates(tmp_path, name: str) -> tuple[str, str]:
    """A CA (its PEM file, for SSL_CERT_FILE) and a server chain+key file for `name`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def subject(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(subject("test ca")).issuer_name(subject("test ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(subject(name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, server_file = tmp_path / "ca.pem", tmp_path / "server.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_file.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    return str(ca_file), str(server_file)


def test_tls_checks_the_url_host_name_although_it_connects_to_the_vetted_address(
        redis_url, redis_client, tmp_path, clock, monkeypatch):
    ca_file, server_file = _certificates(tmp_path, "localhost")
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # the test CA is what the client trusts
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_file)
    tls_receiver, stop = start_receiver(
        wrap=lambda s: context.wrap_socket(s, server_side=True))
    try:
        client = create_app(make_config(redis_url, tmp_path, webhook_allowed_networks=(
            "127.0.0.0/8", "::1/128")), clock=clock).test_client()  # https only
        tls_receiver.refuse_first = False
        by_name = register(client, f"https://localhost:{tls_receiver.port}/hook")
        # The same server by its address: the certificate names only `localhost`.
        by_address = register(client, f"https://127.0.0.1:{tls_receiver.port}/hook")
        tls_receiver.secrets.extend([by_name["secret"], by_address["secret"]])
        terminate(client, "acc-1")
        run(client)
        assert deliveries(client, by_name["webhook_id"])[0]["status"] == "delivered"
        [refused] = deliveries(client, by_address["webhook_id"])
        assert (refused["status"], refused["error"]) == ("retrying", "refused")
        [request] = tls_receiver.requests  # only the one whose certificate matched
        assert request.verified_with == [by_name["secret"]]
    finally:
        stop()
