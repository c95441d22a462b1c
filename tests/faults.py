"""A real network fault between the service and Redis: a TCP proxy that can lose EXEC replies.

The proxy forwards bytes both ways. Armed with `lose_exec_replies(n)`, the next n connections
that send an EXEC have it delivered to Redis, wait until Redis has answered, and are then cut
without passing the answer on: the transaction was applied, the client never heard so.
Armed with `hold_exec_reply()`, the next connection that sends an EXEC has it applied and then
hears nothing more, with `held` set: the moment to kill the process that sent it.
Armed with `lose_replies_to(command, n)`, the same as `lose_exec_replies(n)` for another command
(e.g. b"XGROUP"): a process that crashed right after sending it.
Armed with `cut_before(command, n)`, the next n connections that send that command (e.g.
b"EXPIRE") pass on only what came before it and are cut: a process that died mid-send.
Armed with `delay_exec()` (or `delay_command(command)`), the next connection that sends an
EXEC (or that command) has it kept back (not yet sent to Redis, `delayed` set) until
`release()`: a slow client, overtaken by another.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from urllib.parse import urlsplit

EXEC = b"*1\r\n$4\r\nEXEC\r\n"


def _upstream(url: str) -> socket.socket:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(parts.path)
    else:
        sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379))
    return sock


class ReplyLosingProxy:
    """Listen on 127.0.0.1 (a free port) and forward every connection to `upstream_url`."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lost = 0  # EXEC replies lost so far
        self._to_lose = 0
        self._lose_marker = EXEC
        self._to_cut = 0
        self._cut_marker = b""
        self._hold = False
        self._delay = False
        self._delay_marker = EXEC
        self.delayed = threading.Event()  # an EXEC is being kept back
        self._released = threading.Event()
        self.held = threading.Event()  # an EXEC was applied and its reply is being held
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def lose_exec_replies(self, count: int) -> None:
        self.lose_replies_to(EXEC, count)

    def lose_replies_to(self, command: bytes, count: int) -> None:
        with self._lock:
            self._to_lose = count
            self._lose_marker = command

    def cut_before(self, command: bytes, count: int) -> None:
        with self._lock:
            self._to_cut = count
            self._cut_marker = b"\r\n" + command + b"\r\n"

    def _take_cut(self, data: bytes) -> int:
        """Where to cut `data` (-1: not this time)."""
        with self._lock:
            at = data.find(self._cut_marker) if self._to_cut > 0 else -1
            if at < 0:
                return -1
            self._to_cut -= 1
        return data.rfind(b"*", 0, at)  # the start of that command's array

    def delay_exec(self) -> None:
        self.delay_command(EXEC)

    def delay_command(self, command: bytes) -> None:
        with self._lock:
            self._delay = True
            self._delay_marker = command
            self.delayed.clear()
            self._released.clear()

    def release(self) -> None:
        self._released.set()

    def _take_delay(self) -> bool:
        with self._lock:
            if not self._delay:
                return False
            self._delay = False
            return True

    def hold_exec_reply(self) -> None:
        with self._lock:
            self._hold = True
            self.held.clear()

    def _take_hold(self) -> bool:
        with self._lock:
            if not self._hold:
                return False
            self._hold = False
            return True

    def _take_one(self) -> bool:
        with self._lock:
            if self._to_lose <= 0:
                return False
            self._to_lose -= 1
            self.lost += 1
            return True

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        server = _upstream(self.upstream_url)
        try:
            while True:
                readable, _, _ = select.select([client, server], [], [], 30)
                if not readable:
                    return
                if client in readable:
                    data = client.recv(65536)
                    if not data:
                        return
                    cut = self._take_cut(data)
                    if cut >= 0:
                        server.sendall(data[:cut])
                        self._drain(server)
                        return
                    if self._delay_marker in data and self._take_delay():
                        self.delayed.set()
                        self._released.wait(30)
                    server.sendall(data)
                    if self._lose_marker in data and self._take_one():
                        self._drain(server)
                        return  # cut the client off: Redis applied it, the reply is lost
                    if EXEC in data and self._take_hold():
                        self._drain(server)
                        self.held.set()
                        # Say nothing more until the client goes away (it is being killed).
                        while client.recv(65536):
                            pass
                        return
                if server in readable:
                    data = server.recv(65536)
                    if not data:
                        return
                    client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            server.close()

    @staticmethod
    def _drain(server: socket.socket) -> None:
        """Read (and drop) what Redis answers until it has been quiet for a moment."""
        server.settimeout(0.3)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                if not server.recv(65536):
                    return
            except TimeoutError:
                return

    def close(self) -> None:
        self._closed = True
        self.listener.close()
