"""Platform age signals through the HTTP API on a real Redis: levels, the standing age and its
conflicts, the under-18 rule, expiry, revocations, bad input, and age_signal case decisions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agegate.clock import iso
from agegate.storage import keys
from agegate.storage.age_signals import MAX_ACCOUNTS_PER_INSTALL
from tests.conftest import auth
from tests.helpers import assert_nowhere, dump_keyspace, keys_without_ttl
from tests.signals_helpers import (
    claim,
    decide,
    flag,
    minor_text,
    post_signals,
    signals_app,
    text_signal,
)

OBSERVED = "2026-11-24T13:00:00Z"  # the test clock reads 2026-11-24T13:30Z


def signal(lower: int, upper: int | None, method: str = "self_declared",
           source: str = "apple_declared_age_range", **extra) -> dict:
    return {"source": source, "observed_at": OBSERVED, "age_lower": lower, "age_upper": upper,
            "method": method, **extra}


def post(client, account_id: str, body: dict):
    return client.post(f"/v1/accounts/{account_id}/age-signals", json=body,
                       headers=auth("signals"))


def account(client, account_id: str) -> dict:
    response = client.get(f"/v1/accounts/{account_id}", headers=auth("reviewer"))
    assert response.status_code == 200, response.json
    return response.json


def open_cases(client, kind: str = "age_signal") -> list[dict]:
    return client.get(f"/v1/review/cases?kind={kind}", headers=auth("reviewer")).json["cases"]


def test_an_adult_signal_sets_the_age_and_restricts_nothing(client):
    response = post(client, "acc-1", signal(18, None, "payment_checked",
                                            "google_play_age_signals"))
    assert response.status_code == 200, response.json
    assert response.json == {"account_id": "acc-1", "action": "none", "age": {
        "lower": 18, "upper": None, "assurance": "standard",
        "source": "google_play_age_signals", "observed_at": OBSERVED, "conflict": False}}
    body = account(client, "acc-1")
    assert body["status"] == "active" and body["age"]["assurance"] == "standard"
    assert open_cases(client) == []


@pytest.mark.parametrize(("method", "level"), [
    ("self_declared", "asserted"), ("guardian_declared", "asserted"),
    ("estimated", "standard"), ("payment_checked", "standard"),
    ("id_checked", "enhanced"), ("confirmed", "enhanced")])
def test_the_assurance_level_comes_from_the_method(client, method, level):
    assert post(client, "acc-1", signal(18, None, method)).json["age"]["assurance"] == level


def test_an_under_18_signal_restricts_at_once_and_opens_exactly_one_case(client, redis_client):
    first = post(client, "acc-kid", signal(13, 15, "guardian_declared",
                                           install_id="install-abc-123"))
    assert first.status_code == 200, first.json
    assert first.json["action"] == "case_opened"
    body = account(client, "acc-kid")
    assert body["status"] == "restricted"
    assert body["age"] == {"lower": 13, "upper": 15, "assurance": "asserted",
                           "source": "apple_declared_age_range", "observed_at": OBSERVED,
                           "conflict": False}
    cases = open_cases(client)
    assert len(cases) == 1 and cases[0]["account_id"] == "acc-kid"
    assert cases[0]["ref"]["source"] == "apple_declared_age_range"
    assert cases[0]["ref"]["range"] == "13-15"
    again = post(client, "acc-kid", signal(16, 17, "estimated", "google_play_age_signals"))
    assert again.json["action"] == "restricted"
    assert len(open_cases(client)) == 1
    events = [e["type"] for e in client.application.extensions["agegate"].events.read_all()]
    assert events.count("account.restricted") == 1
    # The install id is kept only as a keyed hash; every key has a TTL.
    assert_nowhere(redis_client, "install-abc-123")
    assert keys_without_ttl(redis_client) == []


def test_the_lowest_range_of_the_highest_level_stands_and_conflicts_show(client):
    post(client, "acc-1", signal(18, None, "self_declared"))
    under = post(client, "acc-1", signal(16, 17, "estimated", "google_play_age_signals"))
    # A standard under-18 signal outranks an asserted adult one, and is acted on.
    assert under.json["action"] == "case_opened"
    assert under.json["age"] == {"lower": 16, "upper": 17, "assurance": "standard",
                                 "source": "google_play_age_signals", "observed_at": OBSERVED,
                                 "conflict": True}
    verified = post(client, "acc-1", signal(18, None, "id_checked", "age_assurance_vendor"))
    assert verified.json["age"]["assurance"] == "enhanced"
    assert verified.json["age"]["lower"] == 18 and verified.json["age"]["conflict"] is True
    # A verified adult never silently lifts the restriction: a reviewer decides.
    assert account(client, "acc-1")["status"] == "restricted"
    # At one level, the lowest range stands; overlapping ranges are no conflict.
    post(client, "acc-2", signal(21, None, "estimated"))
    both = post(client, "acc-2", signal(18, 25, "payment_checked")).json["age"]
    assert (both["lower"], both["upper"], both["conflict"]) == (18, 25, False)


def test_signals_expire_after_the_configured_days(client, clock):
    post(client, "acc-1", signal(13, 15))
    assert account(client, "acc-1")["age"]["upper"] == 15
    clock.instant += timedelta(days=365)
    assert account(client, "acc-1")["age"] is None
    too_old = post(client, "acc-1", signal(18, None))
    assert too_old.status_code == 422
    assert "observed_at" in too_old.json["error"]["fields"]


@pytest.mark.parametrize(("body", "field"), [
    (signal(17, 15), "age_upper"),  # inverted
    (signal(200, None), "age_lower"),  # impossible
    (signal(-1, 5), "age_lower"),
    (signal(18, None, source="facebook"), "source"),
    (signal(18, None, method="vibes"), "method"),
    (signal(18, None, colour="blue"), "colour"),
    ({**signal(18, None), "observed_at": "2026-11-24T13:00:00"}, "observed_at"),
    ({**signal(18, None), "observed_at": "2026-11-25T13:00:00Z"}, "observed_at"),  # future
    ({**signal(18, None), "age_lower": "18"}, "age_lower"),
    (signal(18, None, parental_approval="maybe"), "parental_approval"),
])
def test_bad_signals_are_422_and_store_nothing(client, redis_client, body, field):
    post(client, "acc-1", signal(18, None))
    before = dump_keyspace(redis_client)
    response = post(client, "acc-1", body)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "validation_error"
    assert field in response.json["error"]["fields"]
    assert dump_keyspace(redis_client) == before


def test_revocations_restrict_matched_accounts_by_install_id(client, redis_client):
    post(client, "acc-a", signal(18, None, install_id="inst-a"))
    post(client, "acc-b", signal(18, None, install_id="inst-b"))
    post(client, "acc-g", signal(18, None, source="google_play_age_signals",
                                 install_id="inst-a"))  # another store's id space
    response = client.post("/v1/age-signals/revocations", headers=auth("signals"), json={
        "source": "apple_declared_age_range", "install_ids": ["inst-a", "never-seen"],
        "reason": "consent_revoked"})
    assert response.status_code == 200, response.json
    assert response.json == {"matched": 1}
    assert account(client, "acc-a")["status"] == "restricted"
    assert account(client, "acc-b")["status"] == "active"
    assert account(client, "acc-g")["status"] == "active"
    [case] = open_cases(client)
    assert case["account_id"] == "acc-a" and case["ref"]["reason"] == "consent_revoked"
    before = dump_keyspace(redis_client)
    too_many = client.post("/v1/age-signals/revocations", headers=auth("signals"), json={
        "source": "apple_declared_age_range", "install_ids": [f"i{n}" for n in range(1001)],
        "reason": "approval_revoked"})
    assert too_many.status_code == 422 and "install_ids" in too_many.json["error"]["fields"]
    bad_source = client.post("/v1/age-signals/revocations", headers=auth("signals"), json={
        "source": "os_age_signal", "install_ids": ["inst-a"], "reason": "consent_revoked"})
    assert bad_source.status_code == 422
    assert dump_keyspace(redis_client) == before


def test_only_the_signals_role_may_post(client):
    assert client.post("/v1/accounts/acc-1/age-signals", json=signal(18, None),
                       headers=auth("reviewer")).status_code == 403


def test_not_minor_clears_an_age_signal_case_and_lifts_its_restriction(client):
    post(client, "acc-1", signal(16, 17))
    case_id = claim(client, kind="age_signal").json["case"]["case_id"]
    assert decide(client, case_id, "fulfill").status_code == 422
    response = decide(client, case_id, "not_minor", note="Parent's card, adult account holder.")
    assert response.status_code == 200, response.json
    assert account(client, "acc-1")["status"] == "active"
    # A new under-18 signal is acted on again: a second case.
    assert post(client, "acc-1", signal(13, 15)).json["action"] == "case_opened"


def test_request_verification_keeps_the_restriction_until_an_adult_result(client):
    post(client, "acc-1", signal(16, 17))
    case_id = claim(client, kind="age_signal").json["case"]["case_id"]
    assert decide(client, case_id, "request_verification").status_code == 200
    assert account(client, "acc-1")["status"] == "restricted"
    assert post(client, "acc-1", signal(16, 17)).json["action"] == "restricted"
    assert open_cases(client) == []
    verified = client.post("/v1/accounts/acc-1/verification", headers=auth("reviewer"),
                           json={"outcome": "adult", "method": "id_document"})
    assert verified.status_code == 200, verified.json
    assert verified.json["status"] == "active"


def test_confirm_minor_terminates_and_deletes_the_signals(client, redis_client):
    post(client, "acc-1", signal(13, 15, install_id="inst-1"))
    case_id = claim(client, kind="age_signal").json["case"]["case_id"]
    response = decide(client, case_id, "confirm_minor", note="Google says 13-15; profile agrees.")
    assert response.status_code == 200, response.json
    assert account(client, "acc-1")["status"] == "terminated"
    assert account(client, "acc-1")["age"] is None
    account_hash = client.application.extensions["agegate"].hasher.account("acc-1")
    assert not redis_client.exists(keys.age_signals(account_hash))
    refused = post(client, "acc-1", signal(18, None))
    assert refused.status_code == 409 and refused.json["error"]["code"] == "account_terminated"
    # A revocation for a terminated account's install matches nothing.
    assert client.post("/v1/age-signals/revocations", headers=auth("signals"), json={
        "source": "apple_declared_age_range", "install_ids": ["inst-1"],
        "reason": "consent_revoked"}).json == {"matched": 0}


def test_minority_established_is_true_only_while_an_under_18_signal_lives(client, clock):
    service = client.application.extensions["agegate"].age_signals
    post(client, "acc-adult", signal(18, None, "id_checked"))
    post(client, "acc-kid", signal(13, 15))
    assert not service.minority_established("acc-adult")
    assert service.minority_established("acc-kid")
    assert not service.minority_established("acc-never")
    clock.instant += timedelta(days=366)
    assert not service.minority_established("acc-kid")


class TestWithTheModel:
    """The stated rule beside the real model's score."""

    @pytest.fixture
    def app(self, config, clock):
        return signals_app(config, clock)

    def test_an_enhanced_adult_is_shown_to_reviewers_and_never_hides_a_flag(self, client):
        post(client, "acc-1", signal(18, None, "id_checked", "age_assurance_vendor"))
        flagged = flag(client, "acc-1")
        assert flagged["case_id"] is not None
        names = [s["name"] for s in flagged["top_signals"]]
        assert names[0] == "age_signal:verified_adult"
        assert flagged["top_signals"][0]["weight"] == 0.0
        case = client.get(f"/v1/review/cases/{flagged['case_id']}", headers=auth("reviewer"))
        assert case.json["top_signals"][0]["name"] == "age_signal:verified_adult"
        # Without the verified adult, no such rule is shown.
        other = flag(client, "acc-2")
        assert "age_signal:verified_adult" not in [s["name"] for s in other["top_signals"]]

    def test_the_rule_lapses_with_the_signal_and_yields_to_a_lower_enhanced_one(self, client,
                                                                                clock):
        post(client, "acc-1", signal(18, None, "id_checked", "age_assurance_vendor"))
        assert flag(client, "acc-1")["top_signals"][0]["name"] == "age_signal:verified_adult"
        clock.instant += timedelta(days=365)
        later = post_signals(client, "acc-1", [text_signal(minor_text(0), at=iso(clock.now()))])
        assert "age_signal:verified_adult" not in [s["name"] for s in later.json["top_signals"]]
        # An enhanced under-18 signal stands over an enhanced adult one: no rule is shown.
        post(client, "acc-2", signal(18, None, "confirmed"))
        post(client, "acc-2", signal(16, 17, "id_checked"))
        assert "age_signal:verified_adult" not in [
            s["name"] for s in flag(client, "acc-2")["top_signals"]]


def test_one_install_id_indexes_a_bounded_number_of_accounts(client, clock):
    for n in range(MAX_ACCOUNTS_PER_INSTALL + 2):
        clock.instant += timedelta(seconds=1)
        post(client, f"acc-{n}", signal(18, None, install_id="family-tablet"))
    response = client.post("/v1/age-signals/revocations", headers=auth("signals"), json={
        "source": "apple_declared_age_range", "install_ids": ["family-tablet"],
        "reason": "consent_revoked"})
    # The most recent accounts on that install are the ones restricted.
    assert response.json == {"matched": MAX_ACCOUNTS_PER_INSTALL}
    assert account(client, "acc-0")["status"] == "active"
    assert account(client, f"acc-{MAX_ACCOUNTS_PER_INSTALL + 1}")["status"] == "restricted"
