"""`agegate worker`: the background process that runs the service's jobs.

A job is any object with a `name` and `run_once(consumer) -> int` that does one bounded batch of
work and says how many items it handled (0: nothing to do). The worker loops over its jobs, sleeps
briefly when all of them were idle, and stops between batches on SIGTERM or SIGINT, so a batch
that was started is finished (or, for the stream, left pending for another worker) rather than
cut in half. Jobs are wired by the service container (`Agegate.worker_jobs`): the worker is just
another caller of the same services as the HTTP routes.

Test mode (API.md): a job runs in the live keyspace unless it is wrapped in `InKeyspace`, which
runs it in another (storage/keyspace.py): the container wires a second, separate instance of
each job the test keyspace needs (its outbox, its webhook deliveries).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from typing import Protocol

from agegate.storage import keyspace

log = logging.getLogger("agegate.worker")


class Job(Protocol):
    """One kind of background work."""

    name: str

    def run_once(self, consumer: str) -> int:
        """Do one bounded batch of work as `consumer`; return how many items were handled."""
        ...


class InKeyspace:
    """A job that works in one keyspace, e.g. the test keyspace's own outbox."""

    def __init__(self, space: keyspace.Keyspace, job: Job) -> None:
        self.space = space
        self.job = job
        self.name = f"{job.name}:{space.name}"

    def run_once(self, consumer: str) -> int:
        with keyspace.using(self.space):
            return self.job.run_once(consumer)


class Worker:
    """Runs jobs in turn until stopped."""

    def __init__(self, jobs: Sequence[Job], consumer: str, idle_seconds: float = 0.5) -> None:
        self.jobs = list(jobs)
        self.consumer = consumer
        self.idle_seconds = idle_seconds
        self.stopping = threading.Event()

    def run_round(self) -> int:
        """One batch of every job; the number of items handled in all."""
        handled = 0
        for job in self.jobs:
            if self.stopping.is_set():
                break
            handled += job.run_once(self.consumer)
        return handled

    def run(self) -> None:
        """Loop until `stop()`; a job that fails is logged and retried on the next round."""
        log.info("worker %s started: %s", self.consumer, ", ".join(j.name for j in self.jobs))
        while not self.stopping.is_set():
            try:
                handled = self.run_round()
            except Exception as error:  # noqa: BLE001 - one failed batch must not end the worker
                log.error("worker round failed: %s", type(error).__name__)
                handled = 0
            if not handled:
                self.stopping.wait(self.idle_seconds)
        log.info("worker %s stopped", self.consumer)

    def stop(self, *_: object) -> None:
        """Finish the current batch, then return from `run()`."""
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM (process managers) and SIGINT (a terminal) stop the worker cleanly."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
