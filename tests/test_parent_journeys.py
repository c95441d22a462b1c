"""The whole parent journey per request type, through the HTTP API: submit, read the code from
the real SMTP server, verify, a reviewer decides the case, the parent reads the outcome."""

from __future__ import annotations

import pytest

from agegate.services.parent_requests import NO_ACTION
from tests.conftest import auth, make_config
from tests.parents_helpers import smtp_server  # noqa: F401
from tests.signals_helpers import signals_app

# The parent journeys write the request, its case and the child's account, often in different
# shards: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster

PARENT = "guardian@example.net"


@pytest.fixture
def mail(smtp_server):  # noqa: F811
    return smtp_server[1]


@pytest.fixture
def app(config, clock):
    """The app with the trained model, so signals are scored (and refused)."""
    return signals_app(config, clock)


@pytest.fixture
def config(redis_url, redis_client, tmp_path, smtp_server):  # noqa: F811
    return make_config(redis_url, tmp_path, smtp_url=smtp_server[0])


def start(client, mail, request_type, child):
    """Submit and verify a request; returns (request_id, status_token)."""
    created = client.post("/v1/parent-requests", json={
        "parent_name": "Sam", "parent_email": PARENT, "child": child,
        "request_type": request_type, "details": "Please act on my 13-year-old's account.",
        "attestation": True})
    assert created.status_code == 202
    body = created.get_json()
    verified = client.post(f"/v1/parent-requests/{body['request_id']}/verification",
                           json={"code": mail.code_for(PARENT)})
    assert verified.status_code == 200
    return body["request_id"], body["status_token"]


def case_for(client, request_id):
    """The open parent_request case that refers to this request."""
    cases = client.get("/v1/review/cases", query_string={"status": "open", "limit": 50},
                       headers=auth("reviewer")).get_json()["cases"]
    found = [c for c in cases if c["kind"] == "parent_request"
             and (c.get("ref") or {}).get("request_id") == request_id]
    assert len(found) == 1
    return found[0]


def decide(client, request_id, decision, note="done"):
    """Claim the request's case as reviewer-bot and decide it; returns the response."""
    case = case_for(client, request_id)
    claimed = client.post(f"/v1/review/cases/{case['case_id']}/claim", headers=auth("reviewer"))
    assert claimed.status_code == 200
    return client.post(f"/v1/review/cases/{case['case_id']}/decision", headers=auth("reviewer"),
                       json={"decision": decision, "note": note})


def status(client, request_id, token):
    response = client.get(f"/v1/parent-requests/{request_id}",
                          query_string={"status_token": token})
    assert response.status_code == 200
    return response.get_json()


def verify_age(client, account_id, outcome):
    """An age-assurance result for the account (restricted while a request waits for it)."""
    response = client.post(f"/v1/accounts/{account_id}/verification", headers=auth("reviewer"),
                           json={"outcome": outcome, "method": "id_document"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def age_check(client, email, account_id=None):
    body = {"date_of_birth": "1990-01-01", "country": "US", "email": email}
    if account_id:
        body["account_id"] = account_id
    return client.post("/v1/age-checks", json=body, headers=auth("registration")).get_json()


def test_case_carries_due_date_and_reference(client, mail):
    request_id, _ = start(client, mail, "access", {"account_id": "kid-1"})
    case = case_for(client, request_id)
    assert case["due_at"] == "2026-12-24T13:30:00Z"
    assert case["account_id"] == "kid-1"
    review = client.get(f"/v1/parent-requests/{request_id}/review", headers=auth("reviewer"))
    assert review.get_json()["details"] == "Please act on my 13-year-old's account."
    assert client.get(f"/v1/parent-requests/{request_id}/review").status_code == 401


def test_deletion_terminates_the_child_account(client, mail, redis_client):
    age_check(client, "kid@example.com", account_id="kid-1")  # links the child's email
    request_id, token = start(client, mail, "deletion", {"account_id": "kid-1"})
    assert decide(client, request_id, "fulfill").status_code == 200
    # Nothing established the child's minority: the account waits for age verification.
    assert status(client, request_id, token)["status"] == "awaiting_age_verification"
    verify_age(client, "kid-1", "minor")
    body = status(client, request_id, token)
    assert body["status"] == "fulfilled" and body["outcome"] == "account_deleted"
    deletions = client.get("/v1/deletions", headers=auth("admin")).get_json()["deletions"]
    assert [d["account_id"] for d in deletions] == ["kid-1"]
    types = {(e["type"], e["account_id"]) for _, e in redis_client.xrange("agegate:events")}
    assert ("account.deletion_requested", "kid-1") in types
    # Same path as a confirmed minor: the child's identifiers are now blocked.
    assert age_check(client, "kid@example.com")["reason"] == "identity_blocked"
    # The parent's text was needed only to decide.
    review = client.get(f"/v1/parent-requests/{request_id}/review", headers=auth("reviewer"))
    assert review.get_json()["details"] == ""


def test_access_produces_an_export_for_the_parent(client, mail):
    age_check(client, "kid@example.com", account_id="kid-1")
    request_id, token = start(client, mail, "access", {"account_id": "kid-1"})
    assert client.get(f"/v1/parent-requests/{request_id}/export",
                      query_string={"status_token": token}).status_code == 404
    assert decide(client, request_id, "fulfill").status_code == 200
    verify_age(client, "kid-1", "minor")
    assert status(client, request_id, token)["outcome"] == "export_ready"
    export = client.get(f"/v1/parent-requests/{request_id}/export",
                        query_string={"status_token": token})
    assert export.status_code == 200
    assert export.get_json()["account"]["account_id"] == "kid-1"
    assert "kid@example.com" not in export.get_data(as_text=True)
    assert client.get(f"/v1/parent-requests/{request_id}/export",
                      query_string={"status_token": "nope"}).status_code == 404


def test_rectification_is_recorded_with_the_note(client, mail):
    request_id, token = start(client, mail, "rectification", {"account_id": "kid-1"})
    response = decide(client, request_id, "fulfill", note="Corrected the birth year on file.")
    assert response.status_code == 200
    assert status(client, request_id, token)["outcome"] == "rectified"
    review = client.get(f"/v1/parent-requests/{request_id}/review", headers=auth("reviewer"))
    assert review.get_json()["note"] == "Corrected the birth year on file."


def test_objection_stops_processing(client, mail):
    # The objection acts on a child's account: an under-18 age signal established it.
    client.post("/v1/age-checks", headers=auth("registration"), json={
        "date_of_birth": "1990-01-01", "country": "US", "account_id": "kid-1"})
    signal = client.post("/v1/accounts/kid-1/age-signals", headers=auth("signals"), json={
        "source": "google_play_age_signals", "method": "self_declared",
        "observed_at": "2026-11-24T12:00:00Z", "age_lower": 13, "age_upper": 15})
    assert signal.status_code == 200, signal.get_json()
    request_id, token = start(client, mail, "objection", {"account_id": "kid-1"})
    assert decide(client, request_id, "fulfill").status_code == 200
    assert status(client, request_id, token)["outcome"] == "processing_stopped"
    response = client.post("/v1/accounts/kid-1/signals", headers=auth("signals"), json={
        "signals": [{"type": "session", "at": "2026-11-24T13:00:00Z", "duration_s": 60}]})
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "processing_stopped"


def test_reject(client, mail):
    request_id, token = start(client, mail, "deletion", {"account_id": "kid-1"})
    assert decide(client, request_id, "reject", note="Not the parent.").status_code == 200
    assert status(client, request_id, token) | {"due_at": None} == {
        "request_id": request_id, "status": "closed", "request_type": "deletion",
        "due_at": None, "outcome": "no_action", "reason": NO_ACTION[2]}
    review = client.get(f"/v1/parent-requests/{request_id}/review", headers=auth("reviewer"))
    assert review.get_json()["outcome"] == "rejected"
    deletions = client.get("/v1/deletions", headers=auth("admin")).get_json()["deletions"]
    assert deletions == []


def test_child_named_by_username_must_be_resolved_first(client, mail):
    age_check(client, "skater@example.com", account_id="kid-9")
    request_id, token = start(client, mail, "deletion", {"username": "SkaterKid"})
    case = case_for(client, request_id)
    assert case["account_id"] == f"unresolved:{request_id}"
    unresolved = decide(client, request_id, "fulfill")
    assert unresolved.status_code == 409
    assert unresolved.get_json()["error"]["code"] == "child_unresolved"
    wrong = client.post(f"/v1/parent-requests/{request_id}/child", headers=auth("reviewer"),
                        json={"account_id": "kid-9", "identifier": "someone_else"})
    assert wrong.status_code == 422
    right = client.post(f"/v1/parent-requests/{request_id}/child", headers=auth("reviewer"),
                        json={"account_id": "kid-9", "identifier": " skaterkid "})
    assert right.status_code == 200 and right.get_json()["child_account_id"] == "kid-9"
    done = client.post(f"/v1/review/cases/{case['case_id']}/decision",
                       headers=auth("reviewer"), json={"decision": "fulfill", "note": "ok"})
    assert done.status_code == 200
    verify_age(client, "kid-9", "minor")
    assert status(client, request_id, token)["outcome"] == "account_deleted"
    deletions = client.get("/v1/deletions", headers=auth("admin")).get_json()["deletions"]
    assert [d["account_id"] for d in deletions] == ["kid-9"]


def test_content_removal_opens_a_case(client):
    response = client.post("/v1/content-removals", headers=auth("signals"), json={
        "account_id": "acc-7", "region": "US-CA",
        "items": [{"content_id": "p1", "author_account_id": "acc-7"}]})
    assert response.status_code == 202
    cases = client.get("/v1/review/cases", query_string={"status": "open"},
                       headers=auth("reviewer")).get_json()["cases"]
    assert [(c["kind"], c["account_id"]) for c in cases] == [("content_removal", "acc-7")]
    again = client.post("/v1/content-removals", headers=auth("signals"), json={
        "account_id": "acc-7", "region": "US-CA",
        "items": [{"content_id": "p2", "author_account_id": "acc-7"}]})
    assert again.status_code == 202
    cases = client.get("/v1/review/cases", query_string={"status": "open"},
                       headers=auth("reviewer")).get_json()["cases"]
    assert len(cases) == 1  # one open case per account


def test_request_for_an_already_terminated_account_is_still_answered(client, mail):
    first = client.post("/v1/accounts/kid-1/termination", headers=auth("admin"),
                        json={"reason": "confirmed minor"}).get_json()
    request_id, token = start(client, mail, "deletion", {"account_id": "kid-1"})
    assert case_for(client, request_id)["account_id"] == f"unresolved:{request_id}"
    assert decide(client, request_id, "fulfill").status_code == 200
    assert status(client, request_id, token)["outcome"] == "account_deleted"
    deletions = client.get("/v1/deletions", headers=auth("admin")).get_json()["deletions"]
    assert [d["deletion_id"] for d in deletions] == [first["deletion_id"]]
