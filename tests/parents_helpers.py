"""Fixtures for parent requests: a real SMTP server (aiosmtpd) and a real gunicorn with two
workers (`gunicorn`, which tests/test_process_kills.py runs with one); helpers that read the code
out of the received mail."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import API_KEYS, MODEL_DIR, SECRET

REPO = Path(__file__).resolve().parent.parent
CODE = re.compile(r"enter this code: (\d{6,})")


def free_port() -> int:
    """A free TCP port on the loopback address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        """Store the message (recipients and parsed body)."""
        parsed = message_from_bytes(envelope.content)
        self.messages.append({
            "to": ",".join(envelope.rcpt_tos),
            "subject": str(parsed["Subject"]),
            "body": parsed.get_payload(decode=True).decode(),
        })
        return "250 Message accepted"

    def code_for(self, email: str) -> str:
        """The last code mailed to `email`."""
        for message in reversed(self.messages):
            if message["to"] == email:
                match = CODE.search(message["body"])
                assert match, "no code in the mail"
                return match.group(1)
        raise AssertionError(f"no mail to {email}")


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, Inbox]]:
    """A real SMTP server on 127.0.0.1; yields (smtp_url, inbox)."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", inbox
    finally:
        controller.stop()


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one real HTTP request."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


@contextmanager
def gunicorn(redis_url: str, tmp_path: Path, *args: str,
             **env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`python -m gunicorn *args tests.parents_wsgi:app` on a free loopback port against
    `redis_url`, with the tests' secret, tokens and model (and `env` on top); yields (base URL,
    the master process) once /healthz answers, and stops it afterwards. Its output goes to
    tmp_path/gunicorn.log, shown if it dies before it answers."""
    port = free_port()
    full_env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "AGEGATE_SECRET_KEY": SECRET,
        "AGEGATE_API_KEYS": ",".join(f"{k.name}:{k.role}:{k.token}" for k in API_KEYS),
        "AGEGATE_ENV": "test",
        "AGEGATE_MODEL_DIR": str(MODEL_DIR),
        "AGEGATE_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    full_env.pop("AGEGATE_SMTP_URL", None)
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        master = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "--graceful-timeout",
             "5", *args, "tests.parents_wsgi:app"],
            cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not healthy(base):
            if master.poll() is not None:
                raise AssertionError(log_path.read_text())
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        yield base, master
    finally:
        master.terminate()
        try:
            master.wait(timeout=15)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()


def healthy(base: str) -> bool:
    try:
        return http("GET", f"{base}/healthz")[0] == 200
    except OSError:
        return False


@pytest.fixture
def gunicorn_server(redis_url: str, redis_client, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`gunicorn -w 2` on a free loopback port against the test Redis; yields (base URL, log).

    The access log holds only the worker pid and the status of each request."""
    access_log = tmp_path / "access.log"
    with gunicorn(redis_url, tmp_path, "-w", "2", "--access-logfile", str(access_log),
                  "--access-logformat", "%(p)s %(s)s",
                  AGEGATE_PARENT_REQUEST_RATE_LIMIT="3 per hour") as (base, _):
        yield base, access_log
