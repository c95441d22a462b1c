"""Liveness, readiness and metrics (no auth; bind /metrics to an internal port in production)."""

from __future__ import annotations

from flask import Response
from flask_smorest import Blueprint

from agegate import metrics
from agegate.api import services
from agegate.auth import public
from agegate.schemas.service import HealthSchema, ReadinessSchema

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
    """Prometheus text exposition."""
    return Response(metrics.render(services().gauge_sources), mimetype=metrics.CONTENT_TYPE_LATEST)
