"""Liveness, readiness and metrics (no auth; bind /metrics to an internal port in production)."""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Flask, Response, request, send_from_directory
from flask_smorest import Blueprint

from agegate import metrics
from agegate.api import services
from agegate.auth import public
from agegate.errors import NotFound
from agegate.schemas.service import HealthSchema, ReadinessSchema

# Swagger UI's own files, as packaged (and pinned) by flask-swagger-ui: /docs is where admins
# paste tokens, so its scripts come from this service, never from a CDN.
SWAGGER_UI_DIST = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
SWAGGER_UI_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                     "favicon-16x16.png", "favicon-32x32.png")
SWAGGER_UI_URL = "/docs/assets/"

blp = Blueprint("service", __name__, description="Health, readiness and metrics")


@blp.route("/healthz", methods=["GET"])
@blp.response(200, HealthSchema)
@public
def healthz():
    """The process is alive."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, ReadinessSchema)
@blp.alt_response(503, schema=ReadinessSchema, description="Redis or the model is not ready")
@public
def readyz():
    """Ready when Redis answers and the model is loaded."""
    checks = services().readiness()
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503


@blp.route("/metrics", methods=["GET"])
@blp.doc(responses={"200": {"description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}}}})
@public
def prometheus_metrics():
    """Prometheus text exposition (404 here when AGEGATE_METRICS_PORT serves it instead)."""
    if services().config.metrics_port:
        raise NotFound()
    return Response(metrics.render(services().gauge_sources), mimetype=metrics.CONTENT_TYPE_LATEST)


@public
def swagger_ui_asset(filename: str):
    """One of Swagger UI's files, from the packaged copy."""
    if filename not in SWAGGER_UI_ASSETS:
        raise NotFound()
    return send_from_directory(SWAGGER_UI_DIST, filename, max_age=86_400)


def init_docs(app: Flask) -> None:
    """Serve Swagger UI's assets here (outside the OpenAPI document: they are not the API) and
    keep /docs from loading anything from elsewhere."""
    app.add_url_rule(f"{SWAGGER_UI_URL}<path:filename>", "swagger_ui_asset", swagger_ui_asset)

    @app.after_request
    def _docs_policy(response: Response) -> Response:
        if request.endpoint == "api-docs.openapi_swagger_ui":
            # The page's one inline script starts the UI; everything else is same-origin.
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
        return response
