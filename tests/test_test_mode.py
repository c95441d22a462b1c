"""Test mode (API.md "Test mode"): a test token's requests live in a keyspace of their own that
expires within 24 hours and never reaches live accounts, cases, events, webhooks, metrics or model
feedback; every response to it says `"test": true`. One test per guarantee, on a real Redis."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client import REGISTRY

from agegate import create_app
from agegate.storage import keys, keyspace
from agegate.worker import Worker
from tests.conftest import API_KEYS, TEST_KEYS, TEST_TOKENS, auth, sandbox
from tests.console_helpers import csrf_from, sign_in
from tests.helpers import audit_verify
from tests.webhook_receiver import receiver  # noqa: F401

# Storage across accounts and shards: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster

TEST_PREFIX = "agegate-test:"
DAY = 86_400


@pytest.fixture
def app(config, clock):
    # Webhooks go to receivers on loopback, allowed on purpose (no public address in tests).
    return create_app(config.with_overrides(api_keys=API_KEYS + TEST_KEYS,
                                            webhook_allow_http=True,
                                            webhook_allowed_networks=("127.0.0.0/8",)),
                      clock=clock)


def every_key(redis_client) -> list[str]:
    return sorted(redis_client.scan_iter(count=1000))


def in_test_keyspace(key: str, state) -> bool:
    """A key of test mode: under its prefix, or its events stream (and the relay's memory)."""
    stream = state.config.events_stream + ":test"
    return key.startswith(TEST_PREFIX) or key in (stream, keys.events_relayed(stream))


def age_check(client, headers, **body) -> dict:
    response = client.post("/v1/age-checks", headers=headers,
                           json={"date_of_birth": "2000-01-01", "country": "US", **body})
    assert response.status_code == 200, response.json
    return response.json


def terminate(client, headers, account_id: str) -> dict:
    response = client.post(f"/v1/accounts/{account_id}/termination", headers=headers,
                           json={"reason": "test"})
    assert response.status_code == 202, response.json
    return response.json


def drive_everything(client, account_id: str = "acc-sandbox") -> None:
    """What an integrator does with test tokens: age checks (one under age: retry blocks), a
    link to an account, its termination (events, a deletion record, identity blocks), an ack,
    a webhook, an audit read."""
    age_check(client, sandbox("registration"), date_of_birth="2015-01-01",
              device_id="dev-kid", email="kid@example.com", session_id="s-1")
    age_check(client, sandbox("registration"), account_id=account_id, device_id="dev-1")
    response = client.post("/v1/admin/webhooks", headers=sandbox("admin"),
                           json={"url": "https://127.0.0.1:9/sandbox",
                                 "events": ["account.terminated"]})
    assert response.status_code == 201, response.json
    deletion = terminate(client, sandbox("admin"), account_id)
    response = client.post(f"/v1/deletions/{deletion['deletion_id']}/acks",
                           headers=sandbox("downstream"), json={"system": "chat"})
    assert response.status_code == 200, response.json
    assert client.get("/v1/audit", headers=sandbox("admin")).status_code == 200


def test_config_reads_the_fourth_field():
    from agegate.config import parse_api_keys

    [live, test] = parse_api_keys("signup:registration:aaaaaaaaaaaaaaaa,"
                                  "sandbox:registration:bbbbbbbbbbbbbbbb:test")
    assert (live.name, live.test) == ("signup", False)
    assert (test.name, test.role, test.token, test.test) == (
        "sandbox", "registration", "bbbbbbbbbbbbbbbb", True)


@pytest.mark.parametrize("raw", ["sandbox:registration:bbbbbbbbbbbbbbbb:live",
                                 "sandbox:registration:bbbbbbbbbbbbbbbb:",
                                 "sandbox:registration:bbbbbbbbbbbbbbbb:test:test"])
def test_a_bad_fourth_field_refuses_to_boot(raw):
    from agegate.config import ConfigError, parse_api_keys

    with pytest.raises(ConfigError, match="AGEGATE_API_KEYS entry 1"):
        parse_api_keys(raw)


def test_a_test_tokens_writes_live_only_in_the_test_keyspace_and_expire_within_a_day(
        app, client, redis_client):
    drive_everything(client)
    found = every_key(redis_client)
    state = app.extensions["agegate"]
    assert any(key.startswith(TEST_PREFIX + "acct:") for key in found)
    assert any(key.startswith(TEST_PREFIX + "deletion:") for key in found)
    assert any(key.startswith(TEST_PREFIX + "block:") for key in found)
    assert any(key.startswith(TEST_PREFIX + "retry:") for key in found)
    assert any(key.startswith(TEST_PREFIX + "audit:") for key in found)
    assert any(key.startswith(TEST_PREFIX + "webhook:") for key in found)
    assert state.config.events_stream + ":test" in found
    assert [key for key in found if not in_test_keyspace(key, state)] == []
    ttls = {key: redis_client.ttl(key) for key in found}
    assert {key: ttl for key, ttl in ttls.items() if not 0 < ttl <= DAY} == {}


def test_the_retention_table_is_capped_at_a_day_in_the_test_keyspace_only(app):
    retention = app.extensions["agegate"].retention
    assert retention.seconds("audit") == 6 * 365 * DAY
    with keyspace.using(keyspace.TEST):
        assert retention.seconds("audit") == DAY
        assert retention.seconds("unit_marker") == 60
        assert retention.delta("deletion").total_seconds() == DAY


def test_a_live_token_never_sees_a_test_account(client):
    age_check(client, sandbox("registration"), account_id="acc-1", device_id="dev-1")
    terminate(client, sandbox("admin"), "acc-1")
    mine = client.get("/v1/accounts/acc-1", headers=sandbox("reviewer"))
    assert mine.status_code == 200 and mine.json["status"] == "terminated"
    assert client.get("/v1/accounts/acc-1", headers=auth("reviewer")).status_code == 404
    # ... and the test token never sees the live account of the same id.
    terminate(client, auth("admin"), "acc-2")
    assert client.get("/v1/accounts/acc-2", headers=auth("reviewer")).status_code == 200
    assert client.get("/v1/accounts/acc-2", headers=sandbox("reviewer")).status_code == 404


def test_identifiers_blocked_in_test_mode_are_not_blocked_live(client):
    kid = {"device_id": "dev-kid", "email": "kid@example.com"}
    assert age_check(client, sandbox("registration"), date_of_birth="2015-01-01",
                     **kid)["reason"] == "under_minimum_age"
    assert age_check(client, sandbox("registration"), **kid)["reason"] == \
        "previous_underage_attempt"
    assert age_check(client, auth("registration"), **kid)["decision"] == "allow"


def test_test_events_reach_neither_the_live_stream_nor_live_webhooks(
        app, client, redis_client, receiver):  # noqa: F811
    receiver.refuse_first = False
    state = app.extensions["agegate"]
    live = client.post("/v1/admin/webhooks", headers=auth("admin"),
                       json={"url": receiver.url, "events": ["account.terminated"]}).json
    test = client.post("/v1/admin/webhooks", headers=sandbox("admin"),
                       json={"url": receiver.url, "events": ["account.terminated"]}).json
    receiver.secrets.extend([live["secret"], test["secret"]])
    # Each token sees only the webhooks of its own keyspace.
    [listed] = client.get("/v1/admin/webhooks", headers=sandbox("admin")).json["webhooks"]
    assert listed["webhook_id"] == test["webhook_id"]

    terminate(client, sandbox("admin"), "acc-test")
    assert state.events.read_all() == []  # the live stream: nothing
    with keyspace.using(keyspace.TEST):
        assert [e["type"] for e in state.events.read_all()] == [
            "account.terminated", "account.deletion_requested"]
    worker = Worker(state.worker_jobs, "w-test")
    while worker.run_round():
        pass
    [delivered] = receiver.requests
    assert delivered.verified_with == [test["secret"]]
    assert json.loads(delivered.body)["account_id"] == "acc-test"

    terminate(client, auth("admin"), "acc-live")
    while worker.run_round():
        pass
    assert [r.verified_with for r in receiver.requests] == [[test["secret"]], [live["secret"]]]
    assert client.get(f"/v1/admin/webhooks/{live['webhook_id']}/deliveries",
                      headers=auth("admin")).json["deliveries"][0]["status"] == "delivered"


def test_the_worker_drains_the_test_keyspaces_outbox(app, redis_client):
    """A step a crash left in a test outbox is applied by `agegate worker`, into test mode's
    stream (never the live one)."""
    state = app.extensions["agegate"]
    with keyspace.using(keyspace.TEST):
        stream = state.events.stream
        redis_client.xadd(keys.outbox(3), {"op": "event", "data": json.dumps({
            "stream": stream, "fields": {"type": "account.terminated", "account_id": "a"},
            "min_id": 0, "ttl": DAY})})
    assert Worker(state.worker_jobs, "w-test").run_round() >= 1
    assert redis_client.xlen(keys.outbox(3)) == 0
    with keyspace.using(keyspace.TEST):
        assert redis_client.xlen(keys.outbox(3)) == 0
        assert [e["account_id"] for e in state.events.read_all()] == ["a"]
    assert state.events.read_all() == []


def test_every_response_to_a_test_token_says_test_and_no_live_one_does(client):
    assert age_check(client, sandbox("registration"))["test"] is True
    assert "test" not in age_check(client, auth("registration"))
    refused = client.get("/v1/audit", headers=sandbox("registration"))
    assert refused.status_code == 403 and refused.json["test"] is True
    assert refused.json["error"]["code"] == "forbidden"
    invalid = client.post("/v1/age-checks", headers=sandbox("registration"), json={})
    assert invalid.status_code == 422 and invalid.json["test"] is True
    missing = client.get("/v1/accounts/nobody", headers=sandbox("reviewer"))
    assert missing.status_code == 404 and missing.json["test"] is True
    listed = client.get("/v1/admin/webhooks", headers=sandbox("admin"))
    assert listed.json == {"webhooks": [], "test": True}
    assert "test" not in client.get("/v1/accounts/nobody", headers=auth("reviewer")).json


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_test_tokens_mistyped_path_or_method_is_answered_as_a_test(client):
    """Routing answers a path no route has (404) or a method the route lacks (405) before any
    route's roles are known; the token still chose test mode, so the answer says so and counts
    only in the test counter. A live token's, or no token's, stays an ordinary one."""
    unmatched = {"endpoint": "unmatched", "status": "404"}
    live_before = _sample("agegate_http_requests_total", unmatched)
    test_before = _sample("agegate_test_requests_total", unmatched)
    missing = client.get("/v1/no-such-route", headers=sandbox("admin"))
    assert missing.status_code == 404 and missing.json["test"] is True
    assert missing.json["error"]["code"] == "not_found"
    wrong_method = client.get("/v1/age-checks", headers=sandbox("registration"))
    assert wrong_method.status_code == 405 and wrong_method.json["test"] is True
    assert _sample("agegate_test_requests_total", unmatched) == test_before + 1
    assert _sample("agegate_http_requests_total", unmatched) == live_before
    assert "test" not in client.get("/v1/no-such-route", headers=auth("admin")).json
    assert "test" not in client.get("/v1/no-such-route").json
    assert "test" not in client.get("/v1/no-such-route", headers={
        "Authorization": "Bearer not-a-token"}).json


def test_a_test_tokens_requests_count_only_in_the_test_requests_counter(client):
    endpoint = {"endpoint": "age_checks.create_age_check", "status": "200"}
    deny = {"decision": "deny", "reason": "under_minimum_age"}
    before = (_sample("agegate_http_requests_total", endpoint),
              _sample("agegate_age_checks_total", deny),
              _sample("agegate_test_requests_total", endpoint))
    age_check(client, sandbox("registration"), date_of_birth="2015-01-01")
    after = (_sample("agegate_http_requests_total", endpoint),
             _sample("agegate_age_checks_total", deny),
             _sample("agegate_test_requests_total", endpoint))
    assert after == (before[0], before[1], before[2] + 1)
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'agegate_test_requests_total\{endpoint="age_checks.create_age_check",'
                     r'status="200"\} [1-9]', text)
    age_check(client, auth("registration"), date_of_birth="2015-01-01")
    assert _sample("agegate_http_requests_total", endpoint) == before[0] + 1
    assert _sample("agegate_test_requests_total", endpoint) == before[2] + 1


def test_the_test_keyspace_keeps_no_model_feedback(app, redis_client):
    feedback = app.extensions["agegate"].feedback
    example = {"x": [0.5, 0.25], "model": "m", "text_model": "t"}
    with keyspace.using(keyspace.TEST):
        feedback.record(example, "minor")
        assert feedback.summary()["examples"] == {"minor": 0, "adult": 0}
    assert every_key(redis_client) == []
    feedback.record(example, "minor")  # the live keyspace does keep one
    assert feedback.summary()["examples"] == {"minor": 1, "adult": 0}


def test_live_and_test_audit_chains_stay_apart_and_both_verify(client, monkeypatch,
                                                              redis_url):
    for i in range(3):  # interleaved, on one process's chain writer
        age_check(client, auth("registration"), account_id=f"acc-{i}")
        age_check(client, sandbox("registration"), account_id=f"acc-{i}")
    live = client.get("/v1/audit", headers=auth("admin")).json["events"]
    test = client.get("/v1/audit", headers=sandbox("admin")).json["events"]
    assert len(live) == len(test) == 3
    assert {e["chain"] for e in live}.isdisjoint({e["chain"] for e in test})
    assert {e["actor"] for e in test} == {"registration-sandbox"}
    result = audit_verify(monkeypatch, redis_url)
    assert result.exit_code == 0, result.output


def test_a_test_token_cannot_sign_in_to_the_console(client):
    """The console shows live cases; a test token is refused like an unknown one."""
    page = client.get("/console/login").get_data(as_text=True)
    response = client.post("/console/login", data={"token": TEST_TOKENS["reviewer"],
                                                   "csrf_token": csrf_from(page), "next": ""})
    assert response.status_code == 401
    assert client.get("/console/queue").status_code in (302, 303)  # not signed in
    assert sign_in(client, "reviewer").status_code == 303


# -- forced outcomes -------------------------------------------------------------------------
@pytest.mark.parametrize(("email", "born", "decision", "reason"), [
    ("someone@allow.test", "2015-01-01", "allow", "of_age"),
    ("Someone@Deny.Test ", "1990-01-01", "deny", "under_minimum_age"),
])
def test_a_test_email_forces_the_age_checks_decision(client, email, born, decision, reason):
    forced = age_check(client, sandbox("registration"), email=email, date_of_birth=born)
    assert (forced["decision"], forced["reason"], forced["test"]) == (decision, reason, True)
    # The same values from a live token: an ordinary check, decided by the date.
    ordinary = age_check(client, auth("registration"), email=email, date_of_birth=born)
    assert ordinary["decision"] != decision and "test" not in ordinary


def test_a_forced_deny_blocks_retries_like_a_real_one(client):
    age_check(client, sandbox("registration"), email="kid@deny.test", device_id="dev-9")
    again = age_check(client, sandbox("registration"), email="other@example.com",
                      device_id="dev-9")
    assert (again["decision"], again["reason"]) == ("deny", "previous_underage_attempt")


def test_a_verify_test_email_asks_for_assurance_where_a_declared_age_suffices(client):
    forced = age_check(client, sandbox("registration"), email="x@verify.test", account_id="a")
    assert (forced["decision"], forced["reason"]) == ("verify", "assurance_required")
    assert forced["methods"]
    ordinary = age_check(client, auth("registration"), email="x@verify.test", account_id="a")
    assert (ordinary["decision"], ordinary["reason"]) == ("allow", "of_age")


def assurance_result(client, headers, account_id: str, evidence_id: str, **extra):
    body = {"method": "photo_id_matching", "provider": "Acme Age", "evidence_id": evidence_id,
            "outcome": "over_threshold", "observed_at": "2026-11-24T13:00:00Z",
            "jurisdiction": "GB", **extra}
    response = client.post(f"/v1/accounts/{account_id}/assurance-results", json=body,
                           headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_test_under_is_an_under_18_finding_in_the_test_keyspace_only(client):
    age_check(client, sandbox("registration"), country="GB", account_id="acc-u")
    forced = assurance_result(client, sandbox("signals"), "acc-u", "test-under",
                              outcome="inconclusive")
    assert (forced["highly_effective"], forced["action"], forced["test"]) == (
        True, "case_opened", True)
    assert client.get("/v1/accounts/acc-u", headers=sandbox("reviewer")).json["status"] == \
        "restricted"
    [case] = client.get("/v1/review/cases?status=open",
                        headers=sandbox("reviewer")).json["cases"]
    assert (case["account_id"], case["kind"]) == ("acc-u", "age_signal")
    assert client.get("/v1/review/cases?status=open", headers=auth("reviewer")).json == \
        {"cases": []}
    # A live token's result with the same evidence id is judged as sent.
    age_check(client, auth("registration"), country="GB", account_id="acc-u")
    live = assurance_result(client, auth("signals"), "acc-u", "test-under",
                            outcome="inconclusive")
    assert (live["action"], "test" in live) == ("none", False)
    assert client.get("/v1/accounts/acc-u", headers=auth("reviewer")).json["status"] == \
        "pending_assurance"


def test_the_assurance_export_of_each_keyspace_holds_only_its_own_records(client):
    assurance_result(client, sandbox("signals"), "acc-t", "test-over")
    assurance_result(client, auth("signals"), "acc-l", "vendor-ref-1")
    query = "/v1/admin/assurance/export?from=2026-11-24&to=2026-11-24"
    for headers, evidence in ((sandbox("admin"), ["test-over"]),
                              (auth("admin"), ["vendor-ref-1"])):
        # Streamed (NDJSON): the keyspace must hold until the last line is read.
        with client.get(query, headers=headers) as response:
            lines = response.text.splitlines()
        assert [json.loads(line)["evidence_id"] for line in lines] == evidence


def signals(client, headers, account_id: str, *texts: str):
    return client.post(f"/v1/accounts/{account_id}/signals", headers=headers, json={"signals": [
        {"type": "message", "at": "2026-11-24T13:00:00Z", "text": text} for text in texts]})


@pytest.fixture
def model_loaded(app):
    if app.extensions["agegate"].model is None:
        pytest.skip("no trained model in model/")


def test_a_minor_marker_scores_099_flagged_with_a_case(client, model_loaded):
    response = signals(client, sandbox("signals"), "acc-1", "hello AGEGATE_TEST_MINOR there")
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["score"], body["flagged"], body["band"], body["test"]) == (0.99, True, "high",
                                                                           True)
    assert body["case_id"] is not None
    case = client.get(f"/v1/review/cases/{body['case_id']}", headers=sandbox("reviewer")).json
    assert case["account_id"] == "acc-1" and case["kind"] == "classifier"
    # No live case, no live account.
    assert client.get("/v1/review/cases?status=open", headers=auth("reviewer")).json == \
        {"cases": []}
    assert client.get("/v1/accounts/acc-1", headers=auth("reviewer")).status_code == 404


def test_an_adult_marker_scores_001_and_the_next_ordinary_signal_scores_as_usual(
        client, model_loaded):
    body = signals(client, sandbox("signals"), "acc-2", "AGEGATE_TEST_ADULT").json
    assert (body["score"], body["flagged"], body["case_id"]) == (0.01, False, None)
    ordinary = signals(client, sandbox("signals"), "acc-2", "see you at work tomorrow").json
    assert ordinary["score"] not in (0.01, 0.99)


def test_a_live_token_with_a_marker_is_scored_by_the_model(client, model_loaded):
    live = signals(client, auth("signals"), "acc-3", "hello AGEGATE_TEST_MINOR there").json
    assert live["score"] != 0.99 and "test" not in live
    assert not any(s["name"].startswith("test:") for s in live["top_signals"])


def test_a_test_reviewers_verdict_leaves_no_model_feedback(client, redis_client,
                                                           model_loaded):
    case_id = signals(client, sandbox("signals"), "acc-4", "AGEGATE_TEST_MINOR").json["case_id"]
    claimed = client.post("/v1/review/claims", headers=sandbox("reviewer"))
    assert claimed.status_code == 200 and claimed.json["case"]["case_id"] == case_id
    decided = client.post(f"/v1/review/cases/{case_id}/decision", headers=sandbox("reviewer"),
                          json={"decision": "not_minor"})
    assert decided.status_code == 200, decided.json
    assert [k for k in every_key(redis_client) if ":feedback:" in k] == []
    assert client.get("/v1/admin/model", headers=auth("admin")).json["examples"] == \
        {"minor": 0, "adult": 0}


def test_the_openapi_document_describes_the_test_field(client):
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    for name in ("AgeCheckResponse", "Score", "Account", "Error", "WebhookList"):
        assert schemas[name]["properties"]["test"]["type"] == "boolean", name
        assert "test" not in schemas[name].get("required", []), name
    assert "test" not in schemas["AgeCheckRequest"]["properties"]  # never an input


def test_a_test_admin_sees_test_modes_signal_stream_not_the_live_one(app, client,
                                                                     redis_client):
    state = app.extensions["agegate"]
    redis_client.xadd(state.config.signals_stream, {"account_id": "a", "signals": "[]"})
    live = client.get("/v1/admin/ingest", headers=auth("admin")).json
    test = client.get("/v1/admin/ingest", headers=sandbox("admin")).json
    assert (live["stream"], live["length"]) == (state.config.signals_stream, 1)
    assert (test["stream"], test["length"], test["test"]) == (
        state.config.signals_stream + ":test", 0, True)


def test_webhooks_of_test_mode_survive_their_stream_expiring(app, client, redis_client,
                                                            receiver):  # noqa: F811
    """A day without test traffic expires test mode's events stream with its consumer group;
    the worker starts it again instead of failing every round (and slowing the live jobs)."""
    receiver.refuse_first = False
    state = app.extensions["agegate"]
    hook = client.post("/v1/admin/webhooks", headers=sandbox("admin"),
                       json={"url": receiver.url, "events": ["account.terminated"]}).json
    receiver.secrets.append(hook["secret"])
    worker = Worker(state.worker_jobs, "w-test")
    worker.run_round()
    redis_client.delete(state.config.events_stream + ":test")  # what its TTL does
    assert worker.run_round() == 0  # no error: the round went through every job
    terminate(client, sandbox("admin"), "acc-later")
    while worker.run_round():
        pass
    assert [json.loads(r.body)["account_id"] for r in receiver.requests] == ["acc-later"]


def test_a_test_tokens_unreplicated_write_counts_in_no_live_metric(config, clock):
    """AGEGATE_REDIS_MIN_REPLICAS with no replica: every write is a 503; a test token's is
    counted in agegate_test_requests_total only, not in the live WAIT timeouts."""
    app = create_app(config.with_overrides(api_keys=API_KEYS + TEST_KEYS, redis_min_replicas=1,
                                           redis_wait_ms=50, load_model=False), clock=clock)
    client = app.test_client()
    timeouts = {}
    body = {"date_of_birth": "2000-01-01", "country": "US"}
    before = _sample("agegate_redis_wait_timeouts_total", timeouts)
    response = client.post("/v1/age-checks", headers=sandbox("registration"), json=body)
    assert response.status_code == 503 and response.json["test"] is True
    assert _sample("agegate_redis_wait_timeouts_total", timeouts) == before
    response = client.post("/v1/age-checks", headers=auth("registration"), json=body)
    assert response.status_code == 503 and "test" not in response.json
    assert _sample("agegate_redis_wait_timeouts_total", timeouts) == before + 1
