"""Issue 15: body size per route and JSON nesting, answered in the contract's shape."""

from __future__ import annotations

import io
import logging

import pytest

from agegate.api.body import AGE_CHECK_BYTES, MAX_JSON_DEPTH, PUBLIC_BYTES, SIGNALS_BYTES
from agegate.auth import PUBLIC, required_roles
from tests.conftest import auth
from tests.helpers import dump_keyspace
from tests.test_errors import assert_error

JSON = {"Content-Type": "application/json"}
DEEP = "[" * 100_000


def _token_for(app, endpoint: str) -> dict[str, str]:
    needed = required_roles(app, endpoint)
    if needed is PUBLIC:
        return {}
    role = "admin" if "reviewer" in needed or "admin" in needed else sorted(needed)[0]
    return auth(role)


def _json_posts(app) -> list[tuple[str, str]]:
    """(path, endpoint) of every JSON route taking a body, path parameters filled in."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.methods & {"POST", "PUT", "PATCH"} or rule.endpoint.startswith("console."):
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<string:{argument}>", "x1").replace(f"<{argument}>", "x1")
        routes.append((path, rule.endpoint))
    return routes


def test_deep_nesting_is_400_on_every_route_with_no_traceback_logged(app, client, caplog):
    caplog.set_level(logging.INFO)
    routes = _json_posts(app)
    assert ("/v1/age-checks", "age_checks.create_age_check") in routes
    assert ("/v1/parent-requests", "parent_requests.create_parent_request") in routes
    for path, endpoint in routes:
        # As deep as the route's size limit lets a body be: 100,000 where that fits.
        limit = min(len(DEEP), _limit(app, endpoint) - 1)
        response = client.post(path, data=DEEP[:limit], headers=_token_for(app, endpoint) | JSON)
        assert_error(response, 400, "malformed_json")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text


def test_a_number_with_too_many_digits_is_400_on_every_route_with_no_traceback_logged(
        app, client, caplog):
    """Python refuses to read an integer of more than 4,300 digits (a ValueError that is no
    JSONDecodeError, which the parser let through as a 500). Where 5,000 digits are over the
    route's size limit (the age check's 4 KB) it is a 413, unread."""
    caplog.set_level(logging.INFO)
    body = '{"n": ' + "9" * 5000 + "}"
    for path, endpoint in _json_posts(app):
        response = client.post(path, data=body, headers=_token_for(app, endpoint) | JSON)
        if len(body) > _limit(app, endpoint):
            assert_error(response, 413, "payload_too_large")
        else:
            assert_error(response, 400, "malformed_json")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text
    # The same digits in a string are text like any other: judged on the fields.
    response = client.post("/v1/accounts/acc-1/signals", headers=auth("signals") | JSON,
                           data='{"signals": [{"type": "message", "at": "2026-11-24T13:00:00Z",'
                                ' "text": "' + "9" * 5000 + '"}], "n": 1}')
    assert_error(response, 422, "validation_error")


LONE_SURROGATE = "\\ud800"  # as sent: a JSON escape of half a UTF-16 pair


@pytest.mark.parametrize(("path", "role", "body"), [
    ("/v1/accounts/acc-1/signals", "signals",
     '{"signals": [{"type": "message", "at": "2026-11-24T13:00:00Z", "text": "hi %s"}]}'),
    ("/v1/accounts/acc-1/termination", "admin", '{"reason": "%s"}'),
    ("/v1/parent-requests", None,
     '{"parent_name": "P %s", "parent_email": "p@example.com", "child": {"username": "kid"},'
     ' "request_type": "access", "details": "d", "attestation": true}'),
])
def test_a_lone_surrogate_is_400_not_a_500_and_nothing_is_stored(client, redis_client, caplog,
                                                                  path, role, body):
    """JSON may spell half of a UTF-16 pair (`\\ud800`); the string it decodes to is no text
    (UTF-8 has no such character: RFC 7493 forbids it), and writing it to Redis raised."""
    caplog.set_level(logging.INFO)
    before = dump_keyspace(redis_client)
    response = client.post(path, data=body % LONE_SURROGATE,
                           headers=(auth(role) if role else {}) | JSON)
    assert_error(response, 400, "malformed_json")
    assert dump_keyspace(redis_client) == before
    assert "Traceback" not in caplog.text
    # Both halves of a pair are a character like any other (an emoji, as json.dumps sends it).
    if role == "signals":
        paired = client.post(path, data=body % "\\ud83d\\ude00", headers=auth(role) | JSON)
        assert paired.status_code == 200, paired.json


def test_a_lone_surrogate_is_400_on_every_route(app, client):
    for path, endpoint in _json_posts(app):
        response = client.post(path, data='{"x": "a\\udc00"}',
                               headers=_token_for(app, endpoint) | JSON)
        assert_error(response, 400, "malformed_json")


def _limit(app, endpoint: str) -> int:
    from agegate.api.body import body_limit

    with app.app_context():
        return body_limit(app, endpoint)


def test_100k_brackets_on_the_public_route_and_the_age_check_are_4xx_not_500(client, caplog):
    # Over these routes' size limits, so refused unread (413); never a 500 or a traceback.
    response = client.post("/v1/parent-requests", data=DEEP, headers=JSON)
    assert_error(response, 413, "payload_too_large")
    response = client.post("/v1/age-checks", data=DEEP, headers=auth("registration") | JSON)
    assert_error(response, 413, "payload_too_large")
    response = client.post("/v1/accounts/acc-1/signals", data=DEEP, headers=auth("signals") | JSON)
    assert_error(response, 400, "malformed_json")
    assert "Traceback" not in caplog.text


def test_nesting_just_past_the_limit_is_400_and_at_it_passes_to_validation(client):
    too_deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    response = client.post("/v1/accounts/acc-1/signals", data=too_deep,
                           headers=auth("signals") | JSON)
    assert_error(response, 400, "malformed_json")
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    response = client.post("/v1/accounts/acc-1/signals", data=at_limit,
                           headers=auth("signals") | JSON)
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(("path", "role", "limit"), [
    ("/v1/age-checks", "registration", AGE_CHECK_BYTES),
    ("/v1/parent-requests", None, PUBLIC_BYTES),
    ("/v1/parent-requests/x1/verification", None, PUBLIC_BYTES),
])
def test_a_200kb_body_on_a_small_route_is_413(client, path, role, limit):
    body = '{"pad": "' + "x" * (200 * 1024) + '"}'
    headers = (auth(role) if role else {}) | JSON
    assert_error(client.post(path, data=body, headers=headers), 413, "payload_too_large")
    # Just under the limit is read and judged on its content instead.
    body = '{"pad": "' + "x" * (limit - 20) + '"}'
    assert client.post(path, data=body, headers=headers).status_code == 422


def test_a_body_without_content_length_is_cut_off_at_the_limit(client):
    stream = io.BytesIO(b'{"pad": "' + b"x" * 64 * 1024 + b'"}')
    # As gunicorn passes a chunked body: terminated input, no Content-Length.
    response = client.post("/v1/age-checks", input_stream=stream,
                           environ_base={"wsgi.input_terminated": True},
                           headers=auth("registration") | JSON | {"Transfer-Encoding": "chunked"})
    assert_error(response, 413, "payload_too_large")


def test_signals_accept_the_contracts_largest_request(client):
    # 500 signals of 10,000 characters each (the contract's limit) fit the route's limit.
    signal = {"type": "message", "at": "2026-11-24T15:02:00Z", "text": "é" * 10_000}
    response = client.post("/v1/accounts/acc-big/signals", json={"signals": [signal] * 500},
                           headers=auth("signals"))
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    too_many = '{"signals": ["' + "x" * SIGNALS_BYTES + '"]}'
    assert_error(client.post("/v1/accounts/acc-big/signals", data=too_many,
                             headers=auth("signals") | JSON), 413, "payload_too_large")
