"""Reviewer console: sign-in, sessions, CSRF and the rule that every page needs a session."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from flask.sessions import SecureCookieSessionInterface

from tests.conftest import TOKENS
from tests.console_helpers import csrf_from, sign_in

OPEN_ENDPOINTS = {"console.login", "console.static"}


def _cookie_data(app, client) -> dict:
    """Decode the signed console cookie the client holds."""
    cookie = client.get_cookie("agegate_console", path="/console")
    assert cookie is not None
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    return serializer.loads(cookie.value)


def test_every_console_route_but_login_and_static_requires_a_session(app, client):
    """No console page or action is reachable without signing in."""
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/console")]
    guarded = [r for r in rules if r.endpoint not in OPEN_ENDPOINTS]
    assert len(guarded) >= 7, [r.rule for r in rules]
    for rule in guarded:
        path = rule.rule.replace("<case_id>", "case_x").replace("<path:filename>", "x")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(path, method=method)
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["Location"].startswith("/console/login"), (method, path)


def test_console_routes_are_public_to_the_bearer_hook_and_guarded_by_the_blueprint(app):
    """The bearer-token hook must not fail closed on console routes (they use cookies)."""
    from agegate.auth import PUBLIC, required_roles

    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/console"):
            assert required_roles(app, rule.endpoint) is PUBLIC, rule.endpoint


def test_login_page_and_static_files_are_open(client):
    page = client.get("/console/login")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<label for="token">' in html and 'type="password"' in html
    with client.get("/console/static/console.css") as css:
        assert css.status_code == 200 and css.mimetype == "text/css"


def test_sign_in_sets_a_hardened_cookie_with_name_and_role_not_the_token(app, client):
    response = sign_in(client, "reviewer", next_path="/console/queue?kind=report")
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/queue?kind=report"
    set_cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    assert "Path=/console" in set_cookie and "Expires=" in set_cookie
    assert "Secure" not in set_cookie  # plain http in development
    assert TOKENS["reviewer"] not in set_cookie
    data = _cookie_data(app, client)
    assert data["name"] == "reviewer-bot" and data["role"] == "reviewer"
    assert TOKENS["reviewer"] not in str(data)


def test_cookie_is_secure_over_https(app):
    client = app.test_client()
    https = "https://localhost"
    page = client.get("/console/login", base_url=https).get_data(as_text=True)
    response = client.post("/console/login", base_url=https,
                           data={"token": TOKENS["admin"], "csrf_token": csrf_from(page)})
    assert response.status_code == 303
    assert "Secure" in response.headers["Set-Cookie"]


def test_cookie_is_secure_behind_a_declared_tls_proxy_only(config, clock):
    from agegate import create_app

    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    for proxies, secure in ((0, False), (1, True)):
        client = create_app(config.with_overrides(trusted_proxies=proxies),
                            clock=clock).test_client()
        page = client.get("/console/login", headers=proxied).get_data(as_text=True)
        response = client.post("/console/login", headers=proxied,
                               data={"token": TOKENS["admin"], "csrf_token": csrf_from(page)})
        assert response.status_code == 303
        assert ("Secure" in response.headers["Set-Cookie"]) is secure, proxies


def test_wrong_and_non_reviewer_tokens_are_refused(client):
    page = client.get("/console/login").get_data(as_text=True)
    bad = client.post("/console/login", data={"token": "not-a-token-at-all-xx",
                                               "csrf_token": csrf_from(page)})
    assert bad.status_code == 401
    assert "That token was not accepted." in bad.get_data(as_text=True)
    for role in ("registration", "signals", "downstream"):
        assert sign_in(client, role).status_code == 401, role
    assert client.get("/console/queue").status_code == 303


def test_next_cannot_redirect_off_the_console(client):
    response = sign_in(client, "reviewer", next_path="https://evil.example/console/x")
    assert response.headers["Location"] == "/console/queue"
    client.post("/console/logout")  # no CSRF: refused, harmless here


def test_login_is_rate_limited_per_client_address_and_token(client):
    page = client.get("/console/login").get_data(as_text=True)
    token = csrf_from(page)
    for _ in range(10):
        client.post("/console/login", data={"token": "wrong-token-0123456789", "csrf_token": token})
    blocked = client.post("/console/login",
                          data={"token": "wrong-token-0123456789", "csrf_token": token})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in blocked.get_data(as_text=True)


@pytest.mark.parametrize("proxies", [0, 1])
def test_one_attacker_cannot_lock_every_reviewer_out(config, clock, redis_client, proxies):
    """Behind a proxy every reviewer may share one address (or, with AGEGATE_TRUSTED_PROXIES,
    each has their own): an attacker's wrong guesses lock only what the attacker tried."""
    from agegate import create_app

    app = create_app(config.with_overrides(trusted_proxies=proxies), clock=clock)
    attacker, reviewer = app.test_client(), app.test_client()
    attacker.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.66"
    reviewer.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.7"
    page = attacker.get("/console/login").get_data(as_text=True)
    for guess in range(20):
        attacker.post("/console/login", data={"token": f"guess-{guess % 2}-0123456789abcdef",
                                              "csrf_token": csrf_from(page)})
    assert attacker.post("/console/login", data={
        "token": "guess-0-0123456789abcdef", "csrf_token": csrf_from(page)}).status_code == 429
    assert sign_in(reviewer, "reviewer").status_code == 303
    assert sign_in(attacker, "admin").status_code == 303  # another token: not locked either
    stored = " ".join(redis_client.scan_iter("*"))
    assert "203.0.113" not in stored and "guess-" not in stored


def test_an_unexpected_console_error_logs_no_text(app, client, caplog):
    """The README promises no PII in logs: the console logs a failure's type and frames."""
    from agegate.auth import public

    secret = "kid@" + "example.com was born on " + "2011-03-02"

    @public
    def broken():
        raise ValueError(secret)  # the frame's source line names the variable only

    sign_in(client, "reviewer")
    app.view_functions["console.queue"] = broken
    with caplog.at_level(logging.ERROR):
        response = client.get("/console/queue")
    assert response.status_code == 500
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "ValueError" in logged and "broken" in logged
    assert "kid@example.com" not in logged and "2011" not in logged
    assert not any(record.exc_info for record in caplog.records)


def test_a_success_resets_the_failure_count(client):
    page = client.get("/console/login").get_data(as_text=True)
    for _ in range(9):
        client.post("/console/login", data={"token": "wrong-token-0123456789",
                                            "csrf_token": csrf_from(page)})
    assert sign_in(client, "reviewer").status_code == 303
    fresh = client.get("/console/login")  # signed in: sent on to the queue
    assert fresh.status_code == 302


def test_login_form_without_csrf_is_refused(client):
    client.get("/console/login")
    response = client.post("/console/login", data={"token": TOKENS["reviewer"]})
    assert response.status_code == 403
    assert "could not be verified" in response.get_data(as_text=True)
    assert client.get_cookie("agegate_console", path="/console") is None or \
        "sid" not in str(client.get_cookie("agegate_console", path="/console").value)


def test_sign_out_needs_csrf_and_revokes_the_session_server_side(app, client):
    sign_in(client, "reviewer")
    stolen = client.get_cookie("agegate_console", path="/console").value
    forged = client.post("/console/logout", data={"csrf_token": "guess"})
    assert forged.status_code == 403
    login_page = client.get("/console/login")
    assert login_page.status_code == 302  # still signed in
    token = _cookie_data(app, client)["csrf"]
    out = client.post("/console/logout", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["Location"] == "/console/login"
    assert "You are signed out." in client.get("/console/login").get_data(as_text=True)
    # Replaying the old cookie no longer works: the server-side record is gone.
    replay = app.test_client()
    replay.set_cookie("agegate_console", stolen, path="/console")
    assert replay.get("/console/queue").status_code == 303


def test_sessions_expire_after_eight_hours(client, clock):
    sign_in(client, "reviewer")
    assert client.get("/console/login").status_code == 302
    clock.instant += timedelta(hours=8, seconds=1)
    response = client.get("/console/queue")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/console/login")


def test_a_rotated_out_token_ends_its_sessions(app, client, config, clock):
    """Removing a token from AGEGATE_API_KEYS ends the sessions it opened."""
    from agegate import create_app

    sign_in(client, "reviewer")
    cookie = client.get_cookie("agegate_console", path="/console").value
    rotated = create_app(config.with_overrides(api_keys=tuple(
        k for k in config.api_keys if k.name != "reviewer-bot")), clock=clock)
    other = rotated.test_client()
    other.set_cookie("agegate_console", cookie, path="/console")
    assert other.get("/console/queue").status_code == 303


def test_sign_in_and_out_are_audited_by_token_name(app, client):
    sign_in(client, "admin")
    client.post("/console/logout", data={"csrf_token": _cookie_data(app, client)["csrf"]})
    entries = app.extensions["agegate"].audit.entries(None, 10)
    actions = [(e["actor"], e["action"]) for e in entries]
    assert ("admin-bot", "console.signed_in") in actions
    assert ("admin-bot", "console.signed_out") in actions


def test_console_pages_send_no_store_and_csp(client):
    response = client.get("/console/login")
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_a_reviewer_gets_a_readable_403_on_admin_pages(client):
    sign_in(client, "reviewer")
    response = client.get("/console/deletions")
    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "Only administrators may open this page." in html and "Traceback" not in html
