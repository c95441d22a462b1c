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
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import TOKENS, cluster_mode
from tests.faults import ReplyLosingProxy
from tests.parents_helpers import gunicorn, healthy, http
from tests.test_signal_stream import start_worker, stop, wait_until

pytestmark = pytest.mark.skipif(cluster_mode(), reason="one proxy in front of one Redis")
EMAIL = "kid@example.com"


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
        # One worker, to kill; the proxy is one Redis, never a cluster node.
        with gunicorn(proxy.url, tmp_path, "-w", "1",
                      AGEGATE_REDIS_CLUSTER="false") as (base, master):
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
            wait_until(lambda: len(_workers(master)) == 1 and healthy(base))
            status, body = _post(base, "/v1/accounts/acc-kill/termination", "admin",
                                 {"reason": "confirmed minor"})
            assert (status, body["deletion_id"]) == (202, deletion_id)
            time.sleep(0.5)  # what the retry might have queued has been relayed by now
            state.outbox.drain_all()
            assert len(_terminated_events(redis_client)) == 1
    finally:
        proxy.close()
