"""Issue 24: a web worker SIGKILLed in the middle of a write loses nothing and doubles nothing.

Real processes: gunicorn (one worker) talks to Redis through a proxy (tests/faults.py) that lets
the termination's EXEC through and holds its reply; the worker is SIGKILLed right then, after
its unit of work was applied and before its follow-ups (the identity blocks and the events,
which leave the unit's slot through its shard's outbox). A real `agegate worker` applies them;
the platform's retry answers the same deletion, and nothing was emitted twice. (A stream worker
killed mid-batch: tests/test_signal_stream.py, test_a_worker_killed_mid_stream_loses_nothing.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import API_KEYS, MODEL_DIR, SECRET, TOKENS, cluster_mode
from tests.faults import ReplyLosingProxy
from tests.parents_helpers import free_port, http
from tests.test_signal_stream import start_worker, stop, wait_until

pytestmark = pytest.mark.skipif(cluster_mode(), reason="one proxy in front of one Redis")
REPO = Path(__file__).resolve().parent.parent
EMAIL = "kid@example.com"


@contextmanager
def gunicorn(redis_url: str, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`gunicorn -w 1` against `redis_url`; yields (base URL, the master process)."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "AGEGATE_SECRET_KEY": SECRET,
           "AGEGATE_API_KEYS": ",".join(f"{k.name}:{k.role}:{k.token}" for k in API_KEYS),
           "AGEGATE_ENV": "test", "AGEGATE_MODEL_DIR": str(MODEL_DIR),
           "AGEGATE_DATA_DIR": str(tmp_path / "data")}
    env.pop("AGEGATE_REDIS_CLUSTER", None)
    with open(tmp_path / "gunicorn.log", "wb") as log:
        master = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
             "--graceful-timeout", "5", "tests.parents_wsgi:app"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _up(base, master, tmp_path), timeout=60)
            yield base, master
        finally:
            master.terminate()
            try:
                master.wait(timeout=15)
            except subprocess.TimeoutExpired:
                master.kill()
                master.wait()


def _up(base: str, master: subprocess.Popen, tmp_path: Path) -> bool:
    if master.poll() is not None:
        raise AssertionError((tmp_path / "gunicorn.log").read_text())
    try:
        return http("GET", f"{base}/healthz")[0] == 200
    except OSError:
        return False


def _workers(master: subprocess.Popen) -> list[int]:
    """The pids of the master's children (its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master.pid:
                found.append(int(entry.name))
    return found


def _post(base: str, path: str, role: str, body: dict) -> tuple[int, dict]:
    status, _, raw = http("POST", f"{base}{path}", json.dumps(body).encode(),
                          {"Authorization": f"Bearer {TOKENS[role]}",
                           "Content-Type": "application/json"})
    return status, json.loads(raw or b"{}")


def _terminated_events(redis_client) -> list[dict]:
    return [fields for _, fields in redis_client.xrange("agegate:events")
            if fields.get("type") == "account.terminated"]


def test_a_web_worker_killed_mid_write_has_its_follow_ups_done_by_the_worker(
        app, redis_client, redis_url, tmp_path):
    state = app.extensions["agegate"]
    lookups = state.age_checks.lookups({"email": EMAIL})
    proxy = ReplyLosingProxy(redis_url)
    try:
        with gunicorn(proxy.url, tmp_path) as (base, master):
            # The account's age check links its email, which its termination then blocks.
            status, body = _post(base, "/v1/age-checks", "registration", {
                "date_of_birth": "2000-01-01", "country": "US", "account_id": "acc-kill",
                "email": EMAIL})
            assert (status, body["decision"]) == (200, "allow")
            (victim,) = _workers(master)
            proxy.hold_exec_reply()
            answers: list[object] = []

            def terminate() -> None:
                try:
                    answers.append(_post(base, "/v1/accounts/acc-kill/termination", "admin",
                                         {"reason": "confirmed minor"}))
                except OSError as error:  # the worker died: no answer
                    answers.append(error)

            caller = threading.Thread(target=terminate)
            caller.start()
            assert proxy.held.wait(30), "the termination's EXEC never came"
            os.kill(victim, signal.SIGKILL)
            caller.join(30)
            assert answers and not isinstance(answers[0], tuple), answers  # never acknowledged

            # Applied: the account is terminated. Not followed up: no block, no event yet.
            deletion_id = state.accounts.accounts.overview(
                state.hasher.account("acc-kill"))[2]
            assert deletion_id is not None
            assert state.identities.blocks(lookups) == (False, False)
            assert _terminated_events(redis_client) == []
            assert state.outbox.pending()

            # `agegate worker` (a real one) applies what the killed worker left behind.
            worker = start_worker(redis_url, tmp_path, "w-repair")
            try:
                wait_until(lambda: not state.outbox.pending(), timeout=60)
            finally:
                output = stop(worker)
            assert worker.returncode == 0, output
            assert state.identities.blocks(lookups)[0] is True  # identity-blocked
            assert len(_terminated_events(redis_client)) == 1

            # The platform retries (it never heard back): the same deletion, nothing twice.
            wait_until(lambda: len(_workers(master)) == 1 and _up(base, master, tmp_path))
            status, body = _post(base, "/v1/accounts/acc-kill/termination", "admin",
                                 {"reason": "confirmed minor"})
            assert (status, body["deletion_id"]) == (202, deletion_id)
            time.sleep(0.5)  # what the retry might have queued has been relayed by now
            state.outbox.drain_all()
            assert len(_terminated_events(redis_client)) == 1
    finally:
        proxy.close()
