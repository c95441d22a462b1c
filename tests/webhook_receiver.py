"""Real receivers on loopback for webhook tests.

`receiver`: an HTTP server that records every request, verifies its signature with the
`standardwebhooks` package's own `Webhook(secret).verify` (as any receiver would), and refuses
the first delivery of each event. `raw_server`: a TCP server that answers with whatever a test
scripts (garbage, a reset, silence, one byte a second), for receivers that misbehave.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    event_id: str
    headers: dict[str, str]
    body: bytes
    status: int
    verified_with: list[str]


@dataclass
class Receiver:
    url: str
    port: int = 0
    secrets: list[str] = field(default_factory=list)
    refuse_first: bool = True
    always_fail: bool = False
    # Called while a delivery is in flight, before it is answered (what happens meanwhile).
    during: Callable[[], None] | None = None
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> dict[str, Received]:
        """Event id -> the request answered 2xx."""
        with self.lock:
            return {r.event_id: r for r in self.requests if 200 <= r.status < 300}

    def attempts(self, event_id: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.event_id == event_id]


def start_receiver(host: str = "127.0.0.1", port: int = 0,
                   wrap: Callable[[socket.socket], socket.socket] | None = None
                   ) -> tuple[Receiver, Callable[[], None]]:
    """A receiver and its stop function (`wrap` turns the listening socket into TLS)."""
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = dict(self.headers.items())
            event_id = self.headers.get("webhook-id", "")
            verified = []
            for secret in list(state.secrets):
                try:
                    Webhook(secret).verify(body, headers)
                    verified.append(secret)
                except WebhookVerificationError:
                    pass
            with state.lock:
                seen = any(r.event_id == event_id for r in state.requests)
                if state.always_fail or (state.refuse_first and not seen) or not verified:
                    status = 503
                else:
                    status = 200
                state.requests.append(Received(event_id, headers, body, status, verified))
            if state.during is not None:
                state.during()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    if wrap is not None:
        server.socket = wrap(server.socket)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.port = server.server_port
    state.url = f"http://{host}:{server.server_port}/hooks/agegate"

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return state, stop


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state, stop = start_receiver()
    yield state
    stop()


# -- receivers that misbehave ---------------------------------------------------------------
def _read_request(conn: socket.socket) -> None:
    """Read the request, its body included: a socket closed with unread data sends a reset
    rather than a FIN (httpx writes the headers and the body separately, so the body may
    still be on its way once the headers are in)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    left = (int(length.group(1)) if length else 0) - len(body)
    while left > 0:
        chunk = conn.recv(min(left, 65536))
        if not chunk:
            return
        left -= len(chunk)


def garbage(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")


def long_line(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 " + b"x" * 100_000 + b"\r\n\r\n")


def too_many_headers(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 200 + b"\r\n")


def closes_without_reply(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)


def resets(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    # SO_LINGER 0: close() sends a RST instead of a FIN.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def hangs(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    stop.wait(30)


def dribbles(conn: socket.socket, stop: threading.Event) -> None:
    """A valid reply, one byte a second: each read is quick, the whole is not."""
    _read_request(conn)
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
        if stop.wait(1):
            return
        try:
            conn.sendall(bytes([byte]))
        except OSError:
            return


def slow_body(conn: socket.socket, stop: threading.Event) -> None:
    """A 200 at once, then a body that never finishes (one byte a second)."""
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    while not stop.wait(1):
        try:
            conn.sendall(b"x")
        except OSError:
            return


def redirects(conn: socket.socket, stop: threading.Event) -> None:
    _read_request(conn)
    conn.sendall(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:6379/\r\n"
                 b"Content-Length: 0\r\n\r\n")


@dataclass
class RawServer:
    url: str
    connections: int = 0


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, threading.Event], None]],
                                      RawServer]]:
    """Start TCP servers on loopback that run a scripted behaviour per connection."""
    stop = threading.Event()
    listeners: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(behaviour: Callable[[socket.socket, threading.Event], None]) -> RawServer:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.2)
        listeners.append(listener)
        server = RawServer(url=f"http://127.0.0.1:{listener.getsockname()[1]}/hook")

        def handle(conn: socket.socket) -> None:
            with conn:
                try:
                    behaviour(conn, stop)
                except OSError:
                    pass

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                server.connections += 1
                conn.settimeout(30)
                worker = threading.Thread(target=handle, args=(conn,), daemon=True)
                worker.start()
                threads.append(worker)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return server

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    for listener in listeners:
        listener.close()
