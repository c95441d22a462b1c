"""Issue 21, item 14: `agegate worker` runs beside `agegate serve` in the default local run (no
REDIS_URL, no secret, no tokens): the same embedded redis-server, the same dev secret. Real
processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

from tests.parents_helpers import free_port

AGEGATE = Path(sys.executable).with_name("agegate")


def _bare_env(data_dir: Path) -> dict[str, str]:
    """The environment of someone who just ran the README's first command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGEGATE_")
           and k != "REDIS_URL"}
    env["AGEGATE_DATA_DIR"] = str(data_dir)
    return env


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_worker_runs_on_the_default_local_run_beside_serve(tmp_path):
    port = free_port()
    serve_log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen([str(AGEGATE), "serve", "--port", str(port)],
                             env=_bare_env(tmp_path), stdout=serve_log, stderr=subprocess.STDOUT)
    worker = None
    try:
        for _ in range(600):
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        worker = subprocess.Popen([str(AGEGATE), "worker", "--consumer", "w-local"],
                                  env=_bare_env(tmp_path), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        assert worker.stdout is not None
        first = worker.stdout.readline()
        assert "agegate worker w-local" in first, first + worker.stdout.read()
        # It reads the signal stream of serve's embedded Redis: a bad entry is dead-lettered.
        local = redis.Redis(unix_socket_path=str(tmp_path / "redis" / "redis.sock"),
                            decode_responses=True)
        local.xadd("agegate:signals", {"account_id": "acc-local", "signals": json.dumps(
            [{"type": "bogus"}])})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not local.exists("agegate:signals:dead"):
            time.sleep(0.2)
        assert local.xlen("agegate:signals:dead") == 1
        # One redis-server for both: the worker did not start a second one.
        assert local.info("clients")["connected_clients"] >= 2
        local.close()
    finally:
        if worker is not None:
            _stop(worker)
            output = ""
            if worker.stdout is not None:
                output = worker.stdout.read()
                worker.stdout.close()
            assert "Traceback" not in output, output
        _stop(serve)
        serve_log.close()


def test_docker_compose_runs_a_worker_with_the_apis_environment():
    compose = (Path(__file__).resolve().parent.parent / "docker-compose.yml").read_text()
    worker = compose.split("\n  worker:\n", 1)[1].split("\nvolumes:", 1)[0]
    assert 'command: ["agegate", "worker"]' in worker
    assert "environment: *agegate-env" in worker
    assert "<<: *agegate-env" in compose.split("\n  agegate:\n", 1)[1].split("\n  worker:", 1)[0]
