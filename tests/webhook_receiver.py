"""A real HTTP receiver on loopback for webhook tests: records every request, verifies its
signature with agegate.webhooks.verify, and refuses the first delivery of each event."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agegate.webhooks import InvalidSignature, verify


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
    secrets: list[str] = field(default_factory=list)
    refuse_first: bool = True
    always_fail: bool = False
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> dict[str, Received]:
        """Event id -> the request answered 2xx."""
        with self.lock:
            return {r.event_id: r for r in self.requests if 200 <= r.status < 300}

    def attempts(self, event_id: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.event_id == event_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = dict(self.headers.items())
            event_id = headers.get("Agegate-Event-Id", "")
            verified = []
            for secret in list(state.secrets):
                try:
                    verify(secret, headers, body)
                    verified.append(secret)
                except InvalidSignature:
                    pass
            with state.lock:
                seen = any(r.event_id == event_id for r in state.requests)
                if state.always_fail or (state.refuse_first and not seen) or not verified:
                    status = 503
                else:
                    status = 200
                state.requests.append(Received(event_id, headers, body, status, verified))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hooks/agegate"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
