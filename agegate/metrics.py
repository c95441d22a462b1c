"""Prometheus metrics: request counters in-process (multi-process aware under gunicorn) and
gauges read from Redis at scrape time, so every worker reports the same queue figures.

Test mode (API.md): a test token's requests count only in `agegate_test_requests_total`. The
request counters below see that from the keyspace; every counter a service increments is a
`LiveOnly` (define new ones with `live_counter`), which counts nothing in the test keyspace;
the gauges are read at scrape time, a public request, so from the live keyspace only.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from agegate.storage import keyspace
from agegate.storage.keyspace import LiveOnly

REQUESTS = Counter(
    "agegate_http_requests_total", "HTTP requests by route and status", ["endpoint", "status"]
)
LATENCY = Histogram(
    "agegate_http_request_duration_seconds",
    "HTTP request latency by route",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
# One line per request: method, route template, status, time. Never the raw path (account ids,
# status tokens), the query string or the client address.
ACCESS_LOG = logging.getLogger("agegate.access")

TEST_REQUESTS = Counter(
    "agegate_test_requests_total", "HTTP requests made with test tokens, by route and status",
    ["endpoint", "status"],
)


def live_counter(name: str, help_text: str, labels: Iterable[str] = ()) -> LiveOnly:
    """A service's counter: what test tokens do never shows in it."""
    return LiveOnly(Counter(name, help_text, list(labels)))


AGE_CHECKS = live_counter("agegate_age_checks_total", "Age-check decisions",
                          ["decision", "reason"])
CREDENTIAL_CHECKS = live_counter("agegate_credential_checks_total",
                                 "Digital-credential answers by result and rejection reason",
                                 ["result", "reason"])
STATE_RESETS = live_counter(
    "agegate_account_state_resets_total",
    "Account states whose text evidence was reset: another text model (a full retrain) wrote it",
)

GaugeSource = Callable[[], Iterable[Metric]]


def gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    """One unlabelled gauge family."""
    family = GaugeMetricFamily(name, help_text)
    family.add_metric([], value)
    return family


class _RedisGauges:
    def __init__(self, sources: list[GaugeSource]) -> None:
        self.sources = sources

    def collect(self) -> Iterable[Metric]:
        for source in self.sources:
            yield from source()


def render(sources: list[GaugeSource]) -> bytes:
    """The text exposition: process counters plus the Redis-derived gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        base = CollectorRegistry()
        MultiProcessCollector(base)
    else:
        base = REGISTRY
    extra = CollectorRegistry()
    extra.register(_RedisGauges(sources))  # type: ignore[arg-type]
    return generate_latest(base) + generate_latest(extra)


def init_app(app: Flask) -> None:
    """Time every request and count it by route template (never by raw path: ids are data)."""

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _record(response: Response) -> Response:
        endpoint = request.endpoint or "unmatched"
        started = g.get("started")
        elapsed = time.perf_counter() - started if started is not None else 0.0
        if not keyspace.current().live:
            TEST_REQUESTS.labels(endpoint, str(response.status_code)).inc()
        else:
            REQUESTS.labels(endpoint, str(response.status_code)).inc()
            if started is not None:
                LATENCY.labels(endpoint).observe(elapsed)
        route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        ACCESS_LOG.info("%s %s %s %.1fms", request.method, route, response.status_code,
                        elapsed * 1000)
        return response


__all__ = ["AGE_CHECKS", "CONTENT_TYPE_LATEST", "LiveOnly", "gauge", "init_app", "live_counter",
           "render"]
