"""Step-up age assurance (issue 22) through the HTTP API on a real Redis: the age check's
`verify`, pending_assurance, judging results, their effects on the account and its age evidence,
the records (nothing identifying; kept after termination), the export, and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from agegate import create_app
from agegate.storage import keys
from tests.conftest import auth, make_config
from tests.helpers import audit_verify, dump_keyspace, keys_without_ttl

# Records live in their account's shard, the export fans out over every shard: also run on a
# real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster

OBSERVED = "2026-11-24T13:00:00Z"  # the test clock reads 2026-11-24T13:30Z
ADULT_DOB = "1990-01-01"
RECORD_FIELDS = {"assurance_id", "method", "category", "provider", "evidence_id", "outcome",
                 "threshold_age", "challenge_age", "liveness_checked", "highly_effective", "why",
                 "jurisdiction", "policy_version", "observed_at", "recorded_at", "action"}


def age_check(client, account_id: str | None = "acc-1", country: str = "GB",
              born: str = ADULT_DOB, **extra):
    body = {"date_of_birth": born, "country": country, **extra}
    if account_id:
        body["account_id"] = account_id
    response = client.post("/v1/age-checks", json=body, headers=auth("registration"))
    assert response.status_code == 200, response.json
    return response.json


def result(method: str = "photo_id_matching", outcome: str = "over_threshold", **extra) -> dict:
    body = {"method": method, "provider": "Acme Age", "evidence_id": "ev-123",
            "outcome": outcome, "observed_at": OBSERVED}
    if method in ("facial_age_estimation", "email_age_estimation"):
        body.update(challenge_age=25, liveness_checked=True)
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def post(client, account_id: str, body: dict, role: str = "signals"):
    return client.post(f"/v1/accounts/{account_id}/assurance-results", json=body,
                       headers=auth(role))


def account(client, account_id: str) -> dict:
    response = client.get(f"/v1/accounts/{account_id}", headers=auth("reviewer"))
    assert response.status_code == 200, response.json
    return response.json


def records(client, account_id: str, role: str = "reviewer"):
    return client.get(f"/v1/accounts/{account_id}/assurance", headers=auth(role))


def age_cases(client) -> list[dict]:
    return client.get("/v1/review/cases?kind=age_signal", headers=auth("reviewer")).json["cases"]


# -- the age check -------------------------------------------------------------------------------
def test_a_declared_adult_in_gb_is_asked_to_verify_and_the_account_waits(client):
    body = age_check(client, "acc-1", "GB")
    assert body["decision"] == "verify" and body["reason"] == "assurance_required"
    assert body["message"] == "Please confirm your age to continue."
    assert body["check_id"]
    assert body["methods"] == ["digital_identity", "photo_id_matching", "facial_age_estimation",
                               "open_banking", "mobile_network_operator", "credit_card",
                               "email_age_estimation"]
    assert account(client, "acc-1")["status"] == "pending_assurance"


@pytest.mark.parametrize(("country", "estimation"), [("AU", True), ("FR", False), ("DE", False)])
def test_australia_and_eu_member_states_ask_too_with_their_own_methods(client, country,
                                                                        estimation):
    body = age_check(client, None, country)
    assert body["decision"] == "verify"
    assert ("facial_age_estimation" in body["methods"]) is estimation
    assert "self_declaration" not in body["methods"]


def test_a_declared_minor_in_gb_is_denied_as_before_with_the_retry_blocks(client):
    minor = age_check(client, "acc-kid", "GB", born="2010-01-01", device_id="dev-kid")
    assert (minor["decision"], minor["reason"]) == ("deny", "under_minimum_age")
    assert "methods" not in minor
    again = age_check(client, "acc-kid", "GB", born=ADULT_DOB, device_id="dev-kid")
    assert (again["decision"], again["reason"]) == ("deny", "previous_underage_attempt")


def test_a_declared_adult_in_the_us_is_still_allowed(client):
    body = age_check(client, "acc-us", "US", region="CA")
    assert (body["decision"], body["reason"]) == ("allow", "of_age")
    assert "methods" not in body


# -- judging a result ----------------------------------------------------------------------------
def test_a_verification_admits_the_pending_account_as_an_enhanced_adult(client):
    age_check(client, "acc-1", "GB")
    response = post(client, "acc-1", result("photo_id_matching"))
    assert response.status_code == 200, response.json
    body = response.json
    assert body["highly_effective"] is True and body["action"] == "admitted"
    assert body["account_id"] == "acc-1" and body["assurance_id"].startswith("asr_")
    assert "GB" in body["why"] and "photo_id_matching" in body["why"]
    after = account(client, "acc-1")
    assert after["status"] == "active"
    # One account age: the result is age evidence beside the platform's age signals.
    assert after["age"] == {"lower": 18, "upper": None, "assurance": "enhanced",
                           "source": "age_assurance_vendor", "observed_at": OBSERVED,
                           "conflict": False}
    [record] = records(client, "acc-1").json["records"]
    assert set(record) == RECORD_FIELDS
    assert record["jurisdiction"] == "GB"  # taken from the age check that asked
    assert record["category"] == "verification" and record["action"] == "admitted"
    policy = client.get("/v1/jurisdictions/GB", headers=auth("registration")).json
    assert record["policy_version"] == policy["policy_version"]


def test_an_estimation_with_challenge_age_and_liveness_admits_at_standard_level(client):
    age_check(client, "acc-1", "GB")
    body = post(client, "acc-1", result("facial_age_estimation")).json
    assert (body["highly_effective"], body["action"]) == (True, "admitted")
    assert account(client, "acc-1")["age"]["assurance"] == "standard"


@pytest.mark.parametrize(("jurisdiction", "method", "extra", "why"), [
    ("GB", "facial_age_estimation", {"challenge_age": 21}, "challenge_age 21 is below GB's 25"),
    ("GB", "facial_age_estimation", {"liveness_checked": False}, "no liveness check"),
    ("GB", "email_age_estimation", {"liveness_checked": None}, "no liveness check"),
    ("GB", "facial_age_estimation", {"challenge_age": None}, "no challenge_age"),
    ("FR", "facial_age_estimation", {}, "facial_age_estimation is not an accepted method in FR"),
    ("GB", "self_declaration", {}, "self-declaration never is"),
    ("US", "photo_id_matching", {}, "US accepts no assurance method"),
    ("GB", "credit_card", {"threshold_age": 16}, "threshold_age 16 is below the minimum age"),
])
def test_a_result_that_falls_short_says_why_and_the_account_keeps_waiting(
        client, jurisdiction, method, extra, why):
    age_check(client, "acc-1", "GB")
    response = post(client, "acc-1", result(method, jurisdiction=jurisdiction, **extra))
    assert response.status_code == 200, response.json
    body = response.json
    assert body["highly_effective"] is False and body["action"] == "none"
    assert why in body["why"]
    after = account(client, "acc-1")
    assert after["status"] == "pending_assurance" and after["age"] is None


def test_a_verification_finding_under_18_restricts_at_once_and_opens_one_case(client):
    age_check(client, "acc-1", "GB")
    first = post(client, "acc-1", result("open_banking", "under_threshold")).json
    assert first["action"] == "case_opened"
    after = account(client, "acc-1")
    assert after["status"] == "restricted"  # not terminated: a reviewer confirms
    assert after["age"]["upper"] == 17 and after["age"]["assurance"] == "enhanced"
    second = post(client, "acc-1", result("credit_card", "under_threshold")).json
    assert second["action"] == "restricted"
    [case] = age_cases(client)
    assert case["account_id"] == "acc-1"
    assert case["ref"]["reason"] == "under_threshold_verification"


def test_an_estimation_under_threshold_only_sends_the_person_to_a_verification(client):
    age_check(client, "acc-1", "GB")
    body = post(client, "acc-1", result("facial_age_estimation", "under_threshold")).json
    assert body["action"] == "none"
    after = account(client, "acc-1")
    assert after["status"] == "pending_assurance" and after["age"] is None
    assert age_cases(client) == []


def test_an_inconclusive_result_is_recorded_and_changes_nothing(client):
    age_check(client, "acc-1", "GB")
    assert post(client, "acc-1", result(outcome="inconclusive")).json["action"] == "none"
    assert account(client, "acc-1")["status"] == "pending_assurance"
    assert records(client, "acc-1").json["records"][0]["outcome"] == "inconclusive"


def test_an_under_18_signal_is_not_outweighed_the_conflict_is_shown(client):
    signal = {"source": "apple_declared_age_range", "observed_at": OBSERVED, "age_lower": 13,
              "age_upper": 15, "method": "self_declared"}
    assert client.post("/v1/accounts/acc-1/age-signals", json=signal,
                       headers=auth("signals")).json["action"] == "case_opened"
    body = post(client, "acc-1", result("digital_identity", jurisdiction="GB")).json
    assert body["highly_effective"] is True and body["action"] == "none"
    after = account(client, "acc-1")
    assert after["status"] == "restricted"
    assert after["age"]["conflict"] is True and after["age"]["assurance"] == "enhanced"
    assert len(age_cases(client)) == 1


def test_an_admitted_account_is_not_sent_back_to_wait_by_a_later_check(client):
    age_check(client, "acc-1", "GB")
    post(client, "acc-1", result("digital_identity"))
    assert age_check(client, "acc-1", "GB")["decision"] == "verify"
    assert account(client, "acc-1")["status"] == "active"


def test_a_terminated_account_is_409_and_nothing_is_recorded(client):
    age_check(client, "acc-1", "GB")
    assert client.post("/v1/accounts/acc-1/termination", json={"reason": "test"},
                       headers=auth("admin")).status_code == 202
    response = post(client, "acc-1", result())
    assert response.status_code == 409
    assert response.json["error"]["code"] == "account_terminated"
    assert records(client, "acc-1").json["records"] == []


# -- the service function the digital-credentials check calls --------------------------------
def test_the_recording_function_admits_with_a_wallet_result_and_takes_sessions_only(app,
                                                                                    client):
    state = app.extensions["agegate"]
    age_check(client, "acc-1", "FR")
    now = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)
    with app.app_context():
        body = state.assurance.record("acc-1", method="digital_identity",
                                      provider="agegate_digital_credentials",
                                      evidence_id="creq_1", outcome="over_threshold",
                                      observed_at=now, actor="signup-page")
        alone = state.assurance.record(None, method="digital_identity",
                                       provider="agegate_digital_credentials",
                                       evidence_id="creq_2", outcome="over_threshold",
                                       observed_at=now, actor="signup-page")
    assert (body["highly_effective"], body["action"]) == (True, "admitted")
    assert "FR" in body["why"]
    assert account(client, "acc-1")["status"] == "active"
    assert alone["account_id"] is None and alone["action"] == "none"
    assert alone["highly_effective"] is True
    lines = export(client, "2026-11-24", "2026-11-24").text.splitlines()
    assert sorted(json.loads(line)["evidence_id"] for line in lines) == ["creq_1", "creq_2"]
    assert [json.loads(line)["account_ref"] for line in lines].count(None) == 1


# -- what is kept, for how long, and what termination leaves ---------------------------------
def test_records_hold_nothing_that_identifies_the_person_and_every_key_has_a_ttl(
        client, app, redis_client):
    age_check(client, "acc-secret-id", "GB", email="someone@example.com", device_id="dev-9")
    post(client, "acc-secret-id", result("facial_age_estimation"))
    stored = {k: v for k, v in dump_keyspace(redis_client).items()
              if k.startswith("agegate:assurance:")}
    assert stored
    for key, value in stored.items():
        for needle in ("acc-secret-id", "someone", "dev-9", "1990"):
            assert needle not in key and needle not in value, (needle, key)
    assert keys_without_ttl(redis_client) == []
    [record_id] = [k for k in stored if ":asr_" in k]
    ttl = redis_client.ttl(record_id)
    assert 729 * 86_400 < ttl <= 730 * 86_400


def test_retention_is_configurable(redis_url, redis_client, tmp_path, clock):
    app = create_app(make_config(redis_url, tmp_path, load_model=False,
                                 assurance_retention_days=100), clock=clock)
    client = app.test_client()
    post(client, "acc-1", result(jurisdiction="GB"))
    [key] = [k for k in redis_client.scan_iter("agegate:assurance:*") if ":asr_" in k]
    assert 99 * 86_400 < redis_client.ttl(key) <= 100 * 86_400


def test_termination_deletes_everything_else_but_keeps_the_records(client, app, redis_client):
    age_check(client, "acc-1", "GB", device_id="dev-1")
    post(client, "acc-1", result("open_banking", "under_threshold"))
    deletion_id = client.post("/v1/accounts/acc-1/termination", json={"reason": "test"},
                              headers=auth("admin")).json["deletion_id"]
    hasher = app.extensions["agegate"].hasher
    ah = hasher.short("account", "acc-1")
    body = records(client, "acc-1").json
    assert body["status"] == "terminated"
    [record] = body["records"]
    assert record["outcome"] == "under_threshold"
    kept = {key for key in redis_client.scan_iter(f"*{ah}*")}
    assert kept == {keys.account_deletion(ah), keys.audit_index(ah),
                    keys.terminated_identifiers(ah), keys.account_assurance(ah),
                    keys.identity_block("account", ah)}
    assert redis_client.exists(keys.deletion(deletion_id))
    assert keys_without_ttl(redis_client) == []


def test_every_write_is_audited_in_its_unit_of_work(client, monkeypatch, redis_url):
    age_check(client, "acc-1", "GB")
    post(client, "acc-1", result())
    entries = client.get("/v1/audit?account_id=acc-1", headers=auth("admin")).json["events"]
    actions = [e["action"] for e in entries]
    for action in ("age_check", "assurance_recorded", "account_admitted", "age_signal_recorded"):
        assert action in actions
    recorded = next(e for e in entries if e["action"] == "assurance_recorded")
    assert recorded["details"]["highly_effective"] is True
    assert audit_verify(monkeypatch, redis_url).exit_code == 0


# -- reading and exporting -------------------------------------------------------------------
def test_only_reviewers_read_records_and_an_unknown_account_is_404(client):
    assert records(client, "acc-none").status_code == 404
    post(client, "acc-1", result(jurisdiction="GB"))
    assert records(client, "acc-1", role="signals").status_code == 403
    assert records(client, "acc-1", role="admin").status_code == 200
    assert post(client, "acc-1", result(), role="reviewer").status_code == 403


def export(client, start: str, end: str, jurisdiction: str | None = None, role: str = "admin"):
    query = f"from={start}&to={end}" + (f"&jurisdiction={jurisdiction}" if jurisdiction else "")
    return client.get(f"/v1/admin/assurance/export?{query}", headers=auth(role))


def test_the_export_is_ndjson_keyed_by_account_ref_filtered_by_place_and_day(client, clock):
    post(client, "acc-gb", result(jurisdiction="GB"))
    post(client, "acc-fr", result("digital_identity", jurisdiction="FR"))
    clock.instant += timedelta(days=2)
    post(client, "acc-au", result("digital_identity", jurisdiction="AU",
                                  observed_at="2026-11-26T13:00:00Z"))
    response = export(client, "2026-11-24", "2026-11-26")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) == 3
    for line in lines:
        assert set(line) == RECORD_FIELDS | {"account_ref"}
        assert line["account_ref"] and "acc-" not in json.dumps(line)
    assert [x["jurisdiction"] for x in
            map(json.loads, export(client, "2026-11-24", "2026-11-26", "eu").text.splitlines())
            ] == ["FR"]
    assert len(export(client, "2026-11-24", "2026-11-24").text.splitlines()) == 2
    assert export(client, "2026-11-25", "2026-11-25").text == ""
    assert export(client, "2026-11-24", "2026-11-26", role="reviewer").status_code == 403


@pytest.mark.parametrize(("start", "end"), [("9999-12-30", "9999-12-31"),
                                             ("0001-01-01", "0001-01-02")])
def test_an_export_at_the_calendars_ends_is_empty_not_a_500(client, start, end):
    """The day after `to` ends the range; the calendar has none after 9999-12-31."""
    post(client, "acc-gb", result(jurisdiction="GB"))
    response = export(client, start, end)
    assert response.status_code == 200, response.text
    assert response.text == ""


@pytest.mark.parametrize(("query", "field"), [
    ("from=2026-11-30&to=2026-11-01", "to"),
    ("from=2026-02-30&to=2026-11-01", "from"),
    ("to=2026-11-01", "from"),
    ("from=2020-01-01&to=2026-11-01", "to"),
    ("from=2026-11-01&to=2026-11-02&jurisdiction=XX", "jurisdiction"),
])
def test_a_bad_export_query_is_422(client, query, field):
    response = client.get(f"/v1/admin/assurance/export?{query}", headers=auth("admin"))
    assert response.status_code == 422, response.data
    assert field in response.json["error"]["fields"]


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "field"), [
    ({"method": "palm_reading"}, "method"),
    ({"outcome": "maybe"}, "outcome"),
    ({"challenge_age": 25}, "challenge_age"),  # on a verification method
    ({"observed_at": "2026-11-25T13:00:00Z"}, "observed_at"),  # tomorrow
    ({"observed_at": "2024-01-01T00:00:00Z"}, "observed_at"),  # expired
    ({"observed_at": "2026-11-24T13:00:00"}, "observed_at"),  # no offset
    ({"threshold_age": "18"}, "threshold_age"),
    ({"threshold_age": 40}, "threshold_age"),
    ({"jurisdiction": "XX"}, "jurisdiction"),
    ({"jurisdiction": "Great Britain"}, "jurisdiction"),
    ({"liveness_checked": "yes"}, "liveness_checked"),
    ({"liveness_checked": 1}, "liveness_checked"),  # JSON's true/false only, as documented
    ({"liveness_checked": 0}, "liveness_checked"),
    ({"evidence_id": None}, "evidence_id"),
    ({"provider": ""}, "provider"),
    ({"document_number": "123456789"}, "document_number"),
])
def test_bad_input_is_422_in_the_contract_shape_and_nothing_is_stored(client, redis_client,
                                                                       change, field):
    age_check(client, "acc-1", "GB")
    body = {**result(jurisdiction="GB"), **change}
    body = {k: v for k, v in body.items() if v is not None}
    before = dump_keyspace(redis_client)
    response = post(client, "acc-1", body)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["fields"]
    assert "123456789" not in json.dumps(response.json)
    assert {k for k in dump_keyspace(redis_client) if not k.startswith("agegate:uow:")} == \
        {k for k in before if not k.startswith("agegate:uow:")}


def test_a_bad_account_id_is_422(client):
    response = post(client, "acc%20with%20space", result(jurisdiction="GB"))
    assert response.status_code == 422


# -- test mode's forced outcomes on the routes of this feature ---------------------------------
def test_a_test_token_forces_verify_and_a_highly_effective_result_apart_from_live_data(
        redis_url, redis_client, tmp_path, clock):
    from tests.conftest import API_KEYS, TEST_KEYS, sandbox

    app = create_app(make_config(redis_url, tmp_path, load_model=False,
                                 api_keys=API_KEYS + TEST_KEYS), clock=clock)
    client = app.test_client()
    forced = client.post("/v1/age-checks", headers=sandbox("registration"), json={
        "date_of_birth": ADULT_DOB, "country": "US", "account_id": "acc-t",
        "email": "x@verify.test"}).json
    assert (forced["decision"], forced["test"]) == ("verify", True)
    assert forced["methods"]  # the whole list where the place itself asks for none
    over = client.post("/v1/accounts/acc-t/assurance-results", headers=sandbox("signals"),
                       json=result("facial_age_estimation", "under_threshold",
                                   evidence_id="test-over", challenge_age=18,
                                   jurisdiction="GB")).json
    assert (over["highly_effective"], over["action"]) == (True, "admitted")
    # A live token's result with the same evidence id is judged as usual.
    live = post(client, "acc-live", result("facial_age_estimation", "under_threshold",
                                           evidence_id="test-over", challenge_age=18,
                                           jurisdiction="GB")).json
    assert live["highly_effective"] is False and live["action"] == "none"
    assert not [k for k in redis_client.scan_iter("agegate:*") if "acc-t" in k]
    assert records(client, "acc-t").status_code == 404  # nothing in the live keyspace


# -- the console ---------------------------------------------------------------------------------
def test_reviewers_see_the_accounts_assurance_records_on_its_case_page(client):
    from tests.console_helpers import sign_in

    age_check(client, "acc-1", "GB")
    post(client, "acc-1", result("facial_age_estimation", challenge_age=21))
    post(client, "acc-1", result("photo_id_matching", "under_threshold",
                                 evidence_id="vendor-ref-77"))
    [case] = age_cases(client)
    assert sign_in(client, "reviewer").status_code == 303
    page = client.get(f"/console/cases/{case['case_id']}").get_data(as_text=True)
    assert 'id="assurance-records"' in page
    assert "photo id matching (verification)" in page and "vendor-ref-77" in page
    assert "challenge_age 21 is below GB&#39;s 25" in page
    assert page.count("<tr class=\"row-minor\">") >= 1


def test_the_openapi_document_describes_every_new_route_and_field(client):
    spec = client.get("/openapi.json").get_json()
    paths = spec["paths"]
    assert "post" in paths["/v1/accounts/{account_id}/assurance-results"]
    assert "get" in paths["/v1/accounts/{account_id}/assurance"]
    export_op = paths["/v1/admin/assurance/export"]["get"]
    assert "application/x-ndjson" in export_op["responses"]["200"]["content"]
    assert {p["name"] for p in export_op["parameters"]} >= {"from", "to", "jurisdiction"}
    schemas = spec["components"]["schemas"]
    check = schemas["AgeCheckResponse"]["properties"]
    assert "verify" in check["decision"]["enum"] and "methods" in check
    assert "assurance_required" in check["reason"]["enum"]
    assert "pending_assurance" in schemas["Account"]["properties"]["status"]["enum"]
    assert {"assurance", "policy_version"} <= set(schemas["Jurisdiction"]["properties"])


def test_the_accounts_export_for_a_parents_access_request_holds_its_records(app, client):
    post(client, "acc-1", result(jurisdiction="GB"))
    export = app.extensions["agegate"].accounts.export("acc-1")
    [record] = export["assurance"]
    assert record["method"] == "photo_id_matching" and "account_ref" not in record


def test_a_reviewers_not_minor_sends_a_pending_account_back_to_wait_not_in(client):
    age_check(client, "acc-1", "GB")
    post(client, "acc-1", result("open_banking", "under_threshold"))
    [case] = age_cases(client)
    claimed = client.post(f"/v1/review/cases/{case['case_id']}/claim", headers=auth("reviewer"))
    assert claimed.status_code == 200, claimed.json
    decided = client.post(f"/v1/review/cases/{case['case_id']}/decision",
                          json={"decision": "not_minor"}, headers=auth("reviewer"))
    assert decided.status_code == 200, decided.json
    # Not a minor is not a proven adult: only an assurance result admits the account.
    assert account(client, "acc-1")["status"] == "pending_assurance"
    assert post(client, "acc-1", result("digital_identity")).json["action"] == "admitted"


def test_an_overturned_restriction_sends_a_pending_account_back_to_wait(client):
    age_check(client, "acc-1", "GB")
    post(client, "acc-1", result("credit_card", "under_threshold"))
    appeal = client.post("/v1/accounts/acc-1/appeals", json={"statement": "I am 30."},
                         headers=auth("signals"))
    assert appeal.status_code == 202, appeal.json
    case_id = appeal.json["case_id"]
    assert client.post(f"/v1/review/cases/{case_id}/claim",
                       headers=auth("reviewer")).status_code == 200
    decided = client.post(f"/v1/review/cases/{case_id}/decision",
                          json={"decision": "overturn"}, headers=auth("reviewer"))
    assert decided.status_code == 200, decided.json
    assert account(client, "acc-1")["status"] == "pending_assurance"
