"""Issue 15: `agegate serve` stops its embedded redis-server on SIGTERM and SIGINT, and starts
cleanly after a crash left one running. A real `agegate serve` subprocess each time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from tests.conftest import API_KEYS, SECRET
from tests.parents_helpers import free_port

AGEGATE = Path(sys.executable).with_name("agegate")


def _serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(AGEGATE_ENV="development", AGEGATE_DATA_DIR=str(data_dir),
               AGEGATE_SECRET_KEY=SECRET,
               AGEGATE_API_KEYS=",".join(f"{k.name}:{k.role}:{k.token}" for k in API_KEYS))
    log = data_dir / f"serve-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen([str(AGEGATE), "serve", "--port", str(port)], env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if process.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return process, base
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("agegate serve did not become ready")


def _call(data_dir: Path, *command: str):
    """One command to the embedded server over its socket."""
    client = redis.Redis(unix_socket_path=str(data_dir / "redis" / "redis.sock"),
                         socket_timeout=2)
    try:
        return client.execute_command(*command)
    finally:
        client.close()


def _redis_pid(data_dir: Path) -> int:
    return int(_call(data_dir, "INFO", "server")["process_id"])


def _gone(pid: int) -> bool:
    """True once the process has exited (a zombie awaiting its reaper counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_its_embedded_redis_on_a_signal(tmp_path, signum):
    process, _ = _serve(tmp_path)
    pid = _redis_pid(tmp_path)
    try:
        process.send_signal(signum)
        assert process.wait(timeout=20) == 0
        assert _wait_gone(pid), "the embedded redis-server outlived agegate serve"
        assert not (tmp_path / "redis" / "redis.sock").exists()
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()


def test_serve_starts_cleanly_after_a_crash_left_redis_running(tmp_path):
    process, _ = _serve(tmp_path)
    orphan = _redis_pid(tmp_path)
    try:
        _call(tmp_path, "SET", "kept", "yes", "EX", "3600")
        process.kill()  # a crash: no chance to stop anything
        process.wait(timeout=10)
        assert not _gone(orphan) and _call(tmp_path, "PING")  # left running
        again, base = _serve(tmp_path)
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
                assert response.status == 200
            assert _call(tmp_path, "GET", "kept") == b"yes"  # same data, same server
            again.send_signal(signal.SIGTERM)
            assert again.wait(timeout=20) == 0
            assert _wait_gone(orphan), "the adopted redis-server was not stopped"
        finally:
            if again.poll() is None:
                again.kill()
    finally:
        if not _gone(orphan):
            os.kill(orphan, signal.SIGKILL)
