"""The house rules over everything last session's features write (issues 20-24), in one keyspace:
after assurance results, digital credentials, an Idempotency-Key'd batch of signals, webhooks
(registration, fan-out, a delivery and its log), test mode and a refused console sign-in, every
key has a TTL from the retention table, and no key or value holds a date of birth, message text
or a raw device, email or session identifier (README "Privacy")."""

from __future__ import annotations

import pytest

from tests.conftest import API_KEYS, TEST_KEYS, auth, sandbox
from tests.console_helpers import csrf_from
from tests.helpers import assert_nowhere, keys_without_ttl
from tests.mdoc_helpers import ORIGIN, Presentation
from tests.signals_helpers import minor_text, signals_app, text_signal
from tests.webhook_receiver import receiver  # noqa: F401

# Keys of many slots: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster

BORN = "1991-07-23"
DEVICE, EMAIL, SESSION = "dev-sweep-5521", "sweep.person@example.com", "sess-sweep-8812"


@pytest.fixture
def app(config, clock, pki):
    return signals_app(config.with_overrides(
        api_keys=API_KEYS + TEST_KEYS,
        webhook_allow_http=True, webhook_allowed_networks=("127.0.0.0/8",),
        credential_origins=(ORIGIN,), credential_trust_anchors=pki.anchors_pem().decode()),
        clock)


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.get_json()
    return response.get_json()


def drive_every_new_feature(client, pki, receiver) -> str:  # noqa: F811
    """Use each of last session's features once through the API and the worker; returns the
    message text that was scored."""
    text = minor_text(0)
    hook = ok(client.post("/v1/admin/webhooks",
                          headers={**auth("admin"), "Idempotency-Key": "sweep-hook-1"},
                          json={"url": receiver.url, "events": ["account.terminated"]}), 201)
    receiver.secrets.append(hook["secret"])
    # Step-up assurance: an age check that asks for it, then a result.
    body = {"date_of_birth": BORN, "country": "GB", "account_id": "acc-sweep",
            "device_id": DEVICE, "email": EMAIL, "session_id": SESSION}
    assert ok(client.post("/v1/age-checks", json=body,
                          headers=auth("registration")))["decision"] == "verify"
    ok(client.post("/v1/accounts/acc-sweep/assurance-results",
                   headers={**auth("signals"), "Idempotency-Key": "sweep-result-1"},
                   json={"method": "photo_id_matching", "provider": "Acme", "evidence_id": "ev-1",
                         "outcome": "over_threshold", "observed_at": "2026-11-24T13:00:00Z"}))
    # Digital credentials: one request answered over 18, one left open.
    for over_18 in (True, False):
        request = ok(client.post("/v1/credential-requests", headers=auth("registration"),
                                 json={"origin": ORIGIN, "account_id": "acc-cred",
                                       "session_id": SESSION}), 201)
        presentation = Presentation(pki, request["request"]["nonce"],
                                    elements={"age_over_18": over_18}).encoded()
        ok(client.post(f"/v1/credential-requests/{request['request_id']}/response",
                       json={"vp_token": {"age": [presentation]}}, headers=auth("registration")))
    ok(client.post("/v1/credential-requests", headers=auth("registration"),
                   json={"origin": ORIGIN, "session_id": SESSION}), 201)
    # Signals with an Idempotency-Key, twice.
    for _ in range(2):
        ok(client.post("/v1/accounts/acc-sig/signals", json={"signals": [text_signal(text)]},
                       headers={**auth("signals"), "Idempotency-Key": "sweep-batch-1"}))
    # Test mode: an under-age age check (blocks) in the test keyspace.
    ok(client.post("/v1/age-checks", headers=sandbox("registration"),
                   json={"date_of_birth": "2015-01-01", "country": "US", "device_id": DEVICE,
                         "email": EMAIL, "session_id": SESSION}))
    # Webhooks: a termination fanned out, delivered (the receiver refuses the first attempt,
    # so the delivery is rescheduled and logged).
    ok(client.post("/v1/accounts/acc-sweep/termination", headers=auth("admin"),
                   json={"reason": "test"}), 202)
    jobs = client.application.extensions["agegate"].worker_jobs
    for job in jobs:
        job.run_once("w-sweep")
    [webhooks] = [j for j in jobs if j.name == "webhooks"]
    assert webhooks.wait()
    assert receiver.requests
    # The console: a refused sign-in counts against the (hashed) address.
    page = client.get("/console/login").get_data(as_text=True)
    refused = client.post("/console/login", data={"token": "not-a-token-000000",
                                                  "csrf_token": csrf_from(page)})
    assert refused.status_code == 401
    return text


def test_every_key_has_a_ttl_and_holds_no_birth_date_text_or_raw_identifier(
        app, client, redis_client, pki, receiver):  # noqa: F811
    text = drive_every_new_feature(client, pki, receiver)
    found = " ".join(redis_client.scan_iter(count=1000))
    for family in ("assurance:", "credreq:", "credpass:", "verify-session:", "whd:", ":log",
                   ":seen:", ":idem:", "agegate-test:", "login-failures:", "relayed"):
        assert family in found, family
    assert keys_without_ttl(redis_client) == []
    assert_nowhere(redis_client, BORN, DEVICE, EMAIL, SESSION, "sweep.person", text[:40],
                   "sweep-hook-1", "sweep-result-1")

