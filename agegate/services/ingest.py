"""The signal stream's rules: which entries a worker takes next, and when one is given up on."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import Metric

from agegate.metrics import gauge
from agegate.storage.signal_stream import Entry, SignalStreamStore

# Consumer names idle this long with nothing pending are forgotten (a stopped worker's), so the
# `consumers` figure counts the workers of the last hour; checked at most once a minute.
CONSUMER_IDLE_MS = 3_600_000
PRUNE_EVERY_SECONDS = 60.0

# An entry delivered this often without being settled (its workers died or kept failing on it)
# is dead-lettered instead of being retried forever.
MAX_DELIVERIES = 5


class IngestService:
    """Batches of stream entries for workers, and the stream's figures for operators."""

    def __init__(self, store: SignalStreamStore, batch: int, claim_idle_seconds: int,
                 block_ms: int = 200) -> None:
        self.store = store
        self.batch = batch
        self.claim_idle_ms = claim_idle_seconds * 1000
        self.block_ms = block_ms
        self._pruned_at = 0.0

    def next_batch(self, consumer: str) -> tuple[list[Entry], list[Entry]]:
        """(entries to apply, entries delivered too often): a dead worker's stale pending
        entries first, so a crash delays them by the claim time only, then new ones."""
        self.store.ensure_group()
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self._pruned_at = time.monotonic()
            self.store.prune_consumers(CONSUMER_IDLE_MS)
        entries = self.store.claim_stale(consumer, self.claim_idle_ms, self.batch)
        if not entries:
            entries = self.store.read_new(consumer, self.batch, self.block_ms)
        worn = [e for e in entries if e.deliveries > MAX_DELIVERIES]
        return [e for e in entries if e.deliveries <= MAX_DELIVERIES], worn

    def settle(self, entry_ids: list[str]) -> None:
        """Acknowledge (and drop) entries whose effects are written or that were dead-lettered."""
        self.store.settle(entry_ids)

    def dead_letter(self, entry: Entry, error: dict[str, Any]) -> None:
        """Keep an entry that cannot be applied, with why, for an operator."""
        self.store.dead_letter(entry, error)

    def status(self) -> dict[str, Any]:
        """The figures of GET /v1/admin/ingest."""
        return self.store.status()

    def gauges(self) -> Iterable[Metric]:
        """The stream's backlog for /metrics, read from Redis at scrape time."""
        figures = self.status()
        yield gauge("agegate_signal_stream_lag", "Signal stream entries not yet delivered to "
                    "a worker", figures["lag"])
        yield gauge("agegate_signal_stream_pending", "Signal stream entries delivered and not "
                    "yet acknowledged", figures["pending"])
        yield gauge("agegate_signal_stream_dead", "Entries in the signal stream's dead-letter "
                    "stream", figures["dead"])
