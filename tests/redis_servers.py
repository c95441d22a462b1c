"""Real redis-server processes on loopback TCP, for tests that put Redis in a failure state."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from agegate.storage.embedded import redis_server_binary
from tests.parents_helpers import free_port


@contextmanager
def redis_server(directory: Path, *args: str, binary: str | None = None) -> Iterator[str]:
    """Start a redis-server on a free loopback port with extra `args`; yield its URL."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    while port > 55_000:  # a cluster node also listens on port + 10,000
        port = free_port()
    process = subprocess.Popen(
        [binary or redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
         "--dir", str(directory), "--save", "", "--appendonly", "no", "--loglevel", "warning",
         "--logfile", str(directory / "redis.log"), *args],
        stdin=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(300):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.02)
        else:
            raise RuntimeError(f"redis-server did not start; see {directory}/redis.log")
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)
