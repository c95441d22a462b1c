"""Every failure answers in the contract's one error shape, never with a trace."""

from __future__ import annotations

import pytest

from agegate import create_app
from agegate.auth import public
from tests.conftest import auth, make_config

URL = "/v1/age-checks"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.json
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body["error"]


def test_malformed_json_is_400(client):
    response = client.post(URL, data='{"date_of_birth": "2000-01-01",',
                           headers=auth("registration") | {"Content-Type": "application/json"})
    assert_error(response, 400, "malformed_json")


def test_non_json_content_type_is_400(client):
    response = client.post(URL, data="date_of_birth=2000-01-01&country=US",
                           headers=auth("registration")
                           | {"Content-Type": "application/x-www-form-urlencoded"})
    error = assert_error(response, 400, "malformed_json")
    assert "2000-01-01" not in error["message"]


def test_json_array_body_is_422(client):
    response = client.post(URL, json=[1, 2], headers=auth("registration"))
    assert_error(response, 422, "validation_error")


def test_unknown_field_is_422_naming_it(client):
    response = client.post(URL, json={"date_of_birth": "2000-01-01", "country": "US",
                                      "countyr": "US"}, headers=auth("registration"))
    error = assert_error(response, 422, "validation_error")
    assert error["fields"] == {"countyr": ["Unknown field."]}


def test_huge_body_is_413(client):
    filler = "x" * (9 * 1024 * 1024)
    response = client.post(URL, data='{"pad": "' + filler + '"}',
                           headers=auth("registration") | {"Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")


def test_missing_and_unknown_tokens_are_401(client):
    body = {"date_of_birth": "2000-01-01", "country": "US"}
    assert_error(client.post(URL, json=body), 401, "unauthorized")
    assert_error(client.post(URL, json=body, headers={"Authorization": "Bearer nope"}), 401,
                 "unauthorized")
    assert_error(client.post(URL, json=body, headers={"Authorization": "Basic abc"}), 401,
                 "unauthorized")


def test_wrong_role_is_403(client):
    response = client.post(URL, json={"date_of_birth": "2000-01-01", "country": "US"},
                           headers=auth("signals"))
    assert_error(response, 403, "forbidden")


def test_unknown_path_is_404_and_wrong_method_405(client):
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    response = client.delete(URL, headers=auth("registration"))
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_redis_down_is_503(redis_url, redis_client, tmp_path, clock):
    app = create_app(make_config(redis_url, tmp_path, redis_url="redis://127.0.0.1:1/0",
                                 load_model=False), clock=clock)
    response = app.test_client().post(URL, json={"date_of_birth": "2000-01-01", "country": "US"},
                                      headers=auth("registration"))
    assert_error(response, 503, "storage_unavailable")
    assert response.headers["Retry-After"]


def test_unexpected_error_is_a_generic_500_without_the_exception_text(app, caplog):
    @app.route("/boom")
    @public
    def boom():
        leaked = "kid" + "@example.com"  # built at run time: only the exception text holds it
        raise RuntimeError(f"secret {leaked} 2011-01-01")

    response = app.test_client().get("/boom")
    error = assert_error(response, 500, "internal_error")
    assert "kid@example.com" not in error["message"]
    assert all("kid@example.com" not in r.getMessage() for r in caplog.records)
    assert any("RuntimeError" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
def test_wrong_method_on_service_routes_is_405(client, path):
    assert_error(client.post(path, json={}), 405, "method_not_allowed")


def test_an_unknown_body_field_is_422_on_every_post_route_also_those_taking_no_body(app, client):
    """API.md: unknown fields in a request body are a 422 (usually a caller's typo). A route
    that takes no body is no exception: `{"case_id": ...}` posted to the claims route would
    otherwise lease the top case, not the one the caller named."""
    from agegate.auth import PUBLIC, required_roles

    routes, accepted = 0, []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.endpoint.startswith(("console.", "static")):
            continue
        path = rule.rule
        for argument in rule.arguments:
            path = path.replace(f"<string:{argument}>", "x1")
        needed = required_roles(app, rule.endpoint)
        headers = {} if needed is PUBLIC else auth(
            "admin" if {"reviewer", "admin"} & needed else sorted(needed)[0])
        response = client.post(path, json={"no_such_field": 1}, headers=headers)
        routes += 1
        if response.status_code != 422:
            accepted.append((path, response.status_code))
            continue
        error = assert_error(response, 422, "validation_error")
        assert error["fields"].get("no_such_field") == ["Unknown field."], (path, error)
    assert routes >= 20 and accepted == []
