"""Lua scripts on a connection of their own, for the hottest calls."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from typing import Any

import redis
from hiredis import pack_command
from redis.exceptions import NoScriptError


class DirectScript:
    """Run one Lua script with EVALSHA on a connection this process keeps for it.

    redis-py 8 spends ~80 us of CPU on each command's pool and observability bookkeeping, as
    much as the rest of a registration age check; a plain connection skips that. It also never
    resends: the client's retry policy would run a script again after a timeout, and a script
    that appends to the audit chain must not run twice. An error reaches the caller, whose
    chain writer then starts a fresh chain. Connection health checks still apply.
    """

    def __init__(self, client: redis.Redis, script: str) -> None:
        self.pool = client.connection_pool
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()
        self.lock = threading.Lock()
        self._connection: Any = None
        self._pid = 0

    def _connect(self) -> Any:
        if self._connection is None or self._pid != os.getpid():
            # A forked child must not share its parent's socket.
            self._connection = self.pool.connection_class(**self.pool.connection_kwargs)
            self._pid = os.getpid()
        return self._connection

    def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script's reply; NOSCRIPT (a restarted or flushed Redis) loads it with EVAL."""
        with self.lock:
            connection = self._connect()
            try:
                # hiredis packs strings and numbers as redis-py's packer would, without its
                # per-argument Python pass (~40 us for the age check's ~30 arguments).
                connection.send_packed_command(
                    [pack_command(("EVALSHA", self.sha, len(keys), *keys, *args))])
                return connection.read_response()
            except NoScriptError:
                connection.send_packed_command(
                    [pack_command(("EVAL", self.script, len(keys), *keys, *args))])
                return connection.read_response()

    def close(self) -> None:
        """Drop the connection (the next call opens a new one)."""
        with self.lock:
            if self._connection is not None:
                self._connection.disconnect()
                self._connection = None
