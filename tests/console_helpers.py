"""Helpers for the reviewer console tests: CSRF scraping and signing in via the real form."""

from __future__ import annotations

import re

from tests.conftest import TOKENS

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    """The CSRF token embedded in a rendered console form."""
    match = CSRF_FIELD.search(html)
    assert match, "page has no CSRF field"
    return match.group(1)


def sign_in(client, role: str = "reviewer", next_path: str = ""):
    """Sign in through the login form with one of the test tokens; returns the response."""
    page = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"token": TOKENS[role], "csrf_token": csrf_from(page.get_data(as_text=True)),
              "next": next_path},
    )


def post_form(client, path: str, data: dict[str, str] | None = None, *, from_page: str):
    """POST a console form with the CSRF token taken from the page it sits on."""
    html = client.get(from_page).get_data(as_text=True)
    return client.post(path, data={**(data or {}), "csrf_token": csrf_from(html)})


# -- seeding through the real API ----------------------------------------------------------
CHILD_DOB = "2011-03-14"
CHILD_EMAIL = "kid.sample@example.com"
PARENT_EMAIL = "parent.person@example.org"
SECRET_TEXT = "zebracorn-7741"  # appears only in message text and the parent's details
PARENT_DETAILS = f"My child wrote {SECRET_TEXT} and is only 13."


def flag_account(client, account_id: str, *, report: bool = False) -> dict:
    """Flag the account with real minor-typical posts (trained model), after a message holding
    SECRET_TEXT and, when asked, a suspected-minor report; returns the flagging response."""
    from tests.signals_helpers import flag, post_signals, text_signal

    signals = [text_signal(SECRET_TEXT)]
    if report:
        signals.append({"type": "report", "at": "2026-11-24T13:00:00Z",
                        "reason": "suspected_minor"})
    first = post_signals(client, account_id, signals)
    assert first.status_code == 200, first.get_json()
    flagged = flag(client, account_id)
    assert flagged["case_id"], flagged
    if report:
        assert flagged["case_id"] == first.get_json()["case_id"]
    return flagged


def register_with_pii(client, account_id: str) -> None:
    """An age check carrying a date of birth and an email for the account."""
    from tests.conftest import auth

    response = client.post("/v1/age-checks", headers=auth("registration"), json={
        "date_of_birth": "1990-01-01", "country": "US", "email": CHILD_EMAIL,
        "device_id": "dev-console-1", "account_id": account_id})
    assert response.status_code == 200, response.get_json()
    blocked = client.post("/v1/age-checks", headers=auth("registration"), json={
        "date_of_birth": CHILD_DOB, "country": "US", "email": "other." + CHILD_EMAIL,
        "account_id": account_id})
    assert blocked.status_code == 200


def verified_parent_request(client, account_id: str, request_type: str = "deletion") -> str:
    """Submit a parent request, read the code from the admin outbox, verify it; returns its id."""
    import re

    from tests.conftest import auth

    submitted = client.post("/v1/parent-requests", json={
        "parent_name": "Pat", "parent_email": PARENT_EMAIL, "child": {"account_id": account_id},
        "request_type": request_type, "details": PARENT_DETAILS, "attestation": True})
    assert submitted.status_code == 202, submitted.get_json()
    request_id = submitted.get_json()["request_id"]
    outbox = client.get("/v1/admin/outbox", headers=auth("admin")).get_json()["messages"]
    body = next(m["body"] for m in reversed(outbox) if request_id in m["body"])
    code = re.search(r"enter this code: (\d+)", body).group(1)
    verified = client.post(f"/v1/parent-requests/{request_id}/verification", json={"code": code})
    assert verified.status_code == 200, verified.get_json()
    return request_id


def terminate(client, account_id: str) -> str:
    """Terminate an account as an admin; returns the deletion id."""
    from tests.conftest import auth

    response = client.post(f"/v1/accounts/{account_id}/termination", headers=auth("admin"),
                           json={"reason": "console test"})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["deletion_id"]


def seed_busy_queue(client, clock) -> dict[str, str]:
    """A queue a reviewer would recognise: an overdue and a due-soon parent request, a report,
    classifier cases, an overdue deletion. Moves the clock 31 days 3 hours forward."""
    from datetime import timedelta

    ids: dict[str, str] = {}
    ids["old_deletion"] = terminate(client, "acc-51c09e")
    ids["overdue_request"] = verified_parent_request(client, "acc-77d2b0")
    clock.instant += timedelta(days=5)
    ids["soon_request"] = verified_parent_request(client, "acc-90ae13", "access")
    clock.instant += timedelta(days=26)
    ids["classifier"] = flag_account(client, "acc-3f8a21")["case_id"]
    clock.instant += timedelta(hours=2, minutes=10)
    ids["report"] = flag_account(client, "acc-c4e915", report=True)["case_id"]
    clock.instant += timedelta(minutes=45)
    ids["classifier2"] = flag_account(client, "acc-0b77d4")["case_id"]
    clock.instant += timedelta(minutes=5)  # the queue is looked at three hours on
    return ids
