"""Every route declares who may call it; the check fails closed."""

from __future__ import annotations

from agegate.auth import PUBLIC, required_roles
from agegate.config import ROLES
from tests.conftest import auth

# Public by contract (API.md "Service"), plus the parents' endpoints when present.
PUBLIC_PATH_PREFIXES = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs",
                        "/v1/parent-requests", "/v1/content-removals/notice", "/console")


def test_every_route_has_an_access_rule(app):
    missing = []
    for rule in app.url_map.iter_rules():
        needed = required_roles(app, rule.endpoint)
        if needed is None:
            missing.append(rule.rule)
        elif needed is PUBLIC:
            assert rule.rule.startswith(PUBLIC_PATH_PREFIXES) or rule.endpoint == "static", (
                f"{rule.rule} is public but not meant to be"
            )
        else:
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
