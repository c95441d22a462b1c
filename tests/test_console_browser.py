"""The reviewer console in real headless Chromium, against a real server thread and real Redis.

Saves console-queue.png and console-case.png (into docs/, for the README, when
AGEGATE_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from agegate.console import present
from tests.conftest import TOKENS
from tests.console_browser import browser, live_server, page, screenshots  # noqa: F401
from tests.console_helpers import seed_busy_queue
from tests.signals_helpers import signals_app

pytestmark = pytest.mark.browser


@pytest.fixture
def app(config, clock):
    """The app with the trained model; the seeded scores come from real posts."""
    return signals_app(config, clock)


def sign_in(tab, role: str) -> None:
    """Sign in through the login form, as a person would."""
    tab.goto("/console/login")
    tab.get_by_label("Reviewer token").fill(TOKENS[role])
    tab.get_by_role("button", name="Sign in").click()
    expect(tab.get_by_role("heading", name="Review queue")).to_be_visible()


def test_reviewer_claims_confirms_a_minor_and_admin_sees_the_deletion(page, app, clock,  # noqa: F811
                                                                     screenshots):  # noqa: F811
    ids = seed_busy_queue(app.test_client(), clock)
    sign_in(page, "reviewer")
    open_rows = page.locator("#open tbody tr")
    expect(open_rows).to_have_count(5)
    expect(open_rows.first).to_contain_text("Parent request")
    expect(open_rows.first).to_contain_text("Overdue")
    expect(page.locator("tr.row-soon")).to_contain_text("Due in 3 d 21 h")
    page.screenshot(path=str(screenshots / "console-queue.png"), full_page=True)
    assert (screenshots / "console-queue.png").stat().st_size > 10_000

    page.get_by_label("Kind").select_option("report")
    page.get_by_role("button", name="Filter").click()
    expect(open_rows).to_have_count(1)
    page.get_by_role("button", name="Claim next user report case").click()
    expect(page).to_have_url(f"{page.url.split('/console')[0]}/console/cases/{ids['report']}")
    expect(page.get_by_role("heading", name="Why this account was flagged")).to_be_visible()
    # The strongest of the case's real signals, in the words the console uses for it.
    case = app.test_client().get(f"/v1/review/cases/{ids['report']}",
                                 headers={"Authorization": f"Bearer {TOKENS['reviewer']}"})
    rows = present.explain(case.get_json()["top_signals"])
    expect(page.locator(".why li")).to_have_count(len(rows))
    expect(page.locator(".why li").first).to_contain_text(rows[0]["sentence"])
    expect(page.locator("[data-countdown]")).to_contain_text("min")
    page.screenshot(path=str(screenshots / "console-case.png"), full_page=True)
    assert (screenshots / "console-case.png").stat().st_size > 10_000

    page.get_by_label("Note").fill("Profile says 8th grade; reported by another member.")
    page.get_by_role("button", name="Confirm minor and terminate the account").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Case {ids['report']} decided: confirm minor. Account acc-c4e915 is now terminated.")
    expect(page.locator("#open tbody tr")).to_have_count(4)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    page.goto("/console/queue")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    sign_in(page, "admin")
    page.get_by_role("link", name="Deletions").click()
    rows = page.locator("#deletions tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("acc-51c09e")  # the overdue one first
    expect(rows.first).to_contain_text("Overdue")
    expect(rows.nth(1)).to_contain_text("acc-c4e915")
    expect(rows.nth(1)).to_contain_text("0 of 4")


def test_confirm_minor_needs_a_note_in_the_browser_too(page, app, clock):  # noqa: F811
    seed_busy_queue(app.test_client(), clock)
    sign_in(page, "reviewer")
    page.get_by_label("Kind").select_option("classifier")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("button", name="Claim next classifier case").click()
    page.get_by_role("button", name="Confirm minor and terminate the account").click()
    # The browser's own validation keeps the form from being sent without a note.
    expect(page.get_by_label("Note")).to_have_js_property("validity.valueMissing", True)
    expect(page.get_by_role("heading", name="Why this account was flagged")).to_be_visible()


def test_a_forged_form_without_the_csrf_token_is_refused(page, app):  # noqa: F811
    sign_in(page, "reviewer")
    page.locator("form.who input[name=csrf_token]").evaluate("field => field.remove()")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("could not be verified")
    page.goto("/console/queue")
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()  # still signed in


def test_the_console_works_without_javascript_and_by_keyboard(browser, live_server, app, clock):  # noqa: F811
    seed_busy_queue(app.test_client(), clock)
    context = browser.new_context(java_script_enabled=False, base_url=live_server)
    tab = context.new_page()
    tab.goto("/console/login")
    expect(tab.get_by_label("Reviewer token")).to_be_focused()  # autofocus
    tab.keyboard.type(TOKENS["reviewer"])
    tab.keyboard.press("Enter")
    expect(tab.get_by_role("heading", name="Review queue")).to_be_visible()
    tab.keyboard.press("Tab")  # the skip link comes first on every page
    expect(tab.get_by_role("link", name="Skip to content")).to_be_focused()
    tab.get_by_role("button", name="Claim next case").focus()
    tab.keyboard.press("Enter")
    expect(tab.get_by_role("button", name="Fulfil the parent's request")).to_be_visible()
    expect(tab.locator("[data-countdown]")).to_have_text("1 min 0 s")
    context.close()
