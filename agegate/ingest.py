"""The signal stream's door: `agegate worker` applies stream entries as POST .../signals does.

One rule whichever door a message came in by: each entry is validated by the HTTP route's
schema and scored by the same `AccountService.record_signals`, so stream and HTTP scores are
equal for the same messages. An entry is acknowledged only once its effects are written; one
that can never be applied (unparsable, invalid, or refused for good, like a terminated
account) is dead-lettered with the same error body the HTTP route would have answered.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from marshmallow import ValidationError

from agegate.api.body import check_json_shape
from agegate.errors import AgegateError, MalformedRequest, ValidationFailed
from agegate.schemas.accounts import SignalStreamEntrySchema
from agegate.services.accounts import AccountService, SignalEntry
from agegate.services.ingest import IngestService
from agegate.storage.signal_stream import Entry

log = logging.getLogger("agegate.ingest")

# The audit trail's actor for everything the stream applies.
ACTOR = "signal-stream"
# One instance, as flask-smorest keeps one per route: building a schema costs ~3x a load.
ENTRY_SCHEMA = SignalStreamEntrySchema()


def parse(fields: dict[str, str]) -> dict[str, Any]:
    """An entry's fields as the validated {"account_id", "signals", "id"?}; raises
    MalformedRequest or ValidationFailed, never echoing the entry's text."""
    raw = dict(fields)
    if "signals" in raw:
        try:
            # The HTTP body guard's checks first (nesting, huge integers, lone surrogates), so
            # the stream refuses what the route refuses instead of failing the batch on it.
            check_json_shape(raw["signals"].encode("utf-8"))
            raw["signals"] = json.loads(raw["signals"])
        except (ValueError, MalformedRequest):
            raise MalformedRequest("The entry's signals field is not valid JSON.") from None
    try:
        return ENTRY_SCHEMA.load(raw)
    except ValidationError as error:
        messages = error.normalized_messages()
        raise ValidationFailed(fields={name: _flat(value) for name, value in messages.items()}) \
            from None


def _flat(messages: Any) -> list[str]:
    """marshmallow's nested messages ({"0": {"text": [...]}}) as flat strings."""
    if isinstance(messages, list):
        return [str(m) for m in messages]
    if isinstance(messages, dict):
        return [f"{key}.{text}" for key, value in messages.items() for text in _flat(value)]
    return [str(messages)]


def error_body(error: AgegateError) -> dict[str, Any]:
    """The error as the HTTP route would have answered it (API.md's one error shape)."""
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.fields:
        body["fields"] = error.fields
    return body


class SignalStreamJob:
    """A worker job: one batch of the signal stream through the accounts service."""

    name = "signal-stream"

    def __init__(self, ingest: IngestService, accounts: AccountService) -> None:
        self.ingest = ingest
        self.accounts = accounts

    def run_once(self, consumer: str) -> int:
        """Apply one batch as `consumer` through one `record_signals` call; settle what was
        applied or dead-lettered."""
        if self.accounts.model() is None:
            return 0  # cannot score: leave every entry in the stream for a worker that can
        entries, worn = self.ingest.next_batch(consumer)
        settled: list[str] = []
        # Entries without the platform's id are marked applied under their stream id, which
        # comes back only while pending: once settled, their markers need to live only minutes.
        spent: list[tuple[str, str]] = []
        try:
            for entry in worn:
                self.ingest.dead_letter(entry, {
                    "code": "delivery_limit",
                    "message": f"Not applied after {entry.deliveries} deliveries."})
                settled.append(entry.entry_id)
            parsed: list[tuple[Entry, dict[str, Any], str]] = []
            for entry in entries:
                try:
                    data = parse(entry.fields)
                except AgegateError as error:
                    self._dead_letter(entry, error)
                    settled.append(entry.entry_id)
                    continue
                # The platform's idempotency key, else the entry itself: a redelivery after a
                # crash is then recognised as well as a producer's retry.
                key = f"id:{data['id']}" if "id" in data else f"stream:{entry.entry_id}"
                parsed.append((entry, data, key))
            if parsed:
                outcomes = self.accounts.record_signals(
                    [SignalEntry(data["account_id"], data["signals"], key)
                     for _, data, key in parsed], actor=ACTOR)
                for (entry, data, key), outcome in zip(parsed, outcomes, strict=True):
                    if self._settles(entry, outcome):
                        settled.append(entry.entry_id)
                        if "id" not in data and not isinstance(outcome, Exception):
                            spent.append((data["account_id"], key))
        except AgegateError as error:
            if error.status < 500:
                raise
            # Transient (the model not loaded, the store too contended): a later delivery.
        finally:
            # Everything settled so far, even when Redis failed part-way: the rest stays
            # pending and another round (or worker) takes it over after the claim time.
            self.ingest.settle(settled)
        # Only after the settle; if this is never reached, the markers keep their day.
        self.accounts.settle_entries(spent)
        return len(entries) + len(worn)

    def _settles(self, entry: Entry, outcome: dict[str, Any] | Exception) -> bool:
        """Whether an entry's outcome settles it (applied, a replay, or dead-lettered here);
        False leaves it pending for a later delivery."""
        if not isinstance(outcome, Exception):
            return True
        if isinstance(outcome, AgegateError):
            if outcome.status >= 500:
                return False  # transient: the store too contended
            # Refused for good (a terminated account, a parent's objection): retrying cannot
            # help, and the entry must not be lost.
            self._dead_letter(entry, outcome)
            return True
        if isinstance(outcome, redis.RedisError):
            raise outcome  # Redis is unreachable: stop the batch; the entry stays pending
        log.error("signal stream entry %s failed: %s", entry.entry_id, type(outcome).__name__)
        return False

    def _dead_letter(self, entry: Entry, error: AgegateError) -> None:
        """Keep an entry that cannot be applied with the error the HTTP route would answer."""
        self.ingest.dead_letter(entry, error_body(error))
        log.info("signal stream entry %s dead-lettered: %s", entry.entry_id, error.code)
