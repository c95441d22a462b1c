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
