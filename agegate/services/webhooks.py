"""Webhooks (Standard Webhooks) for downstream systems that cannot read the Redis Stream.

Admins register a URL and the event types it wants; the URL must pass the outbound policy
(agegate/outbound.py: https, public addresses only, or networks the operator allowed). `agegate
worker` (never a web request) reads the events stream with a consumer group of its own, queues
one delivery per event and subscribed webhook, acknowledges the events, and POSTs each delivery
signed with every live secret (agegate/webhooks.py). The URL is vetted again at every delivery
and the request goes to the address vetted, with one 5-second limit for all of it.

Deliveries run on the job's own threads, at most PER_WEBHOOK at a time for one webhook, so a
receiver that hangs holds up neither other receivers nor the worker's other jobs (signal ingest,
the outbox): `run_once` only starts deliveries, it never waits for a receiver. Every attempt,
whatever went wrong (a status, a timeout, a reply that is not HTTP, a reset), is counted and
logged with its reason class; a 2xx is delivered, anything else is retried with exponential
backoff (5 s, 10 s, 20 s, ... at most an hour apart) for 24 hours, then recorded as failed. A
worker that dies mid-delivery leaves the delivery claimed for LEASE seconds; then another worker
retries it (at-least-once: receivers deduplicate on webhook-id).
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import redis

from agegate.clock import Clock, iso, parse_iso
from agegate.crypto import new_id
from agegate.errors import Conflict, NotFound, ValidationFailed
from agegate.outbound import OutboundPolicy, Reply, UnsafeUrl
from agegate.secret_box import SecretBox
from agegate.services.audit import AuditTrail, transact
from agegate.storage import keys
from agegate.storage.events import EventStream
from agegate.storage.idempotency import IdempotencyKey, IdempotencyStore
from agegate.storage.keys import WEBHOOK_GROUP
from agegate.storage.webhooks import WebhookStore
from agegate.webhooks import EVENT_ID, SIGNATURE, TIMESTAMP, new_secret, sign

log = logging.getLogger("agegate.webhooks")

EVENT_TYPES = ("account.terminated", "account.deletion_requested", "account.deletion_completed",
               "account.restricted", "account.unrestricted", "account.reinstated",
               "content.removal_requested")
ROTATION_OVERLAP = timedelta(hours=24)
RETRY_FOR = timedelta(hours=24)
FIRST_RETRY_SECONDS = 5
MAX_RETRY_SECONDS = 3600
LEASE = timedelta(seconds=30)
# One delivery, all of it: resolving, connecting, TLS, sending, the reply's status and headers.
DELIVERY_SECONDS = 5.0
# An entry another worker read but left unacknowledged this long is taken over (it died).
STALE_MS = 30_000
EVENTS_PER_BATCH = 100
# Deliveries one worker process attempts at once, in all and to one webhook.
DELIVERY_THREADS = 8
PER_WEBHOOK = 2
TRIM_EVERY_SECONDS = 60
# How long one round waits for deliveries in flight before it returns to the worker's other jobs.
ROUND_WAIT = 0.1
# No live secret opens (sealed under a key no longer configured): never sent unsigned.
UNSIGNED = "unsigned"


def _stream_id(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def backoff(attempt: int) -> timedelta:
    """Wait after the `attempt`-th failed attempt: 5 s, 10 s, 20 s, ... at most an hour."""
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** (attempt - 1), MAX_RETRY_SECONDS))


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _host_port(netloc: str, scheme: str) -> tuple[str, int]:
    parsed = urlsplit(f"{scheme}://{netloc}")
    return (parsed.hostname or "").lower(), parsed.port or _default_port(scheme)


class WebhookService:
    """Register, list, rotate and delete webhooks; read their delivery log."""

    def __init__(self, client: redis.Redis, store: WebhookStore, events: EventStream,
                 box: SecretBox, audit: AuditTrail, clock: Clock,
                 policy: OutboundPolicy, idempotency: IdempotencyStore) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.idempotency = idempotency
        self.store = store
        self.events = events
        self.box = box
        self.audit = audit
        self.clock = clock
        self.policy = policy

    def check_url(self, url: str, service_host: str | None) -> None:
        """https (or allowed http) with a host, no credentials, not this service itself, and
        resolving only to addresses the outbound policy allows."""
        try:
            scheme, host, port, _ = self.policy.parse(url)
            if service_host and (
                    (host, port) == _host_port(service_host, "http")
                    or (host, port) == _host_port(service_host, "https")):
                raise UnsafeUrl("A webhook must not point at this service itself.")
            self.policy.vet(url, DELIVERY_SECONDS)
        except UnsafeUrl as problem:
            raise ValidationFailed(fields={"url": [str(problem)]}) from None

    def create(self, url: str, events: list[str], *, service_host: str | None,
               actor: str, idempotency: IdempotencyKey | None = None) -> dict[str, str]:
        """Register a webhook; the secret is returned this once, and again to a retry with
        the same Idempotency-Key (opened from the webhook's own sealed copy; a retry after the
        webhook was deleted or that secret rotated out is a 409: nothing is created twice)."""
        self.check_url(url, service_host)
        # Deliveries start with the events emitted from now on, even before a worker runs.
        self.events.ensure_group(WEBHOOK_GROUP)
        secret = new_secret()
        webhook: dict[str, Any] = {
            "webhook_id": new_id("wh"), "url": url, "events": sorted(set(events)),
            "created_at": iso(self.clock.now()),
            "secrets": [{"sealed": self.box.seal(secret), "until": None}]}

        def build(pipe: Any) -> dict[str, str]:
            if idempotency is not None:
                kept = self.idempotency.first(pipe, keys.WEBHOOK_SHARD, idempotency)
                if kept is not None:
                    return self._created(pipe, kept)
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.store.queue_write(pipe, webhook)
            if idempotency is not None:
                self.idempotency.queue_remember(pipe, keys.WEBHOOK_SHARD, idempotency, {
                    "webhook_id": webhook["webhook_id"],
                    "secret": self.idempotency.fingerprint(secret)})
            chain.append(pipe, actor=actor, action="webhook_created",
                         details={"webhook_id": webhook["webhook_id"],
                                  "events": webhook["events"]})
            return {"webhook_id": webhook["webhook_id"], "secret": secret}

        return transact(self.r, build, shard=keys.WEBHOOK_SHARD)

    def _created(self, pipe: Any, kept: dict[str, Any]) -> dict[str, str]:
        """A retried create's (or rotation's) first answer: the webhook, with the secret it
        handed out, if both are still there."""
        webhook = self.store.read(pipe, kept["webhook_id"])
        if webhook is None:
            raise Conflict("The webhook this Idempotency-Key was used for has been deleted; "
                           "send a new key.")
        for sealed in self._live(webhook, self.clock.now()):
            secret = self.box.open(sealed["sealed"])
            if secret and self.idempotency.fingerprint(secret) == kept["secret"]:
                return {"webhook_id": webhook["webhook_id"], "secret": secret}
        raise Conflict("The secret this Idempotency-Key handed out has been rotated out; the "
                       "current secret is not shown again.")

    def _get(self, webhook_id: str) -> dict[str, Any]:
        webhook = self.store.read(self.r, webhook_id)
        if webhook is None:
            raise NotFound("No such webhook.")
        return webhook

    def _live(self, webhook: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
        return [s for s in webhook["secrets"] if s["until"] is None
                or parse_iso(s["until"]) > now]

    def describe(self, webhook: dict[str, Any]) -> dict[str, Any]:
        live = self._live(webhook, self.clock.now())
        ends = [s["until"] for s in live if s["until"]]
        return {"webhook_id": webhook["webhook_id"], "url": webhook["url"],
                "events": webhook["events"], "created_at": webhook["created_at"],
                "live_secrets": len(live), "rotation_ends_at": min(ends) if ends else None}

    def listing(self) -> list[dict[str, Any]]:
        return [self.describe(w) for w in self.store.all()]

    def delete(self, webhook_id: str, *, actor: str) -> None:
        self._get(webhook_id)

        def build(pipe: Any) -> None:
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.store.queue_delete(pipe, webhook_id)
            chain.append(pipe, actor=actor, action="webhook_deleted",
                         details={"webhook_id": webhook_id})

        transact(self.r, build, shard=keys.WEBHOOK_SHARD)

    def rotate(self, webhook_id: str, *, actor: str,
               idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
        """A new secret; the current one keeps signing for 24 hours beside it. A retry with
        the same Idempotency-Key gets the same new secret and rotates nothing again."""
        secret = new_secret()

        def build(pipe: Any) -> dict[str, Any]:
            if idempotency is not None:
                kept = self.idempotency.first(pipe, keys.WEBHOOK_SHARD, idempotency)
                if kept is not None:
                    return {**self._created(pipe, kept),
                            "previous_secret_expires_at": kept["previous_until"]}
            webhook = self.store.read(pipe, webhook_id)
            if webhook is None:
                raise NotFound("No such webhook.")
            now = self.clock.now()
            until = iso(now + ROTATION_OVERLAP)
            previous = [{**s, "until": s["until"] or until} for s in self._live(webhook, now)]
            webhook["secrets"] = [{"sealed": self.box.seal(secret), "until": None}, *previous]
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.store.queue_write(pipe, webhook)
            if idempotency is not None:
                self.idempotency.queue_remember(pipe, keys.WEBHOOK_SHARD, idempotency, {
                    "webhook_id": webhook_id, "secret": self.idempotency.fingerprint(secret),
                    "previous_until": until if previous else None})
            chain.append(pipe, actor=actor, action="webhook_secret_rotated",
                         details={"webhook_id": webhook_id})
            return {"webhook_id": webhook_id, "secret": secret,
                    "previous_secret_expires_at": until if previous else None}

        return transact(self.r, build, keys.webhook(webhook_id))

    def deliveries(self, webhook_id: str, limit: int) -> list[dict[str, Any]]:
        self._get(webhook_id)
        return self.store.log(webhook_id, limit)

    def live_secrets(self, webhook: dict[str, Any], now: datetime) -> list[str]:
        """The secrets that sign now, newest first (ones no service key opens are skipped)."""
        opened = [self.box.open(s["sealed"]) for s in self._live(webhook, now)]
        return [s for s in opened if s]

    def reseal(self) -> int:
        """Seal again under the first AGEGATE_SECRET_KEY every webhook secret sealed under an
        older one (after a key rotation), so the old key can be dropped without leaving a
        webhook unable to sign; the number of webhooks changed."""
        changed = 0
        for webhook_id in [w["webhook_id"] for w in self.store.all()]:
            def build(pipe: Any, webhook_id: str = webhook_id) -> bool:
                webhook = self.store.read(pipe, webhook_id)
                if webhook is None:
                    return False
                fresh = [self.box.reseal(s["sealed"]) for s in webhook["secrets"]]
                if not any(fresh):
                    return False
                webhook["secrets"] = [{**s, "sealed": new or s["sealed"]}
                                      for s, new in zip(webhook["secrets"], fresh, strict=True)]
                pipe.multi()
                self.store.queue_write(pipe, webhook)
                return True

            changed += bool(transact(self.r, build, keys.webhook(webhook_id)))
        return changed


class WebhookDeliveryJob:
    """The `agegate worker` job: fan events out to deliveries, then start the due ones."""

    name = "webhooks"

    def __init__(self, client: redis.Redis, service: WebhookService, store: WebhookStore,
                 events: EventStream, clock: Clock) -> None:
        self.r: Any = client
        self.service = service
        self.store = store
        self.events = events
        self.clock = clock
        self._group_ready = False
        self._resealed = False
        self._pool = ThreadPoolExecutor(DELIVERY_THREADS, thread_name_prefix="agegate-webhook")
        self._lock = threading.Lock()
        self._running: dict[Future[None], str] = {}  # delivery -> its webhook id
        self._finished_count = 0
        self._next_trim = 0.0

    def run_once(self, consumer: str) -> int:
        """Fan out new events and start due deliveries; then give the deliveries in flight a
        moment (ROUND_WAIT) to finish. Counts events, deliveries started and deliveries
        finished since the last round, so a worker idles only once nothing moves."""
        if not self._resealed:
            # AGEGATE_SECRET_KEY is read at start-up: one pass per worker process suffices.
            resealed = self.service.reseal()
            if resealed:
                log.info("re-sealed the secrets of %d webhook(s) under the first key", resealed)
            self._resealed = True
        if time.monotonic() >= self._next_trim:
            # The events stream has no TTL (it carries consumer groups): trimmed by age here.
            self.events.trim(self.clock.now())
            self._next_trim = time.monotonic() + TRIM_EVERY_SECONDS
        handled = self.fan_out(consumer) + self.deliver()
        with self._lock:
            running = list(self._running)
        if running:
            wait(running, timeout=ROUND_WAIT, return_when=FIRST_COMPLETED)
        with self._lock:
            finished, self._finished_count = self._finished_count, 0
        return handled + finished

    def fan_out(self, consumer: str) -> int:
        """Queue one delivery per (event, subscribed webhook), then acknowledge the events (the
        events stream has its own slot, so not in the same MULTI). Delivery ids are (webhook,
        event) and one already queued is left alone, inside the MULTI (create-if-absent), so a
        batch fanned out again after a crash before its acknowledgement, or by two workers at
        once, never doubles a delivery nor resets its attempts."""
        if not self._group_ready:
            self.events.ensure_group(WEBHOOK_GROUP, self.store.cursor(self.r) or "$")
            self._group_ready = True
        # Should the stream (or the group) vanish, it is taken up again after the last event
        # fanned out, so what was emitted since is delivered and nothing twice.
        entries = self.events.read_group(WEBHOOK_GROUP, consumer, EVENTS_PER_BATCH, STALE_MS,
                                         recover_from=self.store.cursor(self.r) or "0")
        if not entries:
            return 0
        webhooks = self.store.all()
        now = self.clock.now()

        def build(pipe: Any) -> None:
            newest = max([self.store.cursor(pipe) or "0-0", *(e for e, _ in entries)],
                         key=_stream_id)
            pipe.multi()
            self.store.queue_cursor(pipe, newest)
            for entry_id, fields in entries:
                for webhook in webhooks:
                    if fields.get("type") not in webhook["events"]:
                        continue
                    body = json.dumps({"id": entry_id, **fields}, sort_keys=True,
                                      separators=(",", ":"))
                    self.store.queue_delivery(pipe, {
                        "delivery_id": f"{webhook['webhook_id']}.{entry_id}",
                        "webhook_id": webhook["webhook_id"], "event_id": entry_id,
                        "event_type": fields["type"], "body": body, "attempt": 0,
                        "status": "pending", "first_at": now.timestamp()}, now)

        transact(self.r, build, keys.webhook_cursor())
        self.events.ack(WEBHOOK_GROUP, [entry_id for entry_id, _ in entries])
        return len(entries)

    def deliver(self) -> int:
        """Start due deliveries on the job's threads, as many as are free and at most
        PER_WEBHOOK per webhook at once; returns how many were started (never waits)."""
        with self._lock:
            free = DELIVERY_THREADS - len(self._running)
            busy: dict[str, int] = {}
            for webhook_id in self._running.values():
                busy[webhook_id] = busy.get(webhook_id, 0) + 1
        if free <= 0:
            return 0
        now = self.clock.now()
        ids = self.store.claim_due(now, now + LEASE, free, PER_WEBHOOK, busy)
        for delivery_id in ids:
            with self._lock:
                # In the caller's context: the keyspace (live or test mode's) goes along.
                future = self._pool.submit(contextvars.copy_context().run,
                                           self._attempt_logged, delivery_id)
                self._running[future] = delivery_id.split(".", 1)[0]
            future.add_done_callback(self._finished)
        return len(ids)

    def _finished(self, future: Future[None]) -> None:
        with self._lock:
            self._running.pop(future, None)
            self._finished_count += 1

    def wait(self, timeout: float = DELIVERY_SECONDS + 5) -> bool:
        """Wait for the deliveries in flight (tests, shutdown); True when none is left."""
        with self._lock:
            running = list(self._running)
        done, pending = wait(running, timeout=timeout)
        return not pending

    def close(self) -> None:
        """Let the deliveries in flight finish (each within DELIVERY_SECONDS), start none."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _attempt_logged(self, delivery_id: str) -> None:
        try:
            self._attempt(delivery_id)
        except Exception as error:  # noqa: BLE001 - Redis trouble: the lease retries it
            log.error("webhook delivery not recorded: %s", type(error).__name__)

    def _attempt(self, delivery_id: str) -> None:
        raw = self.store.delivery(delivery_id)
        webhook = self.store.read(self.r, raw["webhook_id"]) if raw else None
        if not raw or webhook is None:
            def drop(pipe: Any) -> None:
                pipe.multi()
                self.store.queue_drop(pipe, delivery_id)

            transact(self.r, drop, shard=keys.WEBHOOK_SHARD)
            return
        now = self.clock.now()
        attempt = int(raw["attempt"]) + 1
        reply = self.send(webhook, raw["event_id"], raw["body"].encode(), now)
        next_at: datetime | None = None
        if reply.ok:
            outcome = "delivered"
        else:
            next_at = now + backoff(attempt)
            if next_at - datetime.fromtimestamp(float(raw["first_at"]), now.tzinfo) > RETRY_FOR:
                outcome, next_at = "failed", None
            else:
                outcome = "retrying"
        entry = {"delivery_id": delivery_id, "event_id": raw["event_id"],
                 "event_type": raw["event_type"], "attempt": attempt, "status": outcome,
                 "http_status": reply.status, "error": reply.reason, "at": iso(now),
                 "next_attempt_at": iso(next_at) if next_at else None}
        delivery = {"delivery_id": delivery_id, "webhook_id": raw["webhook_id"],
                    "attempt": attempt, "status": outcome}

        def build(pipe: Any) -> None:
            # The record may have reached the end of its retention, or its webhook been
            # deleted, while the POST was out: then the delivery is dropped, neither written
            # back as a hash without a TTL nor logged for a webhook that is gone.
            still = self.store.still_queued(pipe, delivery_id, raw["webhook_id"])
            pipe.multi()
            if still:
                self.store.queue_attempted(pipe, delivery, next_at, entry)
            else:
                self.store.queue_drop(pipe, delivery_id)

        transact(self.r, build, keys.webhook_delivery(delivery_id),
                 keys.webhook(raw["webhook_id"]))

    def send(self, webhook: dict[str, Any], event_id: str, body: bytes,
             now: datetime) -> Reply:
        """Sign and POST once (Standard Webhooks headers); never unsigned, never redirected,
        DELIVERY_SECONDS in all. Logs no URL or body."""
        secrets_ = self.service.live_secrets(webhook, now)
        if not secrets_:
            return Reply(None, UNSIGNED)
        # Signed with the wall clock: receivers compare it with theirs.
        stamp = int(time.time())
        headers = {"Content-Type": "application/json", EVENT_ID: event_id,
                   TIMESTAMP: str(stamp), SIGNATURE: sign(secrets_, event_id, stamp, body),
                   "User-Agent": "agegate-webhooks/2"}
        return self.service.policy.post(webhook["url"], body, headers, DELIVERY_SECONDS)
