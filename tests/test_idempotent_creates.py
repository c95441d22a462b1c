"""Issue 24: the writes that create something take an `Idempotency-Key` as POST .../signals
does (API.md "Durable acknowledgements": a retry after a 503 must be safe). Without one, a
retried POST /v1/admin/webhooks made a second webhook and a retried assurance result a second
record; with one, the retry is applied once and answered as the first time, and the key sent
with another body is refused. Real Redis (also a 3-primary cluster), the real app."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from agegate import create_app
from agegate.config import ApiKey
from tests.conftest import API_KEYS, auth, make_config
from tests.helpers import audit_verify
from tests.test_assurance import result
from tests.test_errors import assert_error
from tests.test_webhooks import LOOPBACK

pytestmark = pytest.mark.cluster

HOOKS = "/v1/admin/webhooks"
HOOK = {"url": "http://127.0.0.1:9/hook", "events": ["account.terminated"]}
OTHER_ADMIN = "admin-2-token-0123456789abcdef"


@pytest.fixture
def config(redis_url, redis_client, tmp_path):
    return make_config(redis_url, tmp_path, api_keys=(
        *API_KEYS, ApiKey(name="admin-two", role="admin", token=OTHER_ADMIN)), **LOOPBACK)


@pytest.fixture
def app(config, clock):
    return create_app(config, clock=clock)


def create(client, body=HOOK, key: str | None = None, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else auth("admin")
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(HOOKS, json=body, headers=headers)


def webhooks(client) -> list[dict]:
    return client.get(HOOKS, headers=auth("admin")).json["webhooks"]


def idempotency_keys(redis_client) -> list[str]:
    return list(redis_client.scan_iter("agegate:idem:*"))


# -- webhooks -----------------------------------------------------------------------------------
def test_without_a_key_a_retried_webhook_create_makes_a_second_webhook(client):
    """What the review found, still true without a key: the caller must send one."""
    assert create(client).status_code == create(client).status_code == 201
    assert len(webhooks(client)) == 2


def test_a_retried_webhook_create_gets_the_same_webhook_and_secret(
        app, client, redis_client, redis_url, monkeypatch):
    first = create(client, key="hook-1")
    assert first.status_code == 201
    for _ in range(2):
        again = create(client, key="hook-1")
        assert again.status_code == 201 and again.json == first.json
    assert [w["webhook_id"] for w in webhooks(client)] == [first.json["webhook_id"]]
    # Applied once: one audit entry; the chain still verifies.
    audit = client.get("/v1/audit?limit=100", headers=auth("admin")).json["events"]
    assert [e["action"] for e in audit].count("webhook_created") == 1
    assert audit_verify(monkeypatch, redis_url).exit_code == 0
    # The key is kept as keyed hashes with the webhook's id, never the secret (nor its sealed
    # copy, nor the key itself), for the retention table's period.
    [name] = idempotency_keys(redis_client)
    kept = redis_client.get(name)
    secret = first.json["secret"]
    stored = json.loads(redis_client.hget(
        f"agegate:webhook:{{s0}}:{first.json['webhook_id']}", "secrets"))[0]["sealed"]
    for value in (secret, secret.removeprefix("whsec_"), stored, "hook-1"):
        assert value not in kept and value not in name
    ttl = app.extensions["agegate"].retention.seconds("idempotency")
    assert ttl - 5 < redis_client.ttl(name) <= ttl


def test_a_webhook_key_reused_with_another_body_is_refused(client):
    assert create(client, key="hook-2").status_code == 201
    other = {**HOOK, "events": ["account.terminated", "account.reinstated"]}
    assert_error(create(client, other, key="hook-2"), 422, "idempotency_key_reused")
    assert len(webhooks(client)) == 1
    # The same body with its fields in another order is the same body.
    assert create(client, {"events": HOOK["events"], "url": HOOK["url"]},
                  key="hook-2").status_code == 201
    assert len(webhooks(client)) == 1


def test_a_webhook_key_is_per_caller(client):
    mine = create(client, key="hook-3")
    theirs = create(client, key="hook-3", token=OTHER_ADMIN)
    assert theirs.status_code == 201 and theirs.json["webhook_id"] != mine.json["webhook_id"]
    assert len(webhooks(client)) == 2


def test_a_retry_after_rotation_gets_the_first_secret_while_it_signs(client, clock):
    first = create(client, key="hook-4")
    rotated = client.post(f"{HOOKS}/{first.json['webhook_id']}/secret", headers=auth("admin"))
    assert rotated.status_code == 200
    assert create(client, key="hook-4").json == first.json  # both secrets sign for 24 hours
    clock.instant += timedelta(hours=24, seconds=1)
    assert_error(create(client, key="hook-4"), 409, "conflict")
    assert len(webhooks(client)) == 1


def test_a_retry_after_the_webhook_was_deleted_creates_nothing(client):
    first = create(client, key="hook-5")
    assert client.delete(f"{HOOKS}/{first.json['webhook_id']}",
                         headers=auth("admin")).status_code == 204
    assert_error(create(client, key="hook-5"), 409, "conflict")
    assert webhooks(client) == []


def rotate(client, webhook_id: str, key: str | None = None):
    headers = {**auth("admin"), **({"Idempotency-Key": key} if key is not None else {})}
    return client.post(f"{HOOKS}/{webhook_id}/secret", headers=headers)


def test_a_retried_rotation_gets_the_same_secret_and_rotates_once(client, redis_client):
    webhook_id = create(client).json["webhook_id"]
    first = rotate(client, webhook_id, key="rot-1")
    assert first.status_code == 200 and first.json["previous_secret_expires_at"]
    assert rotate(client, webhook_id, key="rot-1").json == first.json
    [hook] = webhooks(client)
    assert hook["live_secrets"] == 2  # the first secret and one new one, not two new ones
    # Without a key a retry rotates again (all three sign until the first rotation ends).
    assert rotate(client, webhook_id).json["secret"] != first.json["secret"]
    assert webhooks(client)[0]["live_secrets"] == 3
    # The key is per webhook: the same key on another webhook rotates that one.
    other_id = create(client).json["webhook_id"]
    assert rotate(client, other_id, key="rot-1").json["webhook_id"] == other_id


def test_a_retried_rotation_whose_secret_was_rotated_out_rotates_nothing(client, clock):
    webhook_id = create(client).json["webhook_id"]
    assert rotate(client, webhook_id, key="rot-2").status_code == 200
    assert rotate(client, webhook_id).status_code == 200
    clock.instant += timedelta(hours=24, seconds=1)
    assert rotate(client, webhook_id).status_code == 200  # rot-2's secret is now gone
    assert_error(rotate(client, webhook_id, key="rot-2"), 409, "conflict")
    assert webhooks(client)[0]["live_secrets"] == 2


@pytest.mark.parametrize("key", ["has space", "x" * 257, ""])
def test_a_bad_key_on_a_create_is_a_422(client, key):
    for response in (create(client, key=key),
                     client.post("/v1/accounts/acc-x/assurance-results", json=result(),
                                 headers={**auth("signals"), "Idempotency-Key": key})):
        error = assert_error(response, 422, "validation_error")
        assert "Idempotency-Key" in error["fields"]
    assert webhooks(client) == []


# -- assurance results ----------------------------------------------------------------------------
def assure(client, account_id: str, body: dict, key: str | None = None):
    headers = {**auth("signals"), **({"Idempotency-Key": key} if key is not None else {})}
    return client.post(f"/v1/accounts/{account_id}/assurance-results", json=body,
                       headers=headers)


def records(client, account_id: str) -> list[dict]:
    response = client.get(f"/v1/accounts/{account_id}/assurance", headers=auth("reviewer"))
    return response.json["records"] if response.status_code == 200 else []


def test_without_a_key_a_retried_assurance_result_is_recorded_twice(client):
    assert assure(client, "acc-n", result()).status_code == 200
    assert assure(client, "acc-n", result()).status_code == 200
    assert len(records(client, "acc-n")) == 2


def test_a_retried_assurance_result_is_recorded_once_and_answered_as_the_first_time(
        client, redis_client):
    first = assure(client, "acc-a", result(outcome="under_threshold"), key="res-1")
    assert first.status_code == 200 and first.json["action"] == "case_opened"
    again = assure(client, "acc-a", result(outcome="under_threshold"), key="res-1")
    assert again.status_code == 200 and again.json == first.json
    assert [r["assurance_id"] for r in records(client, "acc-a")] == [first.json["assurance_id"]]
    cases = client.get("/v1/review/cases?kind=age_signal", headers=auth("reviewer")).json
    assert len(cases["cases"]) == 1
    # No raw account id or key in what is kept.
    [name] = idempotency_keys(redis_client)
    assert not any(raw in name + redis_client.get(name) for raw in ("acc-a", "res-1"))


def test_an_assurance_key_reused_with_another_body_is_refused(client):
    assert assure(client, "acc-b", result(), key="res-2").status_code == 200
    assert_error(assure(client, "acc-b", result(evidence_id="ev-999"), key="res-2"), 422,
                 "idempotency_key_reused")
    assert len(records(client, "acc-b")) == 1


def test_an_assurance_key_is_per_account(client):
    one = assure(client, "acc-c", result(), key="res-3")
    two = assure(client, "acc-d", result(), key="res-3")
    assert two.status_code == 200 and two.json["assurance_id"] != one.json["assurance_id"]
    assert two.json["account_id"] == "acc-d"


def test_the_creates_document_the_header(client):
    paths = client.get("/openapi.json").json["paths"]
    for path in (HOOKS, "/v1/accounts/{account_id}/assurance-results",
                 "/v1/accounts/{account_id}/signals"):
        operation = paths[path]["post"]
        assert any(p["name"] == "Idempotency-Key" and p["in"] == "header"
                   for p in operation["parameters"]), path
        assert "idempotency_key_reused" in operation["responses"]["422"]["description"], path


# -- digital credentials --------------------------------------------------------------------
@pytest.fixture
def creds(redis_url, redis_client, tmp_path, clock, pki):
    from tests.mdoc_helpers import ORIGIN

    config = make_config(redis_url, tmp_path, credential_origins=(ORIGIN,),
                         credential_trust_anchors=pki.anchors_pem().decode(), load_model=False)
    return create_app(config, clock=clock).test_client()


def credential_request(client, key: str | None = None, **ids):
    from tests.mdoc_helpers import ORIGIN

    headers = {**auth("registration"), **({"Idempotency-Key": key} if key else {})}
    return client.post("/v1/credential-requests", json={"origin": ORIGIN, **ids},
                       headers=headers)


def wallet_answer(client, request_id: str, presentation: str, key: str | None = None):
    headers = {**auth("registration"), **({"Idempotency-Key": key} if key else {})}
    return client.post(f"/v1/credential-requests/{request_id}/response",
                       json={"vp_token": {"age": [presentation]}}, headers=headers)


def test_a_retried_credential_request_is_the_same_open_request(creds, pki, redis_client):
    from tests.mdoc_helpers import Presentation

    first = credential_request(creds, key="creq-1", account_id="acc-w")
    assert first.status_code == 201
    assert credential_request(creds, key="creq-1", account_id="acc-w").json == first.json
    assert len(list(redis_client.scan_iter("agegate:credreq:*"))) == 1
    assert len(list(redis_client.scan_iter("agegate:idem:*"))) == 1
    # Without a key a retry is another request (another nonce).
    assert credential_request(creds, account_id="acc-w").json["request"]["nonce"] != \
        first.json["request"]["nonce"]
    assert_error(credential_request(creds, key="creq-1", account_id="acc-w", session_id="s-2"),
                 422, "idempotency_key_reused")
    # The key is per account named: another account's request is another request.
    assert credential_request(creds, key="creq-1", account_id="acc-v").json["request_id"] != \
        first.json["request_id"]
    # Once answered it cannot be handed out again: the page starts over with a new key.
    presentation = Presentation(pki, first.json["request"]["nonce"]).encoded()
    assert wallet_answer(creds, first.json["request_id"], presentation).status_code == 200
    assert_error(credential_request(creds, key="creq-1", account_id="acc-w"), 409, "conflict")


def test_a_retried_wallet_answer_gets_the_first_result(creds, pki):
    from tests.mdoc_helpers import Presentation

    request = credential_request(creds, account_id="acc-w2").json
    presentation = Presentation(pki, request["request"]["nonce"]).encoded()
    first = wallet_answer(creds, request["request_id"], presentation, key="ans-1")
    assert first.status_code == 200 and first.json["result"] == "over_18"
    again = wallet_answer(creds, request["request_id"], presentation, key="ans-1")
    assert again.status_code == 200 and again.json == first.json
    records = creds.get("/v1/accounts/acc-w2/assurance", headers=auth("reviewer")).json
    assert len(records["records"]) == 1  # recorded once
    # Without the key (or with another one) a second answer is the contract's 409.
    assert_error(wallet_answer(creds, request["request_id"], presentation), 409, "conflict")
    assert_error(wallet_answer(creds, request["request_id"], presentation, key="ans-2"), 409,
                 "conflict")
    other = Presentation(pki, "another-nonce-0123456789abcdef").encoded()
    assert_error(wallet_answer(creds, request["request_id"], other, key="ans-1"), 422,
                 "idempotency_key_reused")


# -- appeals ------------------------------------------------------------------------------------
def appeal(client, account_id: str, statement: str, key: str | None = None):
    headers = {**auth("signals"), **({"Idempotency-Key": key} if key else {})}
    return client.post(f"/v1/accounts/{account_id}/appeals", json={"statement": statement},
                       headers=headers)


def test_a_retried_appeal_gets_the_first_answer_instead_of_a_409(client, redis_client):
    from tests.test_idempotency import _restricted

    _restricted(client, "acc-ap")
    words = "I am thirty-four years old."
    first = appeal(client, "acc-ap", words, key="apl-1")
    assert first.status_code == 202
    again = appeal(client, "acc-ap", words, key="apl-1")
    assert again.status_code == 202 and again.json == first.json
    cases = client.get("/v1/review/cases?kind=appeal", headers=auth("reviewer")).json["cases"]
    assert [c["case_id"] for c in cases] == [first.json["case_id"]]
    # Without the key a retry is the contract's 409 (one appeal open); another body, a 422.
    assert_error(appeal(client, "acc-ap", words), 409, "conflict")
    assert_error(appeal(client, "acc-ap", "I am thirty-five.", key="apl-1"), 422,
                 "idempotency_key_reused")
    # The member's words are not in what the key keeps.
    assert not any("thirty" in redis_client.get(name) for name in idempotency_keys(redis_client))


# -- content removals ---------------------------------------------------------------------------
def test_a_retried_content_removal_gets_the_first_request_id_and_audits_once(client,
                                                                            redis_client):
    from tests.test_content_removals import item

    body = {"account_id": "acc-1", "region": "US-CA",
            "items": [item("post-1"), item("post-2", legal_hold=True)]}
    headers = {**auth("signals"), "Idempotency-Key": "crm-1"}
    first = client.post("/v1/content-removals", json=body, headers=headers)
    assert first.status_code == 202
    again = client.post("/v1/content-removals", json=body, headers=headers)
    assert again.status_code == 202 and again.json == first.json
    audit = client.get("/v1/audit", query_string={"account_id": "acc-1"},
                       headers=auth("admin")).json["events"]
    assert [e["action"] for e in audit].count("content_removal.requested") == 1
    # Without a key the retry is another request (nothing removed twice, as before).
    assert client.post("/v1/content-removals", json=body,
                       headers=auth("signals")).json["request_id"] != first.json["request_id"]
    other = {**body, "items": [item("post-3")]}
    assert_error(client.post("/v1/content-removals", json=other, headers=headers), 422,
                 "idempotency_key_reused")
    # No content id or account id in what the key keeps.
    assert not any(raw in redis_client.get(name) for name in idempotency_keys(redis_client)
                   for raw in ("post-1", "acc-1"))


# -- concurrent first attempts ----------------------------------------------------------------
def test_concurrent_sends_of_one_key_apply_once_and_answer_alike(app, redis_client):
    """A client that retries before its first attempt answered: the attempts race, one
    applies, every other one is answered with its result (the unit WATCHes the key)."""
    from concurrent.futures import ThreadPoolExecutor

    def send(_: int):
        return app.test_client().post(HOOKS, json=HOOK,
                                      headers={**auth("admin"), "Idempotency-Key": "race-1"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(8)))
    assert {r.status_code for r in responses} == {201}
    assert len({(r.json["webhook_id"], r.json["secret"]) for r in responses}) == 1
    assert len(webhooks(app.test_client())) == 1


def test_concurrent_sends_of_one_signal_batch_apply_once_and_answer_alike(config, clock):
    from concurrent.futures import ThreadPoolExecutor

    from tests.signals_helpers import minor_text, signals_app, text_signal

    app = signals_app(config, clock)
    batch = {"signals": [text_signal(minor_text(i)) for i in range(3)]}

    def send(_: int):
        return app.test_client().post("/v1/accounts/acc-race/signals", json=batch,
                                      headers={**auth("signals"), "Idempotency-Key": "race-2"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(send, range(8)))
    assert {r.status_code for r in responses} == {200}
    assert len({json.dumps(r.json, sort_keys=True) for r in responses}) == 1
    state = app.extensions["agegate"]
    assert state.accounts.accounts.state(state.redis, state.hasher.account("acc-race"))["n"] == 3
    cases = app.test_client().get("/v1/review/cases", headers=auth("reviewer")).json["cases"]
    assert responses[0].json["flagged"]  # its case step ran once, every answer names its case
    assert [c["case_id"] for c in cases] == [responses[0].json["case_id"]]


# -- platform age signals ---------------------------------------------------------------------
def test_a_retried_age_signal_is_stored_once_and_answered_as_the_first_time(client,
                                                                           redis_client):
    body = {"source": "google_play_age_signals", "observed_at": "2026-11-24T13:00:00Z",
            "age_lower": 13, "age_upper": 15, "method": "guardian_declared",
            "install_id": "inst-1"}
    headers = {**auth("signals"), "Idempotency-Key": "sig-1"}
    path = "/v1/accounts/acc-sig/age-signals"
    first = client.post(path, json=body, headers=headers)
    assert first.status_code == 200 and first.json["action"] == "case_opened"
    # An adult signal in between changes the account's age (a conflict), not the replay.
    adult = {**body, "age_lower": 18, "age_upper": None, "install_id": "inst-2"}
    assert client.post(path, json=adult, headers=auth("signals")).json["age"]["conflict"]
    again = client.post(path, json=body, headers=headers)
    assert again.status_code == 200 and again.json == first.json
    stored = client.get("/v1/accounts/acc-sig", headers=auth("reviewer")).json
    assert stored["age"]["conflict"] is True
    state = client.application.extensions["agegate"]
    assert len(state.age_signals.signals("acc-sig")) == 2  # the first once, the adult one
    assert_error(client.post(path, json={**body, "age_upper": 16}, headers=headers), 422,
                 "idempotency_key_reused")
    assert not any(raw in redis_client.get(name) for name in idempotency_keys(redis_client)
                   for raw in ("inst-1", "acc-sig", "sig-1"))
