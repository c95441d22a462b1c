"""Issue 15: Swagger UI served by the service, /metrics on its own port, access logs by route
template, the console's sign-in brake counted atomically, outbox mail expiring on its day."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from agegate import create_app
from agegate.api.service import SWAGGER_UI_DIST
from agegate.metrics_server import start_metrics_server
from tests.conftest import API_KEYS, MODEL_DIR, SECRET, auth, make_config
from tests.console_helpers import csrf_from
from tests.parents_helpers import REPO, free_port, http

PARENT = {"parent_name": "Pat", "parent_email": "first.parent@example.org",
          "child": {"account_id": "kid-1"}, "request_type": "access", "attestation": True}


def test_docs_load_nothing_from_another_origin(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "cdn" not in html.lower() and "https://" not in html and "http://" not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {"/docs/assets/swagger-ui.css", "/docs/assets/swagger-ui-bundle.js",
            "/docs/assets/swagger-ui-standalone-preset.js"} <= set(assets)
    for asset in assets:
        with client.get(asset) as response:
            assert response.status_code == 200 and len(response.data) > 1000, asset
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    # The packaged copy is the pinned one, and only its assets are served.
    assert (SWAGGER_UI_DIST / "VERSION").read_text().strip() == "v5.34.0"
    assert client.get("/docs/assets/LICENSE").status_code == 404
    assert client.get("/docs/assets/../../__init__.py").status_code == 404


def test_metrics_on_their_own_port(redis_url, redis_client, tmp_path, clock):
    port = free_port()
    app = create_app(make_config(redis_url, tmp_path, metrics_port=port), clock=clock)
    client = app.test_client()
    client.post("/v1/age-checks", json={"date_of_birth": "2012-01-01", "country": "US"},
                headers=auth("registration"))
    assert client.get("/metrics").status_code == 404  # not on the API's port
    server = start_metrics_server(app.extensions["agegate"].gauge_sources, port, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert 'endpoint="age_checks.create_age_check"' in text
        assert "agegate_review_queue_open" in text  # gauges read from Redis
        status, _, _ = http("GET", f"http://127.0.0.1:{port}/v1/age-checks")
        assert status == 404
    finally:
        server.shutdown()
        server.server_close()


def test_gunicorn_logs_route_templates_and_serves_metrics_apart(redis_url, redis_client,
                                                                 tmp_path):
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "AGEGATE_SECRET_KEY": SECRET,
           "AGEGATE_API_KEYS": ",".join(f"{k.name}:{k.role}:{k.token}" for k in API_KEYS),
           "AGEGATE_ENV": "test", "AGEGATE_MODEL_DIR": str(MODEL_DIR),
           "AGEGATE_DATA_DIR": str(tmp_path / "data"), "AGEGATE_BIND": f"127.0.0.1:{port}",
           "AGEGATE_METRICS_PORT": str(metrics_port), "WEB_CONCURRENCY": "2",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise AssertionError(log_path.read_text())
            try:
                if http("GET", f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        token = "tok-SECRETSTATUS-123"
        http("GET", f"{base}/v1/accounts/acct-SECRET-42", headers=auth("reviewer"))
        http("GET", f"{base}/v1/parent-requests/preq_x?status_token={token}")
        assert http("GET", f"{base}/metrics")[0] == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                    timeout=5) as response:
            text = response.read().decode()
        assert 'endpoint="accounts.get_account",status="404"' in text  # the workers' counts
    finally:
        process.terminate()
        process.wait(timeout=20)
    lines = [line for line in log_path.read_text().splitlines() if "agegate.access" in line]
    assert any("GET /v1/accounts/<string:account_id> 404" in line for line in lines), lines
    assert any("GET /v1/parent-requests/<string:request_id> " in line for line in lines), lines
    for line in lines:
        assert "SECRET" not in line and "127.0.0.1" not in line and "preq_x" not in line


def _attempt(app, token: str) -> int:
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    return client.post("/console/login", data={"token": token, "csrf_token": csrf_from(page)},
                       environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code


def test_parallel_wrong_sign_ins_get_exactly_the_allowed_tries(app):
    # The brake counts one wrong token from one address (test_console_auth shows another token
    # is not locked by it): 36 parallel tries of it get exactly the 10 allowed, however they race.
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda i: _attempt(app, "wrong-token-0123456789"), range(36)))
    assert statuses.count(401) == 10, statuses
    assert statuses.count(429) == 26
    assert _attempt(app, "another-wrong-token-0123") == 401


def test_an_outbox_mail_expires_on_its_own_day(client, redis_client):
    assert client.post("/v1/parent-requests", json=PARENT).status_code == 202
    holding = [k for k in redis_client.scan_iter("agegate:*")
               if "first.parent@example.org" in str(redis_client.dump(k))]
    assert len(holding) == 1
    redis_client.expire(holding[0], 600)  # as if queued almost a day ago
    second = PARENT | {"parent_email": "second.parent@example.org"}
    assert client.post("/v1/parent-requests", json=second).status_code == 202
    # Queuing another mail did not extend the first one's life.
    assert 0 < redis_client.ttl(holding[0]) <= 600
    outbox = client.get("/v1/admin/outbox", headers=auth("admin")).get_json()["messages"]
    assert [m["to"] for m in outbox] == ["second.parent@example.org", "first.parent@example.org"]
    redis_client.delete(holding[0])  # its day came
    outbox = client.get("/v1/admin/outbox", headers=auth("admin")).get_json()["messages"]
    assert [m["to"] for m in outbox] == ["second.parent@example.org"]


def test_the_startup_heap_is_kept_out_of_garbage_collections(app):
    """Long-running entry points freeze what start-up built (gunicorn's post_worker_init,
    `agegate worker`, `agegate serve`): the loaded model is then never walked by a collection."""
    import gc

    from agegate import freeze_startup_heap

    vocabulary = app.extensions["agegate"].model._vocab_ids
    assert gc.is_tracked(vocabulary)
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 0
        assert all(obj is not vocabulary for obj in gc.get_objects())
    finally:
        gc.unfreeze()  # the rest of the test session collects as usual
