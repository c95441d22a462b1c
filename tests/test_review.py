"""The review queue through the HTTP API: order, leased claims, every decision path."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from agegate.services.review import KIND_HEAD_START_HOURS, SCORE_HEAD_START_HOURS
from agegate.storage import keys
from tests.conftest import auth
from tests.signals_helpers import (
    LEASE_SECONDS,
    adult_text,
    claim,
    decide,
    flag,
    post_minor_messages,
    post_signals,
    signals_app,
    text_signal,
)

# Storage across accounts and shards: also run on a real 3-primary Redis Cluster.
pytestmark = pytest.mark.cluster


@pytest.fixture
def app(config, clock):
    """The app with the trained model."""
    return signals_app(config, clock)


def services(app):
    return app.extensions["agegate"]


def test_open_cases_are_listed_highest_priority_first(client, app, clock):
    review = services(app).review
    low = flag(client, "acc-low")
    clock.instant += timedelta(minutes=5)
    high = post_minor_messages(client, "acc-high", 4)  # more minor posts: a higher real score
    # A report on an account whose messages read as an adult's: a low score.
    report = post_signals(client, "acc-rep", [text_signal(adult_text(i)) for i in range(3)] + [
        {"type": "report", "at": "2026-11-24T12:00:00Z", "reason": "suspected_minor"}]).json
    assert high["flagged"] and high["score"] > low["score"], (high, low)
    # The report's kind head start does not make up for its score gap to the flagged cases.
    assert report["case_id"] and report["score"] < low["score"]
    assert (SCORE_HEAD_START_HOURS * (low["score"] - report["score"])
            > KIND_HEAD_START_HOURS["report"])
    parent = review.open_or_raise("acc-kid", "parent_request", actor="parents-bot",
                                  due_at=clock.now() + timedelta(days=3),
                                  ref={"request_id": "pr_1"})
    later_parent = review.open_or_raise("acc-kid", "parent_request", actor="parents-bot",
                                        due_at=clock.now() + timedelta(days=20))
    listed = client.get("/v1/review/cases?status=open", headers=auth("reviewer")).json["cases"]
    # Parent requests by due date, then score before kind (a low-score report waits behind
    # classifier cases flagged with high scores), higher score first even if opened later.
    assert [c["case_id"] for c in listed] == [
        parent["case_id"], later_parent["case_id"], high["case_id"], low["case_id"],
        report["case_id"]]
    assert listed[0]["ref"] == {"request_id": "pr_1"}
    only = client.get("/v1/review/cases?kind=parent_request&limit=1",
                      headers=auth("reviewer")).json["cases"]
    assert [c["case_id"] for c in only] == [parent["case_id"]]
    assert client.get("/v1/review/cases?status=bogus",
                      headers=auth("reviewer")).status_code == 422


def test_claims_take_the_top_case_then_204_when_empty(client):
    case_id = flag(client, "acc-1")["case_id"]
    response = claim(client)
    assert response.status_code == 200
    body = response.json
    assert body["case"]["case_id"] == case_id
    assert body["case"]["status"] == "claimed"
    assert body["case"]["claimed_by"] == "reviewer-bot"
    assert body["lease_expires_at"] == "2026-11-24T13:31:00Z"
    assert claim(client, "reviewer2").status_code == 204
    claimed = client.get("/v1/review/cases?status=claimed", headers=auth("reviewer")).json
    assert [c["case_id"] for c in claimed["cases"]] == [case_id]


def test_twenty_concurrent_reviewers_never_get_the_same_case(app, client):
    for n in range(30):
        flag(client, f"acc-{n}")
    got: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def reviewer() -> None:
        try:
            with app.test_client() as c:
                while True:
                    response = claim(c)
                    if response.status_code == 204:
                        return
                    with lock:
                        got.append(response.json["case"]["case_id"])
        except BaseException as error:  # noqa: BLE001 - surface in the main thread
            errors.append(error)

    threads = [threading.Thread(target=reviewer) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(got) == 30 and len(set(got)) == 30


def test_an_expired_lease_returns_the_case_to_the_queue(client, clock):
    case_id = flag(client, "acc-1")["case_id"]
    assert claim(client).json["case"]["case_id"] == case_id
    clock.instant += timedelta(seconds=LEASE_SECONDS - 1)
    assert claim(client, "reviewer2").status_code == 204
    clock.instant += timedelta(seconds=1)
    listed = client.get("/v1/review/cases", headers=auth("reviewer")).json["cases"]
    assert [c["case_id"] for c in listed] == [case_id]
    again = claim(client, "reviewer2")
    assert again.json["case"]["case_id"] == case_id
    assert again.json["case"]["claimed_by"] == "reviewer-bob"
    assert [h["event"] for h in again.json["case"]["history"]][-3:] == [
        "claimed", "lease_expired", "claimed"]
    # The first reviewer's claim is gone: only bob may decide.
    late = decide(client, case_id, "not_minor")
    assert late.status_code == 409
    assert decide(client, case_id, "not_minor", "reviewer2").status_code == 200


def test_a_lapsed_lease_cannot_decide_even_before_anyone_reclaims(client, clock):
    case_id = flag(client, "acc-1")["case_id"]
    claim(client)
    clock.instant += timedelta(seconds=LEASE_SECONDS)
    assert decide(client, case_id, "not_minor").status_code == 409


def test_decision_conflicts_and_not_found(client):
    case_id = flag(client, "acc-1")["case_id"]
    assert decide(client, case_id, "not_minor").status_code == 409  # not claimed
    claim(client)
    other = decide(client, case_id, "not_minor", "reviewer2")
    assert other.status_code == 409 and other.json["error"]["code"] == "conflict"
    wrong = decide(client, case_id, "fulfill")
    assert wrong.status_code == 422 and "decision" in wrong.json["error"]["fields"]
    assert decide(client, case_id, "maybe").status_code == 422
    assert decide(client, case_id, "not_minor", note="adult voice on call").status_code == 200
    assert decide(client, case_id, "not_minor").status_code == 409  # already decided
    assert decide(client, "case_nope", "not_minor").status_code == 404
    assert client.get("/v1/review/cases/case_nope", headers=auth("reviewer")).status_code == 404


def test_not_minor_clears_and_a_new_flag_opens_a_new_case(client):
    case_id = flag(client, "acc-1")["case_id"]
    claim(client)
    decided = decide(client, case_id, "not_minor").json
    assert decided["status"] == "decided" and decided["decision"] == "not_minor"
    assert client.get("/v1/accounts/acc-1", headers=auth("reviewer")).json["status"] == "active"
    listed = client.get("/v1/review/cases?status=decided", headers=auth("reviewer")).json
    assert [c["case_id"] for c in listed["cases"]] == [case_id]
    # Still flagged at the same score, the account gets a fresh case for the next review.
    same = post_signals(client, "acc-1", [{"type": "session", "at": "2026-11-24T13:00:00Z",
                                           "duration_s": 60}]).json
    assert same["flagged"] is True and same["case_id"] not in (None, case_id)
    again = post_signals(client, "acc-1", [{"type": "session", "at": "2026-11-24T13:00:00Z",
                                            "duration_s": 60}]).json
    assert again["case_id"] == same["case_id"]
    assert len(client.get("/v1/review/cases", headers=auth("reviewer")).json["cases"]) == 1


def test_request_verification_restricts_until_adult_result(client, app):
    case_id = flag(client, "acc-1")["case_id"]
    body = {"outcome": "adult", "method": "id_document"}
    early = client.post("/v1/accounts/acc-1/verification", json=body, headers=auth("admin"))
    assert early.status_code == 409
    claim(client)
    assert decide(client, case_id, "request_verification").status_code == 200
    account = client.get("/v1/accounts/acc-1", headers=auth("reviewer")).json
    assert account["status"] == "restricted" and account["case_id"] == case_id
    # More signals while restricted do not open a second case.
    assert flag(client, "acc-1")["case_id"] == case_id
    # Another reviewer does not hold this account's case.
    other = client.post("/v1/accounts/acc-1/verification", json=body, headers=auth("reviewer2"))
    assert other.status_code == 403 and other.json["error"]["code"] == "forbidden"
    done = client.post("/v1/accounts/acc-1/verification", json=body, headers=auth("reviewer"))
    assert done.status_code == 200 and done.json["status"] == "active"
    assert done.json["case_id"] is None
    events = [e["type"] for e in services(app).events.read_all()]
    assert "account.restricted" in events and "account.unrestricted" in events
    again = client.post("/v1/accounts/acc-1/verification", json=body, headers=auth("admin"))
    assert again.status_code == 409
    assert client.post("/v1/accounts/ghost/verification", json=body,
                       headers=auth("reviewer")).status_code == 404


def test_verification_is_for_the_reviewer_holding_the_case_or_an_admin(client):
    case_id = flag(client, "acc-1")["case_id"]
    body = {"outcome": "adult", "method": "id_document"}
    url = "/v1/accounts/acc-1/verification"
    # An open case nobody claimed: no reviewer holds it.
    assert client.post(url, json=body, headers=auth("reviewer")).status_code == 403
    claim(client)  # reviewer-bot claims it
    assert client.post(url, json=body, headers=auth("reviewer2")).status_code == 403
    decide(client, case_id, "request_verification")
    assert client.post(url, json=body, headers=auth("reviewer2")).status_code == 403
    assert client.post(url, json=body, headers=auth("admin")).status_code == 200


def test_request_verification_then_minor_terminates(client, app, redis_client, clock):
    case_id = flag(client, "acc-1")["case_id"]
    claim(client)
    decide(client, case_id, "request_verification")
    body = {"outcome": "minor", "method": "face_estimate", "date_of_birth": "2011-03-02"}
    response = client.post("/v1/accounts/acc-1/verification", json=body,
                           headers=auth("reviewer"))
    assert response.status_code == 200
    assert response.json["status"] == "terminated" and response.json["deletion_id"]
    assert "2011" not in response.get_data(as_text=True)
    ah = services(app).hasher.short("account", "acc-1")
    ttl = redis_client.ttl(keys.identity_block("account", ah))
    # Until the 18th birthday (2029-03-02), not the default year.
    until_18 = (datetime(2029, 3, 2, tzinfo=UTC) - clock.now()).total_seconds()
    assert abs(ttl - until_18) < 5
    audit = client.get("/v1/audit?account_id=acc-1", headers=auth("admin")).json["events"]
    terminated = [e for e in audit if e["action"] == "account_terminated"]
    assert terminated[0]["details"]["verification"] == "minor"
    assert "2011" not in str(audit)
    adult_dob = dict(body, date_of_birth="1990-01-01")
    assert client.post("/v1/accounts/acc-1/verification", json=adult_dob,
                       headers=auth("reviewer")).status_code == 422


def test_confirm_minor_terminates_and_refuses_further_signals(client, app):
    case_id = flag(client, "acc-1")["case_id"]
    claim(client)
    decided = decide(client, case_id, "confirm_minor")
    assert decided.status_code == 200
    deletion_id = decided.json["deletion_id"]
    deletion = client.get(f"/v1/deletions/{deletion_id}", headers=auth("admin")).json
    assert deletion["account_id"] == "acc-1" and deletion["status"] == "pending"
    account = client.get("/v1/accounts/acc-1", headers=auth("reviewer")).json
    assert account["status"] == "terminated"
    refused = post_signals(client, "acc-1", [text_signal("hello")])
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "account_terminated"
    actions = [e["action"] for e in client.get(
        "/v1/audit?account_id=acc-1", headers=auth("admin")).json["events"]]
    assert actions[:2] == ["account_terminated", "case_decided"]


def test_parent_request_cases_use_the_registered_decider(client, app):
    review = services(app).review
    calls = []
    review.register_decider("parent_request", {"fulfill", "reject"},
                            lambda case, decision, note, actor: calls.append(
                                (case["case_id"], decision, actor)))
    first = review.open_or_raise("acc-kid", "parent_request", actor="parents-bot")
    second = review.open_or_raise("acc-kid", "parent_request", actor="parents-bot")
    assert first["case_id"] != second["case_id"]
    claimed = claim(client, kind="parent_request").json["case"]
    assert decide(client, claimed["case_id"], "confirm_minor").status_code == 422
    assert calls == []
    response = decide(client, claimed["case_id"], "fulfill")
    assert response.status_code == 200 and response.json["decision"] == "fulfill"
    assert calls == [(claimed["case_id"], "fulfill", "reviewer-bot")]


def test_console_claims_a_specific_case(client):
    first = flag(client, "acc-1")["case_id"]
    second = flag(client, "acc-2")["case_id"]
    response = client.post(f"/v1/review/cases/{second}/claim", headers=auth("reviewer"))
    assert response.status_code == 200 and response.json["case"]["case_id"] == second
    again = client.post(f"/v1/review/cases/{second}/claim", headers=auth("reviewer2"))
    assert again.status_code == 409
    assert client.post("/v1/review/cases/case_x/claim",
                       headers=auth("reviewer")).status_code == 404
    assert claim(client, "reviewer2").json["case"]["case_id"] == first


def test_review_routes_need_the_reviewer_role(client):
    for method, path in (("get", "/v1/review/cases"), ("post", "/v1/review/claims"),
                         ("get", "/v1/review/cases/x")):
        assert getattr(client, method)(path).status_code == 401
        assert getattr(client, method)(path, headers=auth("signals")).status_code == 403
        assert getattr(client, method)(path, headers=auth("downstream")).status_code == 403
    assert claim(client, "admin").status_code == 204  # admin may do what a reviewer may


def test_minor_verification_on_an_unrestricted_account_is_409(client):
    flag(client, "acc-1")
    body = {"outcome": "minor", "method": "card"}
    response = client.post("/v1/accounts/acc-1/verification", json=body, headers=auth("admin"))
    assert response.status_code == 409
    assert client.get("/v1/accounts/acc-1", headers=auth("reviewer")).json["status"] == "active"
    bad = client.post("/v1/accounts/acc-1/verification", json={"outcome": "teen", "method": "card"},
                      headers=auth("reviewer"))
    assert bad.status_code == 422 and "outcome" in bad.json["error"]["fields"]


def test_openapi_documents_the_queue_and_enforcement_routes(client):
    spec = client.get("/openapi.json").json
    claims = spec["paths"]["/v1/review/claims"]["post"]
    assert {"200", "204"} <= set(claims["responses"])
    assert claims["security"] == [{"bearerAuth": []}]
    for path in ("/v1/accounts/{account_id}/signals", "/v1/accounts/{account_id}/termination",
                 "/v1/deletions/{deletion_id}/acks", "/v1/audit",
                 "/v1/review/cases/{case_id}/decision", "/v1/accounts/{account_id}/verification"):
        assert path in spec["paths"], path
    assert "409" in spec["paths"]["/v1/review/cases/{case_id}/decision"]["post"]["responses"]
    assert client.post("/v1/review/claims?kind=nonsense",
                       headers=auth("reviewer")).status_code == 422


def test_a_restriction_an_objection_and_adult_evidence_outlive_an_idle_year(client, app,
                                                                            redis_client):
    """Issue 21, item 11: they rode the account's 365-day TTL and vanished with an idle year;
    the meta hash now keeps them for Retention.account_standing_days."""
    state = services(app)
    year = state.retention.seconds("account")
    standing = state.retention.seconds("account_standing")
    assert standing > year

    def ttl(account_id):
        return redis_client.ttl(keys.account(state.hasher.account(account_id)))

    case_id = flag(client, "acc-r")["case_id"]
    assert abs(ttl("acc-r") - year) < 5  # an ordinary account
    claim(client)
    decide(client, case_id, "request_verification")
    assert abs(ttl("acc-r") - standing) < 5  # restricted pending verification
    verified = client.post("/v1/accounts/acc-r/verification", headers=auth("reviewer"),
                           json={"outcome": "adult", "method": "id_document"})
    assert verified.status_code == 200
    assert abs(ttl("acc-r") - standing) < 5  # verified adult: the evidence stays
    flag(client, "acc-o")
    state.accounts.stop_processing("acc-o", actor="parents-bot")
    assert abs(ttl("acc-o") - standing) < 5  # a parent's objection
    # Later writes never shorten it back to a year while the standing holds.
    post_signals(client, "acc-r", [{"type": "session", "at": "2026-11-24T13:00:00Z",
                                    "duration_s": 60}])
    assert abs(ttl("acc-r") - standing) < 5
