"""The console's queue, case, deletion and parent-request pages over the real services."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

from agegate.console import present
from tests.conftest import auth
from tests.console_helpers import (
    CHILD_DOB,
    CHILD_EMAIL,
    PARENT_DETAILS,
    PARENT_EMAIL,
    SECRET_TEXT,
    csrf_from,
    flag_account,
    register_with_pii,
    seed_busy_queue,
    sign_in,
    verified_parent_request,
)
from tests.signals_helpers import signals_app


@pytest.fixture
def app(config, clock):
    """The app with the trained model; scores come from real posts."""
    return signals_app(config, clock)


def html_of(response) -> str:
    return response.get_data(as_text=True)


def claim_next(client, kind: str = ""):
    """Press "Claim next" on the queue page."""
    page = html_of(client.get("/console/queue"))
    return client.post("/console/claim-next", data={"csrf_token": csrf_from(page), "kind": kind})


def decide(client, case_id: str, decision: str, note: str = ""):
    """Press a decision button on the case page."""
    page = html_of(client.get(f"/console/cases/{case_id}"))
    return client.post(f"/console/cases/{case_id}/decision",
                       data={"csrf_token": csrf_from(page), "decision": decision, "note": note})


def test_queue_lists_open_cases_by_priority_with_deadlines_marked(client, clock):
    ids = seed_busy_queue(client, clock)
    sign_in(client, "reviewer")
    page = html_of(client.get("/console/queue"))
    order = re.findall(r'href="/console/cases/([^"]+)"', page)
    api = client.get("/v1/review/cases?status=open", headers=auth("reviewer")).get_json()
    assert order == [c["case_id"] for c in api["cases"]]
    assert len(order) == 5
    assert "Overdue by 1 d" in page and "Due in 3 d 21 h" in page
    assert 'class="row-overdue"' in page and 'class="row-soon"' in page
    assert "Parent request" in page and "User report" in page and "Classifier" in page
    assert ids["classifier"] in page
    only_reports = html_of(client.get("/console/queue?kind=report"))
    assert re.findall(r'href="/console/cases/([^"]+)"', only_reports) == [ids["report"]]


def test_claim_decide_confirm_minor_terminates_and_lists_the_deletion(app, client):
    flagged = flag_account(client, "acc-3f8a21")
    sign_in(client, "reviewer")
    claimed = claim_next(client)
    assert claimed.status_code == 303
    assert claimed.headers["Location"] == f"/console/cases/{flagged['case_id']}"
    page = html_of(client.get(claimed.headers["Location"]))
    assert "1 min 0 s" in page and "data-countdown=\"60\"" in page  # the one-minute test lease
    # The case's real top signals, each as a sentence (names from the model, never user text).
    case = client.get(f"/v1/review/cases/{flagged['case_id']}",
                      headers=auth("reviewer")).get_json()
    rows = present.explain(case["top_signals"])
    assert rows and all(escape(row["sentence"]) in page for row in rows), rows
    assert "pushed the score up" in page
    assert 'value="confirm_minor"' in page and 'value="fulfill"' not in page

    no_note = decide(client, flagged["case_id"], "confirm_minor")
    assert no_note.status_code == 422
    assert "Write a note" in html_of(no_note)

    done = decide(client, flagged["case_id"], "confirm_minor", "Says 8th grade; mom rules.")
    assert done.status_code == 303 and done.headers["Location"] == "/console/queue"
    page = html_of(client.get(done.headers["Location"]))
    assert (f"Case {flagged['case_id']} decided: confirm minor. "
            "Account acc-3f8a21 is now terminated.") in page
    account = client.get("/v1/accounts/acc-3f8a21", headers=auth("reviewer")).get_json()
    assert account["status"] == "terminated"
    # The audit trail names the reviewer by the token's name, as the API would.
    entries = app.extensions["agegate"].audit.entries("acc-3f8a21", 20)
    assert any(e["actor"] == "reviewer-bot" and "decid" in e["action"] for e in entries), entries

    client.post("/console/logout", data={"csrf_token": csrf_from(page)})
    sign_in(client, "admin")
    deletions = html_of(client.get("/console/deletions"))
    assert "acc-3f8a21" in deletions and "0 of 4" in deletions


def test_another_reviewers_claim_is_a_readable_409(app, client):
    flagged = flag_account(client, "acc-3f8a21")
    sign_in(client, "reviewer")
    claim_next(client)
    bob = app.test_client()
    sign_in(bob, "reviewer2")
    page = html_of(bob.get(f"/console/cases/{flagged['case_id']}"))
    assert "reviewer-bot holds this case" in page and 'value="confirm_minor"' not in page
    refused = bob.post(f"/console/cases/{flagged['case_id']}/claim",
                       data={"csrf_token": csrf_from(page)})
    assert refused.status_code == 409
    assert "The case is claimed, not open." in html_of(refused)
    forced = bob.post(f"/console/cases/{flagged['case_id']}/decision",
                      data={"csrf_token": csrf_from(page), "decision": "not_minor"})
    assert forced.status_code == 409
    assert "Only the reviewer holding the claim" in html_of(forced)
    assert "Traceback" not in html_of(forced)


def test_a_decision_the_kind_does_not_allow_is_refused_readably(client):
    flagged = flag_account(client, "acc-3f8a21")
    sign_in(client, "reviewer")
    claim_next(client)
    response = decide(client, flagged["case_id"], "reject")
    assert response.status_code == 422
    assert "takes one of: confirm_minor, not_minor, request_verification" in html_of(response)


def test_unknown_case_and_empty_queue_read_as_pages(client):
    sign_in(client, "reviewer")
    missing = client.get("/console/cases/case_nope")
    assert missing.status_code == 404 and "No such case." in html_of(missing)
    empty = claim_next(client)
    assert empty.status_code == 303
    assert "The queue is empty" in html_of(client.get(empty.headers["Location"]))


def test_parent_requests_page_shows_status_due_date_and_outcome(client, clock):
    ids = seed_busy_queue(client, clock)
    sign_in(client, "admin")
    page = html_of(client.get("/console/parent-requests"))
    assert ids["overdue_request"] in page and ids["soon_request"] in page
    assert "Overdue" in page and "Due in 3 d 21 h" in page
    assert page.index(ids["overdue_request"]) < page.index(ids["soon_request"])
    # Decide the access request and see its outcome listed.
    case_id = re.search(rf'{ids["soon_request"]}.*?/console/cases/([^"]+)"', page, re.S).group(1)
    claim_page = html_of(client.get(f"/console/cases/{case_id}"))
    client.post(f"/console/cases/{case_id}/claim", data={"csrf_token": csrf_from(claim_page)})
    done = decide(client, case_id, "fulfill", "Export sent to the verified parent.")
    assert done.status_code == 303, html_of(done)
    page = html_of(client.get("/console/parent-requests"))
    decided = page.split('id="decided-parent-requests"')[1]
    # The service never saw acc-90ae13: nothing to export, and no account made for it.
    assert ids["soon_request"] in decided and "closed" in decided
    assert "nothing held" in decided


def test_deletions_overdue_first_with_acknowledgements(client, clock):
    ids = seed_busy_queue(client, clock)
    fresh = client.post("/v1/accounts/acc-new001/termination", headers=auth("admin"),
                        json={"reason": "test"}).get_json()["deletion_id"]
    client.post(f"/v1/deletions/{fresh}/acks", headers=auth("downstream"), json={"system": "chat"})
    sign_in(client, "admin")
    page = html_of(client.get("/console/deletions"))
    assert page.index(ids["old_deletion"]) < page.index(fresh)
    assert "Overdue" in page and "1 of 4" in page and "chat: done" in page


def test_no_page_shows_a_date_of_birth_an_email_or_message_text(app, client, clock):
    register_with_pii(client, "acc-3f8a21")
    flagged = flag_account(client, "acc-3f8a21")
    verified_parent_request(client, "acc-3f8a21")
    seed_busy_queue(client, clock)
    sign_in(client, "admin")
    claim_next(client)
    pages = ["/console/queue", "/console/deletions", "/console/parent-requests",
             f"/console/cases/{flagged['case_id']}"]
    queue = html_of(client.get("/console/queue"))
    pages += [f"/console/cases/{c}" for c in re.findall(r'href="/console/cases/([^"]+)"', queue)]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        page = html_of(response)
        for needle in (CHILD_DOB, CHILD_EMAIL, PARENT_EMAIL, SECRET_TEXT, PARENT_DETAILS, "@"):
            assert needle.lower() not in page.lower(), (path, needle)
