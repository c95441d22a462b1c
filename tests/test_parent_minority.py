"""Issue 15: a parent request cannot delete or export an adult's account, nor create one.

Deletion and access need the child's minority established first (a reviewer's confirm_minor or
an age-assurance result `minor`); otherwise fulfilment restricts the account pending age
verification and the request waits, its due date still counting.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from agegate.services.parent_requests import NO_ACTION
from tests import test_parent_journeys as journeys
from tests.conftest import auth
from tests.helpers import dump_keyspace
from tests.parents_helpers import smtp_server  # noqa: F401 - fixture
from tests.test_parent_journeys import age_check, case_for, decide, start, status, verify_age

# The journeys' fixtures: the trained model and a real SMTP server for the parents' codes.
app, config, mail = journeys.app, journeys.config, journeys.mail
# Request, case and account often live in different shards: also run on a Redis Cluster.
pytestmark = pytest.mark.cluster

REPORT = {"signals": [{"type": "report", "at": "2026-11-24T13:00:00Z",
                       "reason": "suspected_minor"}]}


def review_view(client, request_id):
    response = client.get(f"/v1/parent-requests/{request_id}/review", headers=auth("reviewer"))
    assert response.status_code == 200
    return response.get_json()


def deletions(client):
    return client.get("/v1/deletions", headers=auth("admin")).get_json()["deletions"]


def account(client, account_id):
    return client.get(f"/v1/accounts/{account_id}", headers=auth("reviewer"))


@pytest.mark.parametrize("request_type", ["deletion", "access", "objection"])
def test_a_stranger_cannot_have_a_never_seen_account_created_or_deleted(
        client, mail, redis_client, request_type):
    request_id, token = start(client, mail, request_type, {"account_id": "someone-else"})
    assert review_view(client, request_id)["account_age"]["seen"] is False
    before = {k for k in dump_keyspace(redis_client) if ":acct:" in k}
    assert decide(client, request_id, "fulfill").status_code == 200
    body = status(client, request_id, token)
    assert (body["status"], body["outcome"], body["reason"]) == NO_ACTION
    assert review_view(client, request_id)["outcome"] == "nothing_held"
    assert deletions(client) == []
    assert account(client, "someone-else").status_code == 404
    after = {k for k in dump_keyspace(redis_client) if ":acct:" in k}
    assert after == before  # no account, deletion or block was written for it
    exported = client.get(f"/v1/parent-requests/{request_id}/export",
                          query_string={"status_token": token})
    assert exported.status_code == 404


def test_an_adult_account_is_restricted_verified_and_the_request_refused(client, mail):
    age_check(client, "grownup@example.com", account_id="adult-1")
    request_id, token = start(client, mail, "deletion", {"account_id": "adult-1"})
    assert review_view(client, request_id)["account_age"] | {"evidence": None} == {
        "seen": True, "status": "active", "established": "unknown", "evidence": None,
        "score": None, "band": None}
    assert decide(client, request_id, "fulfill").status_code == 200
    # Not deleted: restricted until the holder's age is verified; the parent is told so.
    assert account(client, "adult-1").get_json()["status"] == "restricted"
    waiting = status(client, request_id, token)
    assert waiting["status"] == "awaiting_age_verification" and waiting["outcome"] is None
    assert "verifying" in waiting["reason"]
    verify_age(client, "adult-1", "adult")
    body = status(client, request_id, token)
    assert (body["status"], body["outcome"], body["reason"]) == NO_ACTION
    assert review_view(client, request_id)["outcome"] == "refused_adult"
    assert account(client, "adult-1").get_json()["status"] == "active"
    assert deletions(client) == []
    # A later request against the verified adult is refused at once, with the same reason.
    second, token2 = start(client, mail, "access", {"account_id": "adult-1"})
    age = review_view(client, second)["account_age"]
    assert age["established"] == "adult"
    assert [e["source"] for e in age["evidence"]] == ["verification_adult"]
    assert decide(client, second, "fulfill").status_code == 200
    assert status(client, second, token2)["outcome"] == "no_action"
    assert review_view(client, second)["outcome"] == "refused_adult"
    assert client.get(f"/v1/parent-requests/{second}/export",
                      query_string={"status_token": token2}).status_code == 404


def test_a_waiting_request_keeps_its_due_date_and_counts_as_overdue(client, mail, clock):
    age_check(client, "kid@example.com", account_id="kid-5")
    request_id, token = start(client, mail, "access", {"account_id": "kid-5"})
    assert decide(client, request_id, "fulfill").status_code == 200
    clock.instant += timedelta(days=31)
    overdue = client.get("/v1/admin/parent-requests", query_string={"overdue": "true"},
                         headers=auth("admin")).get_json()["requests"]
    assert [(r["request_id"], r["status"], r["overdue"]) for r in overdue] == [
        (request_id, "awaiting_age_verification", True)]
    verify_age(client, "kid-5", "minor")
    assert status(client, request_id, token)["outcome"] == "export_ready"
    exported = client.get(f"/v1/parent-requests/{request_id}/export",
                          query_string={"status_token": token})
    assert exported.status_code == 200
    assert exported.get_json()["account"]["account_id"] == "kid-5"
    assert client.get("/v1/admin/parent-requests", query_string={"overdue": "true"},
                      headers=auth("admin")).get_json()["requests"] == []


def _confirm_minor(client, account_id):
    posted = client.post(f"/v1/accounts/{account_id}/signals", json=REPORT,
                         headers=auth("signals"))
    assert posted.status_code == 200, posted.get_json()
    case_id = posted.get_json()["case_id"]
    assert client.post(f"/v1/review/cases/{case_id}/claim",
                       headers=auth("reviewer")).status_code == 200
    decided = client.post(f"/v1/review/cases/{case_id}/decision", headers=auth("reviewer"),
                          json={"decision": "confirm_minor", "note": "ID seen"})
    assert decided.status_code == 200, decided.get_json()
    return decided.get_json()


def _waiting_deletion(client, mail, account_id):
    """A parent's deletion request for a known account, fulfilled by a reviewer, waiting for
    the account holder's age to be established; returns (request id, status token)."""
    age_check(client, "kid@example.com", account_id=account_id)
    request_id, token = start(client, mail, "deletion", {"account_id": account_id})
    assert decide(client, request_id, "fulfill").status_code == 200
    assert status(client, request_id, token)["status"] == "awaiting_age_verification"
    return request_id, token


def test_a_reviewers_confirm_minor_answers_a_waiting_deletion(client, mail):
    request_id, token = _waiting_deletion(client, mail, "kid-6")
    confirmed = _confirm_minor(client, "kid-6")
    body = status(client, request_id, token)
    assert (body["status"], body["outcome"]) == ("fulfilled", "account_deleted")
    assert [d["deletion_id"] for d in deletions(client)] == [confirmed["deletion_id"]]


def test_after_confirm_minor_a_deletion_is_fulfilled_at_once(client, mail):
    confirmed = _confirm_minor(client, "kid-7")
    request_id, token = start(client, mail, "deletion", {"account_id": "kid-7"})
    age = review_view(client, request_id)["account_age"]
    assert (age["established"], age["status"]) == ("minor", "terminated")
    assert [e["source"] for e in age["evidence"]] == ["reviewer_confirmed_minor"]
    assert decide(client, request_id, "fulfill").status_code == 200
    assert status(client, request_id, token)["outcome"] == "account_deleted"
    assert [d["deletion_id"] for d in deletions(client)] == [confirmed["deletion_id"]]


def test_the_console_case_page_shows_what_is_known_about_the_age(client, mail):
    from tests.console_helpers import sign_in

    age_check(client, "kid@example.com", account_id="kid-8")
    request_id, _ = start(client, mail, "deletion", {"account_id": "kid-8"})
    sign_in(client, "reviewer")
    page = client.get(f"/console/cases/{case_for(client, request_id)['case_id']}")
    html = page.get_data(as_text=True)
    assert 'id="account-age"' in html
    assert '<strong id="age-established">unknown</strong>' in html
    assert "restricts the account and asks for age verification" in html


def _age_signal(client, account_id, lower, upper, method="self_declared"):
    response = client.post(f"/v1/accounts/{account_id}/age-signals", headers=auth("signals"),
                           json={"source": "google_play_age_signals", "method": method,
                                 "observed_at": "2026-11-24T12:00:00Z",
                                 "age_lower": lower, "age_upper": upper})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_an_under_18_age_signal_answers_a_waiting_deletion(client, mail):
    request_id, token = _waiting_deletion(client, mail, "kid-8")
    _age_signal(client, "kid-8", 13, 15)
    body = status(client, request_id, token)
    assert (body["status"], body["outcome"]) == ("fulfilled", "account_deleted")
    assert account(client, "kid-8").get_json()["status"] == "terminated"


def test_an_under_18_age_signal_establishes_minority_before_the_request(client, mail):
    age_check(client, "kid@example.com", account_id="kid-9")
    _age_signal(client, "kid-9", 16, 17)
    request_id, token = start(client, mail, "access", {"account_id": "kid-9"})
    age = review_view(client, request_id)["account_age"]
    assert age["established"] == "minor"
    assert [e["source"] for e in age["evidence"]] == ["age_signal:google_play_age_signals"]
    assert decide(client, request_id, "fulfill").status_code == 200
    assert status(client, request_id, token)["status"] == "fulfilled"


def test_an_id_checked_adult_signal_refuses_a_deletion(client, mail):
    age_check(client, "grown@example.com", account_id="adult-3")
    _age_signal(client, "adult-3", 18, None, method="id_checked")
    request_id, token = start(client, mail, "deletion", {"account_id": "adult-3"})
    assert review_view(client, request_id)["account_age"]["established"] == "adult"
    assert decide(client, request_id, "fulfill").status_code == 200
    body = status(client, request_id, token)
    assert body["status"] != "fulfilled"
    assert account(client, "adult-3").get_json()["status"] == "active"


def test_a_child_named_by_email_is_answered_across_shards(client, mail):
    """The request lives in a random shard, its case under a placeholder, the child's account
    in its own: waiting, verifying and answering each write one slot (issue 21, item 6)."""
    age_check(client, "kid7@example.com", account_id="kid-7")
    request_id, token = start(client, mail, "access", {"email": " Kid7@Example.com"})
    case_id = case_for(client, request_id)["case_id"]
    resolved = client.post(f"/v1/parent-requests/{request_id}/child", headers=auth("reviewer"),
                           json={"account_id": "kid-7", "identifier": "kid7@example.com"})
    assert resolved.status_code == 200
    assert decide(client, request_id, "fulfill").status_code == 200
    assert status(client, request_id, token)["status"] == \
        "awaiting_age_verification"
    assert account(client, "kid-7").get_json()["status"] == "restricted"
    verify_age(client, "kid-7", "adult")
    assert status(client, request_id, token)["status"] != "awaiting_age_verification"
    history = client.get(f"/v1/review/cases/{case_id}", headers=auth("reviewer")).get_json()
    assert [h["event"] for h in history["history"]].count("verified") == 1
    assert account(client, "kid-7").get_json()["status"] == "active"


def test_every_ending_without_action_looks_the_same_to_the_parent(client, mail):
    """Never seen, verified adult, terminated before its age was known, or rejected by the
    reviewer: the parent's status is byte-for-byte the same; the reviewer sees why."""
    age_check(client, "grown@example.com", account_id="adult-4")
    _age_signal(client, "adult-4", 18, None, method="id_checked")
    client.post("/v1/accounts/gone-1/termination", headers=auth("admin"),
                json={"reason": "spam"})
    endings = {}
    for why, request_type, child, decision in [
            ("nothing_held", "access", "never-seen", "fulfill"),
            ("refused_adult", "deletion", "adult-4", "fulfill"),
            ("age_unverifiable", "access", "gone-1", "fulfill"),
            ("rejected", "objection", "adult-4", "reject")]:
        request_id, token = start(client, mail, request_type, {"account_id": child})
        assert decide(client, request_id, decision).status_code == 200
        body = status(client, request_id, token)
        endings[why] = {k: v for k, v in body.items() if k not in ("request_id", "request_type")}
        assert review_view(client, request_id)["outcome"] == why
    assert len({repr(sorted(e.items())) for e in endings.values()}) == 1, endings
    assert endings["nothing_held"]["outcome"] == "no_action"


def test_a_strangers_objection_does_not_stop_processing(client, mail):
    """An objection needs minority established: on an account of unknown age it restricts
    and waits, and the classifier and reports keep working meanwhile; an adult's is refused."""
    age_check(client, "someone@example.com", account_id="adult-5")
    request_id, token = start(client, mail, "objection", {"account_id": "adult-5"})
    assert review_view(client, request_id)["account_age"]["established"] == "unknown"
    assert decide(client, request_id, "fulfill").status_code == 200
    assert status(client, request_id, token)["status"] == "awaiting_age_verification"
    report = client.post("/v1/accounts/adult-5/signals", headers=auth("signals"), json=REPORT)
    assert report.status_code == 200  # still processed
    assert account(client, "adult-5").get_json().get("processing_stopped") is not True
    verify_age(client, "adult-5", "adult")
    assert status(client, request_id, token)["outcome"] == "no_action"
    assert review_view(client, request_id)["outcome"] == "refused_adult"
    again = client.post("/v1/accounts/adult-5/signals", headers=auth("signals"), json=REPORT)
    assert again.status_code == 200
