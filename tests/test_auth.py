"""Every route declares who may call it; the check fails closed."""

from __future__ import annotations

from agegate.auth import PUBLIC, required_roles
from agegate.config import ROLES
from tests.conftest import auth

# Every route that needs no bearer token, exactly (method, rule): public by contract (API.md
# "Service", "Parent requests", the removal notice), or the console's pages, which check their
# own signed session instead (tests/test_console_auth.py). A new public route must be added here
# on purpose; a reviewer route under a public prefix fails the test.
PUBLIC_ROUTES = {
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json"),
    ("GET", "/docs"), ("GET", "/docs/assets/<path:filename>"), ("GET", "/static/<path:filename>"),
    ("GET", "/v1/content-removals/notice"),
    ("POST", "/v1/parent-requests"),
    ("POST", "/v1/parent-requests/<string:request_id>/verification"),
    ("GET", "/v1/parent-requests/<string:request_id>"),
    ("GET", "/v1/parent-requests/<string:request_id>/export"),
    ("GET", "/console/"), ("GET", "/console/login"), ("POST", "/console/login"),
    ("POST", "/console/logout"), ("GET", "/console/queue"), ("GET", "/console/cases/<case_id>"),
    ("POST", "/console/cases/<case_id>/claim"), ("POST", "/console/cases/<case_id>/decision"),
    ("POST", "/console/claim-next"), ("GET", "/console/deletions"), ("GET", "/console/model"),
    ("GET", "/console/parent-requests"), ("GET", "/console/static/<path:filename>"),
}


def _public_routes(app) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            if required_roles(app, rule.endpoint) is PUBLIC
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_exactly_the_listed_routes_are_public(app):
    assert _public_routes(app) == PUBLIC_ROUTES


def test_a_reviewer_route_under_a_public_prefix_is_caught(app):
    from agegate.auth import public

    @app.route("/v1/parent-requests/<string:request_id>/notes", methods=["GET"])
    @public
    def notes(request_id):
        return {}

    assert _public_routes(app) - PUBLIC_ROUTES == {
        ("GET", "/v1/parent-requests/<string:request_id>/notes")}


def test_every_route_has_an_access_rule(app):
    missing = []
    for rule in app.url_map.iter_rules():
        needed = required_roles(app, rule.endpoint)
        if needed is None:
            missing.append(rule.rule)
        elif needed is not PUBLIC:
            assert needed <= set(ROLES), f"{rule.rule} names an unknown role"
    assert missing == [], f"routes without @roles/@public: {missing}"


def test_a_route_without_a_rule_is_refused(app):
    @app.route("/v1/forgotten")
    def forgotten():
        return {"leaked": True}

    response = app.test_client().get("/v1/forgotten", headers=auth("admin"))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"


def test_rotated_tokens_for_one_role_both_work(client):
    body = {"date_of_birth": "2000-01-01", "country": "US"}
    for role in ("reviewer", "reviewer2"):
        response = client.get("/v1/audit", headers=auth(role))
        assert response.status_code in (403, 404)  # reviewers may not read the audit trail
    assert client.post("/v1/age-checks", json=body, headers=auth("registration")).status_code == 200
