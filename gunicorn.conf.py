"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py wsgi:app`."""

import multiprocessing
import os
import tempfile

# Must be set before any worker imports prometheus_client, so counters are shared across workers.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="agegate-metrics-")

bind = os.environ.get("AGEGATE_BIND", "0.0.0.0:8000")
# No gunicorn access log: its lines would hold the client address and the raw path (account ids,
# status tokens). The app logs each request by route template instead (logger agegate.access).
accesslog = None
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
errorlog = "-"

_embedded = None


def on_starting(server):
    """Without REDIS_URL, the master starts one embedded redis-server that every worker shares."""
    global _embedded
    if not os.environ.get("REDIS_URL"):
        from agegate.storage.embedded import EmbeddedRedis

        data_dir = os.environ.get("AGEGATE_DATA_DIR", os.path.join(os.getcwd(), "var"))
        _embedded = EmbeddedRedis(os.path.join(data_dir, "redis"))
        os.environ["REDIS_URL"] = _embedded.start()
        server.log.info("embedded redis-server at %s", os.environ["REDIS_URL"])


def when_ready(server):
    """With AGEGATE_METRICS_PORT, the master serves /metrics there for every worker."""
    global _metrics
    if os.environ.get("AGEGATE_METRICS_PORT"):
        from agegate.metrics_server import start_from_env

        _metrics = start_from_env()
        server.log.info("metrics on port %s", os.environ["AGEGATE_METRICS_PORT"])


_metrics = None


def post_worker_init(worker):
    """The worker has loaded wsgi:app (and its model): keep the garbage collector off it."""
    from agegate import freeze_startup_heap

    freeze_startup_heap()


def child_exit(server, worker):
    """Drop a dead worker's metric files."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Stop the embedded redis-server (it flushes its AOF on SIGTERM)."""
    if _embedded is not None:
        _embedded.stop()
