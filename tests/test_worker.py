"""`agegate worker`: a separate process that runs the container's jobs and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from agegate.worker import Worker
from tests.cli_env import service_env


class Countdown:
    """A job with `n` items of work, one per batch."""

    name = "countdown"

    def __init__(self, n: int) -> None:
        self.left = n
        self.consumers: list[str] = []

    def run_once(self, consumer: str) -> int:
        self.consumers.append(consumer)
        if self.left == 0:
            return 0
        self.left -= 1
        return 1


def test_a_round_runs_every_job_and_counts_what_they_handled():
    busy, idle = Countdown(3), Countdown(0)
    worker = Worker([busy, idle], "w-1")
    assert worker.run_round() == 1
    assert busy.consumers == idle.consumers == ["w-1"]


def test_a_stopped_worker_starts_no_further_batch():
    job = Countdown(10)
    worker = Worker([job], "w-1")
    worker.stop()
    worker.run()
    assert job.left == 10


def test_the_worker_command_stops_on_sigterm(redis_url, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "agegate.cli", "worker", "--consumer", "w-test"],
        env={**os.environ, **service_env(redis_url, tmp_path)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "agegate worker w-test" in first
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "Traceback" not in output
