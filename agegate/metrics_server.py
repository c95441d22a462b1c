"""/metrics on its own port (AGEGATE_METRICS_PORT), so the API's port can face the world while
Prometheus scrapes an internal one. Runs as a thread beside `agegate serve`, or in the gunicorn
master, which reads every worker's counters (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from agegate import metrics


def metrics_wsgi(gauge_sources: list[Any]) -> Any:
    """A WSGI app answering GET /metrics and nothing else."""

    @Request.application  # type: ignore[arg-type]
    def application(request: Request) -> Response:
        if request.path != "/metrics" or request.method not in ("GET", "HEAD"):
            return Response("not found\n", status=404, mimetype="text/plain")
        return Response(metrics.render(gauge_sources), mimetype=metrics.CONTENT_TYPE_LATEST)

    return application


def start_metrics_server(gauge_sources: list[Any], port: int,
                         host: str = "0.0.0.0") -> BaseWSGIServer:
    """Serve /metrics on host:port from a daemon thread; returns the server (shutdown() it)."""
    server = make_server(host, port, metrics_wsgi(gauge_sources), threaded=True)
    threading.Thread(target=server.serve_forever, name="agegate-metrics", daemon=True).start()
    return server


def start_from_env() -> BaseWSGIServer | None:
    """For the gunicorn master: the service container without the model, and its server."""
    from agegate.config import development_defaults, from_env
    from agegate.extensions import Agegate

    config = from_env()
    port = config.metrics_port
    if not port:
        return None
    if config.development:
        config = development_defaults(config)
    state = Agegate(config.validate())
    return start_metrics_server(state.gauge_sources, port)
