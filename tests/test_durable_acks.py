"""Issue 24 (API.md "Durable acknowledgements"): with AGEGATE_REDIS_MIN_REPLICAS set, a write is
acknowledged only once that many replicas have it (WAIT), else 503 storage_unavailable with
Retry-After. Real redis-server processes: a primary and a replica, the replica frozen
(SIGSTOP) where a slow or cut-off replica is the point."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from agegate import create_app
from agegate.storage import keys, replicas
from tests.conftest import auth, make_config
from tests.faults import ReplyLosingProxy
from tests.redis_servers import redis_server
from tests.test_errors import assert_error

BINARY = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(BINARY is None, reason="needs Debian's redis-server")

CHECK = {"date_of_birth": "2015-01-01", "country": "US", "email": "kid@example.com"}


@contextmanager
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A primary and its replica, in sync."""
    with redis_server(tmp_path / "primary", binary=BINARY) as primary, \
            redis_server(tmp_path / "replica", binary=BINARY) as replica:
        host, port = primary.removeprefix("redis://").removesuffix("/0").split(":")
        follower = redis.Redis.from_url(replica)
        follower.execute_command("REPLICAOF", host, port)
        for _ in range(200):
            if follower.info("replication").get("master_link_status") == "up":
                break
            time.sleep(0.05)
        follower.close()
        yield primary, replica


@contextmanager
def frozen(url: str) -> Iterator[None]:
    """A replica that stops answering (SIGSTOP), as a slow link or a stuck host does."""
    client = redis.Redis.from_url(url)
    pid = int(client.info("server")["process_id"])
    client.close()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def app_on(url: str, tmp_path: Path, clock, **overrides):
    """The app on `url`; the model only where readiness needs it (loading it takes seconds)."""
    overrides.setdefault("load_model", False)
    return create_app(make_config(url, tmp_path, **overrides), clock=clock)


def wait_timeouts() -> float:
    return replicas.WAIT_TIMEOUTS.counter._value.get()


def test_a_write_is_acknowledged_once_a_replica_has_it(tmp_path, clock):
    with primary_and_replica(tmp_path) as (primary, replica):
        client = app_on(primary, tmp_path, clock, redis_min_replicas=1).test_client()
        response = client.post("/v1/age-checks", json=CHECK, headers=auth("registration"))
        assert response.status_code == 200, response.json
        assert response.json["decision"] == "deny"
        # What was acknowledged is on the replica already: the audit entry of the check.
        copy = redis.Redis.from_url(replica, decode_responses=True)
        assert sum(copy.xlen(keys.audit_stream(s)) for s in keys.all_shards()) == 1
        copy.close()


def test_a_replica_that_does_not_confirm_is_a_503_never_a_500(tmp_path, clock, caplog):
    caplog.set_level(logging.INFO)
    with primary_and_replica(tmp_path) as (primary, replica):
        client = app_on(primary, tmp_path, clock, redis_min_replicas=1,
                        redis_wait_ms=200).test_client()
        before = wait_timeouts()
        with frozen(replica):
            started = time.monotonic()
            response = client.post("/v1/age-checks", json=CHECK, headers=auth("registration"))
            elapsed = time.monotonic() - started
        assert_error(response, 503, "storage_unavailable")
        assert response.headers["Retry-After"] == "5"
        assert elapsed < 3  # WAIT's timeout, not the socket's
        assert wait_timeouts() == before + 1
        metrics = client.get("/metrics").get_data(as_text=True)
        assert f"agegate_redis_wait_timeouts_total {before + 1}" in metrics
        # The replica back: the retry is acknowledged.
        again = client.post("/v1/age-checks", json=CHECK, headers=auth("registration"))
        assert again.status_code == 200, again.json
    assert "unhandled error" not in caplog.text and "Traceback" not in caplog.text


def test_without_min_replicas_a_frozen_replica_changes_nothing(tmp_path, clock):
    """The default: acknowledged by the primary alone (the window issue 24 closes)."""
    with primary_and_replica(tmp_path) as (primary, replica):
        client = app_on(primary, tmp_path, clock).test_client()
        with frozen(replica):
            response = client.post("/v1/age-checks", json=CHECK, headers=auth("registration"))
        assert response.status_code == 200


def test_a_primary_without_replicas_refuses_every_write(tmp_path, clock):
    with redis_server(tmp_path / "alone", binary=BINARY) as url:
        client = app_on(url, tmp_path, clock, redis_min_replicas=1,
                        redis_wait_ms=50).test_client()
        response = client.post("/v1/age-checks", json=CHECK, headers=auth("registration"))
        assert_error(response, 503, "storage_unavailable")


def test_readyz_and_metrics_report_the_replicas(tmp_path, clock):
    with primary_and_replica(tmp_path) as (primary, _):
        client = app_on(primary, tmp_path, clock, redis_min_replicas=1,
                        load_model=True).test_client()
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.json
        assert ready.json["checks"]["replicas"] == "ok"
        lines = client.get("/metrics").get_data(as_text=True).splitlines()
        for line in ("agegate_redis_min_replicas 1.0", "agegate_redis_replicas_connected 1.0",
                     "agegate_redis_replicas_in_sync 1.0"):
            assert line in lines, line
    with redis_server(tmp_path / "alone", binary=BINARY) as url:
        client = app_on(url, tmp_path, clock, redis_min_replicas=1,
                        load_model=True).test_client()
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json["checks"]["replicas"] == "too_few"
        assert "agegate_redis_replicas_connected 0.0" in client.get("/metrics").get_data(
            as_text=True).splitlines()
        # Without the setting, a primary alone is ready (what it always was).
        client = app_on(url, tmp_path, clock, load_model=True).test_client()
        assert client.get("/readyz").status_code == 200
        assert "replicas" not in client.get("/readyz").json["checks"]


def test_a_retry_is_not_acknowledged_until_the_first_application_is_confirmed(tmp_path, clock):
    """A 503 after the primary applied a termination: the retry finds it applied, and answers
    it only once the replicas have it too (what it read is covered by a WAIT as well)."""
    with primary_and_replica(tmp_path) as (primary, replica):
        client = app_on(primary, tmp_path, clock, redis_min_replicas=1,
                        redis_wait_ms=200).test_client()
        check = {**CHECK, "account_id": "acc-t"}
        assert client.post("/v1/age-checks", json=check,
                           headers=auth("registration")).status_code == 200
        terminate = {"reason": "confirmed minor"}
        with frozen(replica):
            for _ in range(2):  # the first application, then its retry: both unconfirmed
                response = client.post("/v1/accounts/acc-t/termination", json=terminate,
                                       headers=auth("admin"))
                assert_error(response, 503, "storage_unavailable")
        done = client.post("/v1/accounts/acc-t/termination", json=terminate,
                           headers=auth("admin"))
        assert done.status_code == 202, done.json
        again = client.post("/v1/accounts/acc-t/termination", json=terminate,
                            headers=auth("admin"))
        assert again.json["deletion_id"] == done.json["deletion_id"]
        # Applied once: one deletion, on the replica as well.
        copy = redis.Redis.from_url(replica, decode_responses=True)
        assert copy.hget(keys.deletion(done.json["deletion_id"]), "deletion_id") == \
            done.json["deletion_id"]
        assert len(list(copy.scan_iter("agegate:deletion:*"))) == 1
        copy.close()


def test_a_unit_whose_reply_was_lost_is_confirmed_like_any_other(tmp_path, clock):
    """EXEC applied, its reply lost: the retry finds the unit's marker and answers from it, and
    that answer too waits for the replicas (known_applied is the one place for both)."""
    with primary_and_replica(tmp_path) as (primary, replica):
        proxy = ReplyLosingProxy(primary)
        try:
            client = app_on(proxy.url, tmp_path, clock, redis_min_replicas=1,
                            redis_wait_ms=200).test_client()
            proxy.lose_exec_replies(1)
            with frozen(replica):
                response = client.post("/v1/age-checks", json=CHECK,
                                       headers=auth("registration"))
            assert proxy.lost == 1
            assert_error(response, 503, "storage_unavailable")
        finally:
            proxy.close()


def test_a_stream_entry_is_acknowledged_only_once_its_effects_are_confirmed(tmp_path, clock):
    """The worker's XACK comes after the WAIT of the unit that applied the entry: unconfirmed,
    the entry stays pending; taken over later, it is applied once."""
    from agegate.ingest import SignalStreamJob
    from tests.signals_helpers import adult_text, text_signal

    with primary_and_replica(tmp_path) as (primary, replica):
        app = app_on(primary, tmp_path, clock, redis_min_replicas=1, redis_wait_ms=200,
                     load_model=True, signals_claim_idle_seconds=1)
        state = app.extensions["agegate"]
        job = next(j for j in state.worker_jobs if isinstance(j, SignalStreamJob))
        writer = redis.Redis.from_url(primary, decode_responses=True)
        writer.xadd("agegate:signals", {"account_id": "acc-w", "id": "m-1", "signals":
                                        json.dumps([text_signal(adult_text(0))])})
        with frozen(replica):
            assert job.run_once("w-1") == 1
        figures = state.ingest.status()
        assert (figures["length"], figures["pending"]) == (1, 1)  # not acknowledged
        time.sleep(1.1)  # past the claim time: another worker takes it over
        assert job.run_once("w-2") == 1
        figures = state.ingest.status()
        assert (figures["length"], figures["pending"], figures["dead"]) == (0, 0, 0)
        found = state.accounts.accounts.state(state.redis, state.hasher.account("acc-w"))
        assert found["n"] == 1  # applied once
        writer.close()


def test_a_credential_answer_that_was_not_confirmed_is_neither_lost_nor_half_applied(
        tmp_path, clock, pki):
    """A 503 answering a wallet's presentation: either the request can still be answered, or
    the answer's effects went in with it (the audit entry now, the 30-minute pass once the
    worker drains the outbox). Never a used-up request with nothing to show for it."""
    from tests.mdoc_helpers import ORIGIN, Presentation

    with primary_and_replica(tmp_path) as (primary, replica):
        app = app_on(primary, tmp_path, clock, redis_min_replicas=1, redis_wait_ms=200,
                     credential_origins=(ORIGIN,),
                     credential_trust_anchors=pki.anchors_pem().decode())
        client = app.test_client()
        request = client.post("/v1/credential-requests", headers=auth("registration"),
                              json={"origin": ORIGIN, "session_id": "sess-d"})
        assert request.status_code == 201, request.json
        request_id = request.json["request_id"]
        answer = {"vp_token": {"age": [Presentation(pki, request.json["request"]["nonce"])
                                       .encoded()]}}
        path = f"/v1/credential-requests/{request_id}/response"
        with frozen(replica):
            response = client.post(path, json=answer, headers=auth("registration"))
        assert_error(response, 503, "storage_unavailable")
        retry = client.post(path, json=answer, headers=auth("registration"))
        audited = client.get("/v1/audit", headers=auth("admin")).json["events"]
        checks = [e for e in audited if e["action"] == "credential_check"]
        if retry.status_code == 200:
            assert retry.json["result"] == "over_18" and len(checks) == 1
        else:
            assert retry.status_code == 409
            assert [c["details"]["request_id"] for c in checks] == [request_id]
        for job in app.extensions["agegate"].worker_jobs:
            if job.name == "outbox":
                job.run_once("w-1")
        allowed = client.post("/v1/age-checks", headers=auth("registration"),
                              json={"date_of_birth": "2012-01-01", "country": "US",
                                    "session_id": "sess-d"})
        assert allowed.json["decision"] == "allow"


def test_a_credential_answer_that_was_not_confirmed_still_admits_the_waiting_account(
        tmp_path, clock, pki):
    """The over-18 answer's assurance record and the admission of a pending_assurance account
    go in with the answer itself: a 503 after it (too few replicas) leaves no used-up request
    whose account waits for ever."""
    from tests.mdoc_helpers import ORIGIN, Presentation

    with primary_and_replica(tmp_path) as (primary, replica):
        app = app_on(primary, tmp_path, clock, redis_min_replicas=1, redis_wait_ms=200,
                     credential_origins=(ORIGIN,),
                     credential_trust_anchors=pki.anchors_pem().decode())
        client = app.test_client()
        asked = client.post("/v1/age-checks", headers=auth("registration"),
                            json={"date_of_birth": "1990-01-01", "country": "GB",
                                  "account_id": "acc-gb"})
        assert asked.json["decision"] == "verify"
        request = client.post("/v1/credential-requests", headers=auth("registration"),
                              json={"origin": ORIGIN, "account_id": "acc-gb"})
        answer = {"vp_token": {"age": [Presentation(pki, request.json["request"]["nonce"])
                                       .encoded()]}}
        with frozen(replica):
            response = client.post(f"/v1/credential-requests/{request.json['request_id']}"
                                   "/response", json=answer, headers=auth("registration"))
        assert_error(response, 503, "storage_unavailable")
        status = client.get("/v1/accounts/acc-gb", headers=auth("reviewer")).json["status"]
        assert status == "active"
        records = client.get("/v1/accounts/acc-gb/assurance",
                             headers=auth("reviewer")).json["records"]
        assert [r["evidence_id"] for r in records] == [request.json["request_id"]]


def test_a_503_after_the_write_was_applied_is_answered_by_the_keyed_retry(tmp_path, clock):
    """The contract's case for Idempotency-Key: the primary applied the write, the replica did
    not confirm it (503). The retry with the same key applies nothing again and is answered
    as the first call would have been: the signal batch's score, and (below) the webhook with
    the secret it was created with."""
    from tests.signals_helpers import adult_text, minor_text, text_signal

    with primary_and_replica(tmp_path) as (primary, replica):
        app = app_on(primary, tmp_path, clock, redis_min_replicas=1, redis_wait_ms=200,
                     load_model=True)
        client = app.test_client()
        batch = {"signals": [text_signal(adult_text(i)) for i in range(3)]}
        path, headers = "/v1/accounts/acc-k/signals", {**auth("signals"),
                                                       "Idempotency-Key": "batch-1"}
        with frozen(replica):
            for _ in range(2):  # the first call, and its retry while still unconfirmed
                assert_error(client.post(path, json=batch, headers=headers), 503,
                             "storage_unavailable")
        primary_client = redis.Redis.from_url(primary, decode_responses=True)
        state_key = keys.account_state(app.extensions["agegate"].hasher.account("acc-k"))
        assert json.loads(primary_client.get(state_key))["n"] == 3  # applied, once
        # More signals reach the account before the caller retries.
        later = {"signals": [text_signal(minor_text(i)) for i in range(4)]}
        assert client.post(path, json=later, headers=auth("signals")).status_code == 200
        scored = client.post(path, json=batch, headers=headers)
        assert scored.status_code == 200, scored.json
        assert client.post(path, json=batch, headers=headers).json == scored.json
        assert json.loads(primary_client.get(state_key))["n"] == 7
        # What an unkeyed first application of the same batch answers, elsewhere.
        fresh = client.post("/v1/accounts/acc-fresh/signals", json=batch,
                            headers=auth("signals")).json
        assert {**fresh, "account_id": "acc-k"} == scored.json
        primary_client.close()


def test_a_webhook_created_but_not_confirmed_is_handed_out_by_the_keyed_retry(tmp_path, clock):
    """The webhook's unit is applied on the primary (its EXEC held back while the replica
    freezes), the WAIT after it times out: 503. The retry gets that webhook and its secret."""
    import threading

    with primary_and_replica(tmp_path) as (primary, replica):
        proxy = ReplyLosingProxy(primary)
        try:
            app = app_on(proxy.url, tmp_path, clock, redis_min_replicas=1, redis_wait_ms=200,
                         webhook_allow_http=True, webhook_allowed_networks=("127.0.0.0/8",))
            client = app.test_client()
            hook = {"url": "http://127.0.0.1:9/hook", "events": ["account.terminated"]}
            headers = {**auth("admin"), "Idempotency-Key": "hook-1"}
            answers = []
            proxy.delay_exec()
            first = threading.Thread(target=lambda: answers.append(
                client.post("/v1/admin/webhooks", json=hook, headers=headers)))
            first.start()
            assert proxy.delayed.wait(10)
            with frozen(replica):
                proxy.release()
                first.join(30)
            [response] = answers
            assert_error(response, 503, "storage_unavailable")
            store = app.extensions["agegate"].webhooks.store
            [webhook] = store.all()  # applied on the primary
            created = client.post("/v1/admin/webhooks", json=hook, headers=headers)
            assert created.status_code == 201, created.json
            assert [w["webhook_id"] for w in store.all()] == [created.json["webhook_id"]]
            live = app.extensions["agegate"].webhooks.live_secrets(webhook, clock.now())
            assert live == [created.json["secret"]]
        finally:
            proxy.close()
