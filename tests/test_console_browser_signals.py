"""The reviewer console in real headless Chromium for the two case kinds of platform age
signals and appeals: their evidence, and only the decisions their kind allows."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import TOKENS, auth
from tests.console_browser import browser, live_server, page  # noqa: F401

pytestmark = pytest.mark.browser

STATEMENT = "I am 41. My daughter set up the tablet and told the store she was 14."


def sign_in(tab, role: str = "reviewer") -> None:
    tab.goto("/console/login")
    tab.get_by_label("Reviewer token").fill(TOKENS[role])
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.get_by_role("heading", name="Review queue")).to_be_visible()


def age_signal(client, account_id: str, lower: int, upper: int | None, method: str,
               source: str) -> dict:
    response = client.post(f"/v1/accounts/{account_id}/age-signals", headers=auth("signals"),
                           json={"source": source, "observed_at": "2026-11-24T13:00:00Z",
                                 "age_lower": lower, "age_upper": upper, "method": method,
                                 "jurisdiction": "US-CA"})
    assert response.status_code == 200, response.json
    return response.json


def claim_next(tab, kind: str, label: str) -> None:
    tab.get_by_label("Kind").select_option(kind)
    tab.get_by_role("button", name="Filter").click()
    tab.get_by_role("button", name=f"Claim next {label} case").click()


def test_an_age_signal_case_shows_its_signals_and_takes_minor_decisions(page, app):  # noqa: F811
    client = app.test_client()
    age_signal(client, "acc-teen", 18, None, "self_declared", "apple_declared_age_range")
    age_signal(client, "acc-teen", 13, 15, "estimated", "google_play_age_signals")
    sign_in(page)
    claim_next(page, "age_signal", "age signal")
    expect(page.get_by_role("heading", name="Platform age signals")).to_be_visible()
    expect(page.locator("#age-trigger")).to_contain_text(
        "an under-18 signal: Google Play Age Signals, 13-15, standard")
    rows = page.locator("#age-signals tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#age-signals")).to_contain_text("Apple Declared Age Range")
    expect(page.locator("#age-signals tr.row-minor")).to_contain_text("13-15")
    expect(page.locator("#age-signals tr.row-minor")).to_contain_text("standard")
    expect(page.locator("#account-status")).to_have_text("restricted")
    buttons = page.locator("form.decide button")
    expect(buttons).to_have_text(["Confirm minor and terminate the account",
                                  "Request age verification (restricts the account)",
                                  "Not a minor: clear the case"])
    page.get_by_role("button", name="Not a minor: clear the case").click()
    expect(page.get_by_role("status")).to_contain_text("decided: not minor. Account acc-teen "
                                                       "is now active.")


def test_an_appeal_shows_the_statement_and_takes_only_uphold_or_overturn(page, app):  # noqa: F811
    client = app.test_client()
    age_signal(client, "acc-parent", 13, 15, "guardian_declared", "apple_declared_age_range")
    appeal = client.post("/v1/accounts/acc-parent/appeals", headers=auth("signals"),
                         json={"statement": STATEMENT})
    assert appeal.status_code == 202, appeal.json
    sign_in(page)
    claim_next(page, "appeal", "appeal")
    expect(page.get_by_role("heading", name="The member's statement")).to_be_visible()
    expect(page.locator("#appeal-statement")).to_have_text(STATEMENT)
    # The signals the member disputes are shown beside the statement.
    expect(page.locator("#age-signals")).to_contain_text("Apple Declared Age Range")
    buttons = page.locator("form.decide button")
    expect(buttons).to_have_text(["Overturn: reinstate the account",
                                  "Uphold: the restriction or termination stands"])
    expect(page.get_by_role("button", name="Confirm minor and terminate the account")) \
        .to_have_count(0)
    # Overturning needs a note, in the browser too.
    page.get_by_role("button", name="Overturn: reinstate the account").click()
    expect(page.get_by_label("Note")).to_have_js_property("validity.valueMissing", True)
    page.get_by_label("Note").fill("Parent's own account; the store's range was the child's.")
    page.get_by_role("button", name="Overturn: reinstate the account").click()
    expect(page.get_by_role("status")).to_contain_text(
        "decided: overturn. Account acc-parent is now active.")
    got = client.get(f"/v1/appeals/{appeal.json['appeal_id']}", headers=auth("signals")).json
    assert got["outcome"] == "overturned"
