"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from agegate import create_app
from tests.conftest import auth, make_config


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_needs_redis_and_the_model(redis_url, redis_client, tmp_path, clock):
    missing_model = create_app(
        make_config(redis_url, tmp_path, model_dir=tmp_path / "no-model", load_model=True),
        clock=clock,
    )
    response = missing_model.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"redis": "ok", "model": "not_loaded"}
    no_redis = create_app(
        make_config(redis_url, tmp_path, redis_url="redis://127.0.0.1:1/0", load_model=False),
        clock=clock,
    )
    response = no_redis.test_client().get("/readyz")
    assert response.status_code == 503 and response.json["checks"]["redis"] == "unavailable"


def test_metrics_count_requests_by_route_template(client):
    client.post("/v1/age-checks", json={"date_of_birth": "2012-01-01", "country": "US"},
                headers=auth("registration"))
    text = client.get("/metrics").get_data(as_text=True)
    counter = 'agegate_http_requests_total{endpoint="age_checks.create_age_check",status="200"}'
    assert counter in text
    assert 'agegate_age_checks_total{decision="deny",reason="under_minimum_age"}' in text


def test_openapi_document_describes_the_routes(client):
    spec = client.get("/openapi.json").json
    assert spec["info"]["title"] == "agegate"
    operation = spec["paths"]["/v1/age-checks"]["post"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert {"200", "422"} <= set(operation["responses"])
    request_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema["$ref"].endswith("AgeCheckRequest")
    body = spec["components"]["schemas"]["AgeCheckRequest"]
    assert set(body["required"]) == {"date_of_birth", "country"}
    assert spec["components"]["schemas"]["Error"]["properties"]["error"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_docs_page_is_served(client):
    response = client.get("/docs")
    assert response.status_code == 200 and b"swagger" in response.data.lower()


def test_openapi_document_describes_the_age_signal_appeal_and_webhook_routes(client):
    spec = client.get("/openapi.json").json
    paths = spec["paths"]
    expected = {
        ("/v1/jurisdictions/{code}", "get"): {"200", "404"},
        ("/v1/accounts/{account_id}/age-signals", "post"): {"200", "409", "422"},
        ("/v1/age-signals/revocations", "post"): {"200", "422"},
        ("/v1/accounts/{account_id}/appeals", "post"): {"202", "404", "409", "422"},
        ("/v1/appeals/{appeal_id}", "get"): {"200", "404"},
        ("/v1/admin/webhooks", "post"): {"201", "422"},
        ("/v1/admin/webhooks", "get"): {"200"},
        ("/v1/admin/webhooks/{webhook_id}", "delete"): {"204", "404"},
        ("/v1/admin/webhooks/{webhook_id}/secret", "post"): {"200", "404"},
        ("/v1/admin/webhooks/{webhook_id}/deliveries", "get"): {"200", "404"},
    }
    for (path, method), statuses in expected.items():
        operation = paths[path][method]
        assert operation["security"] == [{"bearerAuth": []}], path
        assert statuses <= set(operation["responses"]), (path, operation["responses"].keys())
    age = spec["components"]["schemas"]["Account"]["properties"]["age"]
    assert {"$ref": "#/components/schemas/Age"} in age["anyOf"]
    assert "age_signal" in spec["components"]["schemas"]["Case"]["properties"]["kind"]["enum"]
