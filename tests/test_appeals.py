"""Appeals through the HTTP API on a real Redis: who may appeal, the case and its due date,
uphold and overturn for restricted and terminated accounts, and bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agegate.storage import keys
from tests.conftest import auth
from tests.helpers import dump_keyspace, keys_without_ttl
from tests.signals_helpers import decide

STATEMENT = "I am 34. My nephew used my tablet for a week and the store thinks I am 15."


def restrict(client, account_id: str) -> None:
    """An under-18 platform signal restricts the account."""
    response = client.post(f"/v1/accounts/{account_id}/age-signals", headers=auth("signals"),
                           json={"source": "google_play_age_signals",
                                 "observed_at": "2026-11-24T13:00:00Z", "age_lower": 13,
                                 "age_upper": 15, "method": "guardian_declared"})
    assert response.json["action"] == "case_opened", response.json


def terminate(client, account_id: str) -> str:
    client.post(f"/v1/accounts/{account_id}/age-signals", headers=auth("signals"), json={
        "source": "self_declared", "observed_at": "2026-11-24T13:00:00Z", "age_lower": 18,
        "age_upper": None, "method": "self_declared"})
    response = client.post(f"/v1/accounts/{account_id}/termination", headers=auth("admin"),
                           json={"reason": "confirmed by ID"})
    assert response.status_code == 202, response.json
    return response.json["deletion_id"]


def appeal(client, account_id: str, statement: str = STATEMENT):
    return client.post(f"/v1/accounts/{account_id}/appeals", json={"statement": statement},
                       headers=auth("signals"))


def claim_case(client, case_id: str) -> dict:
    response = client.post(f"/v1/review/cases/{case_id}/claim", headers=auth("reviewer"))
    assert response.status_code == 200, response.json
    return response.json["case"]


def status(client, account_id: str) -> str:
    return client.get(f"/v1/accounts/{account_id}", headers=auth("reviewer")).json["status"]


def test_a_restricted_member_appeals_and_an_overturn_makes_the_account_active(client, clock):
    restrict(client, "acc-1")
    response = appeal(client, "acc-1")
    assert response.status_code == 202, response.json
    body = response.json
    assert body["due_at"] == "2026-12-01T13:30:00Z"  # AGEGATE_APPEAL_DUE_DAYS = 7
    case = client.get(f"/v1/review/cases/{body['case_id']}", headers=auth("reviewer")).json
    assert case["kind"] == "appeal" and case["statement"] == STATEMENT
    assert case["due_at"] == body["due_at"]
    # One open appeal at a time.
    assert appeal(client, "acc-1").status_code == 409
    assert client.get(f"/v1/appeals/{body['appeal_id']}", headers=auth("signals")).json == {
        "appeal_id": body["appeal_id"], "status": "open", "outcome": None,
        "due_at": body["due_at"]}
    claim_case(client, body["case_id"])
    assert decide(client, body["case_id"], "not_minor").status_code == 422  # not an appeal's
    decided = decide(client, body["case_id"], "overturn", note="Adult; shared tablet.")
    assert decided.status_code == 200, decided.json
    assert decided.json["decision"] == "overturn"
    assert status(client, "acc-1") == "active"
    assert client.get(f"/v1/appeals/{body['appeal_id']}", headers=auth("signals")).json[
        "outcome"] == "overturned"
    # Decided: a new appeal needs a new restriction.
    assert appeal(client, "acc-1").status_code == 409


def test_uphold_changes_nothing_and_a_second_appeal_may_follow(client):
    restrict(client, "acc-1")
    body = appeal(client, "acc-1").json
    claim_case(client, body["case_id"])
    assert decide(client, body["case_id"], "uphold").status_code == 200
    assert status(client, "acc-1") == "restricted"
    got = client.get(f"/v1/appeals/{body['appeal_id']}", headers=auth("signals")).json
    assert (got["status"], got["outcome"]) == ("decided", "upheld")
    assert appeal(client, "acc-1").status_code == 202


def test_overturning_a_termination_lifts_the_blocks_and_emits_reinstated(client, redis_client):
    # The account used a device in an age check, so termination blocks it too.
    check = client.post("/v1/age-checks", headers=auth("registration"), json={
        "date_of_birth": "1990-01-01", "country": "US", "account_id": "acc-1",
        "device_id": "dev-shared"})
    assert check.json["decision"] == "allow"
    deletion_id = terminate(client, "acc-1")
    blocked = client.post("/v1/age-checks", headers=auth("registration"), json={
        "date_of_birth": "1990-01-01", "country": "US", "device_id": "dev-shared"})
    assert blocked.json["reason"] == "identity_blocked"
    body = appeal(client, "acc-1").json
    case = claim_case(client, body["case_id"])
    assert case["ref"]["account_status"] == "terminated"
    assert decide(client, body["case_id"], "overturn", note="Wrong account.").status_code == 200
    allowed = client.post("/v1/age-checks", headers=auth("registration"), json={
        "date_of_birth": "1990-01-01", "country": "US", "device_id": "dev-shared",
        "account_id": "acc-1"})
    assert allowed.json["decision"] == "allow", allowed.json
    assert status(client, "acc-1") == "active"
    events = client.application.extensions["agegate"].events.read_all()
    reinstated = [e for e in events if e["type"] == "account.reinstated"]
    assert len(reinstated) == 1 and reinstated[0]["deletion_id"] == deletion_id
    # The deletion record, the proof of what was deleted, stays.
    record = client.get(f"/v1/deletions/{deletion_id}", headers=auth("admin"))
    assert record.status_code == 200 and record.json["account_id"] == "acc-1"
    assert keys_without_ttl(redis_client) == []


def test_only_restricted_or_terminated_accounts_may_appeal(client):
    client.post("/v1/accounts/acc-ok/age-signals", headers=auth("signals"), json={
        "source": "self_declared", "observed_at": "2026-11-24T13:00:00Z", "age_lower": 18,
        "age_upper": None, "method": "self_declared"})
    active = appeal(client, "acc-ok")
    assert active.status_code == 409 and active.json["error"]["code"] == "conflict"
    assert appeal(client, "acc-never").status_code == 404
    assert client.get("/v1/appeals/apl_nope", headers=auth("signals")).status_code == 404


@pytest.mark.parametrize(("statement", "status_code"), [
    ("x" * 2001, 422), ("", 422), ("x" * 2000, 202)])
def test_statement_length_and_nothing_stored_on_bad_input(client, redis_client, statement,
                                                          status_code):
    restrict(client, "acc-1")
    before = dump_keyspace(redis_client)
    response = appeal(client, "acc-1", statement)
    assert response.status_code == status_code, response.json
    if status_code == 422:
        assert response.json["error"]["fields"]["statement"]
        assert dump_keyspace(redis_client) == before
    extra = client.post("/v1/accounts/acc-1/appeals", headers=auth("signals"),
                        json={"statement": "hi", "mood": "sad"})
    assert extra.status_code == 422


def test_appeals_are_served_by_due_date_with_the_other_cases(client, clock):
    restrict(client, "acc-1")  # an age_signal case, opened now
    first = appeal(client, "acc-1").json
    clock.instant += timedelta(days=1)
    restrict(client, "acc-2")
    second = appeal(client, "acc-2").json
    listed = [c["case_id"] for c in client.get("/v1/review/cases?kind=appeal",
                                               headers=auth("reviewer")).json["cases"]]
    assert listed == [first["case_id"], second["case_id"]]


def test_the_statement_is_deleted_with_the_case_at_termination(client, redis_client):
    restrict(client, "acc-1")
    appeal(client, "acc-1")
    account_hash = client.application.extensions["agegate"].hasher.account("acc-1")
    assert redis_client.hlen(keys.appeal_statements(account_hash)) == 1
    client.post("/v1/accounts/acc-1/termination", headers=auth("admin"), json={"reason": "x"})
    assert not redis_client.exists(keys.appeal_statements(account_hash))
    assert STATEMENT not in str(dump_keyspace(redis_client))
