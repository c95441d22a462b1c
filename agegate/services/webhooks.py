"""Signed webhooks for downstream systems that cannot read the Redis Stream.

Admins register a URL and the event types it wants; `agegate worker` (never a web request) reads
the events stream with a consumer group of its own, queues one delivery per event and subscribed
webhook in the same MULTI as it acknowledges the events (so a crash loses none and duplicates
none), and POSTs each delivery signed with every live secret (agegate/webhooks.py). A 2xx is
delivered; anything else is retried with exponential backoff (5 s, 10 s, 20 s, ... at most an
hour apart) for 24 hours, then recorded as failed. A worker that dies mid-delivery leaves the
delivery claimed for LEASE seconds; then another worker retries it (at-least-once: receivers
deduplicate on Agegate-Event-Id).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import redis

from agegate.clock import Clock, iso, parse_iso
from agegate.crypto import new_id
from agegate.errors import NotFound, ValidationFailed
from agegate.secret_box import SecretBox
from agegate.services.audit import AuditTrail, transact
from agegate.storage import keys
from agegate.storage.events import EventStream
from agegate.storage.keys import WEBHOOK_GROUP
from agegate.storage.webhooks import WebhookStore
from agegate.webhooks import EVENT_ID, SIGNATURE, TIMESTAMP, sign

log = logging.getLogger("agegate.webhooks")

EVENT_TYPES = ("account.terminated", "account.deletion_requested", "account.deletion_completed",
               "account.restricted", "account.unrestricted", "account.reinstated",
               "content.removal_requested")
ROTATION_OVERLAP = timedelta(hours=24)
RETRY_FOR = timedelta(hours=24)
FIRST_RETRY_SECONDS = 5
MAX_RETRY_SECONDS = 3600
LEASE = timedelta(seconds=30)
HTTP_TIMEOUT_SECONDS = 5
# An entry another worker read but left unacknowledged this long is taken over (it died).
STALE_MS = 30_000
EVENTS_PER_BATCH = 100
DELIVERIES_PER_BATCH = 20


def backoff(attempt: int) -> timedelta:
    """Wait after the `attempt`-th failed attempt: 5 s, 10 s, 20 s, ... at most an hour."""
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** (attempt - 1), MAX_RETRY_SECONDS))


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _host_port(netloc: str, scheme: str) -> tuple[str, int]:
    parsed = urlsplit(f"{scheme}://{netloc}")
    return (parsed.hostname or "").lower(), parsed.port or _default_port(scheme)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is not a delivery: report the 3xx and retry, never follow it elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookService:
    """Register, list, rotate and delete webhooks; read their delivery log."""

    def __init__(self, client: redis.Redis, store: WebhookStore, events: EventStream,
                 box: SecretBox, audit: AuditTrail, clock: Clock) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.store = store
        self.events = events
        self.box = box
        self.audit = audit
        self.clock = clock

    def check_url(self, url: str, service_host: str | None) -> None:
        """http(s) with a host, no credentials, and not this service itself."""
        parts = urlsplit(url)
        problem = None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "Use an http:// or https:// URL with a host."
        elif parts.username or parts.password:
            problem = "Put no credentials in the URL; verify the signature instead."
        else:
            try:
                target = (parts.hostname.lower(), parts.port or _default_port(parts.scheme))
            except ValueError:
                target = None
                problem = "The port is not valid."
            if target is not None and service_host and (
                    target == _host_port(service_host, "http")
                    or target == _host_port(service_host, "https")):
                problem = "A webhook must not point at this service itself."
        if problem:
            raise ValidationFailed(fields={"url": [problem]})

    def create(self, url: str, events: list[str], *, service_host: str | None,
               actor: str) -> dict[str, str]:
        """Register a webhook; the secret is returned this once."""
        self.check_url(url, service_host)
        # Deliveries start with the events emitted from now on, even before a worker runs.
        self.events.ensure_group(WEBHOOK_GROUP)
        secret = "whsec_" + secrets.token_urlsafe(32)
        webhook: dict[str, Any] = {
            "webhook_id": new_id("wh"), "url": url, "events": sorted(set(events)),
            "created_at": iso(self.clock.now()),
            "secrets": [{"sealed": self.box.seal(secret), "until": None}]}

        def build(pipe: Any) -> None:
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.store.queue_write(pipe, webhook)
            chain.append(pipe, actor=actor, action="webhook_created",
                         details={"webhook_id": webhook["webhook_id"],
                                  "events": webhook["events"]})

        transact(self.r, build)
        return {"webhook_id": webhook["webhook_id"], "secret": secret}

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

        transact(self.r, build)

    def rotate(self, webhook_id: str, *, actor: str) -> dict[str, Any]:
        """A new secret; the current one keeps signing for 24 hours beside it."""
        secret = "whsec_" + secrets.token_urlsafe(32)

        def build(pipe: Any) -> dict[str, Any]:
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


class WebhookDeliveryJob:
    """The `agegate worker` job: fan events out to deliveries, then attempt the due ones."""

    name = "webhooks"

    def __init__(self, client: redis.Redis, service: WebhookService, store: WebhookStore,
                 events: EventStream, clock: Clock) -> None:
        self.r: Any = client
        self.service = service
        self.store = store
        self.events = events
        self.clock = clock
        self._group_ready = False

    def run_once(self, consumer: str) -> int:
        return self.fan_out(consumer) + self.deliver()

    def fan_out(self, consumer: str) -> int:
        """Queue one delivery per (event, subscribed webhook), acknowledging the events in the
        same MULTI. Delivery ids are (webhook, event), so a retried batch never doubles."""
        if not self._group_ready:
            self.events.ensure_group(WEBHOOK_GROUP)
            self._group_ready = True
        entries = self.events.read_group(WEBHOOK_GROUP, consumer, EVENTS_PER_BATCH, STALE_MS)
        if not entries:
            return 0
        webhooks = self.store.all()
        now = self.clock.now()

        def build(pipe: Any) -> None:
            pipe.multi()
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
            self.events.queue_ack(pipe, WEBHOOK_GROUP, [entry_id for entry_id, _ in entries])

        transact(self.r, build)
        return len(entries)

    def deliver(self) -> int:
        """Attempt every due delivery (up to a batch)."""
        now = self.clock.now()
        ids = self.store.claim_due(now, now + LEASE, DELIVERIES_PER_BATCH)
        for delivery_id in ids:
            self._attempt(delivery_id)
        return len(ids)

    def _attempt(self, delivery_id: str) -> None:
        raw = self.store.delivery(delivery_id)
        webhook = self.store.read(self.r, raw["webhook_id"]) if raw else None
        if not raw or webhook is None:
            def drop(pipe: Any) -> None:
                pipe.multi()
                self.store.queue_drop(pipe, delivery_id)

            transact(self.r, drop)
            return
        now = self.clock.now()
        attempt = int(raw["attempt"]) + 1
        body = raw["body"].encode()
        # Signed with the wall clock: receivers compare it with theirs.
        stamp = int(time.time())
        headers = {"Content-Type": "application/json", EVENT_ID: raw["event_id"],
                   TIMESTAMP: str(stamp),
                   SIGNATURE: sign(self.service.live_secrets(webhook, now), stamp, body),
                   "User-Agent": "agegate-webhooks/1"}
        status, error = self.send(webhook["url"], body, headers)
        next_at: datetime | None = None
        if status is not None and 200 <= status < 300:
            outcome = "delivered"
        else:
            next_at = now + backoff(attempt)
            if next_at - datetime.fromtimestamp(float(raw["first_at"]), now.tzinfo) > RETRY_FOR:
                outcome, next_at = "failed", None
            else:
                outcome = "retrying"
        entry = {"delivery_id": delivery_id, "event_id": raw["event_id"],
                 "event_type": raw["event_type"], "attempt": attempt, "status": outcome,
                 "http_status": status, "error": error, "at": iso(now),
                 "next_attempt_at": iso(next_at) if next_at else None}
        delivery = {"delivery_id": delivery_id, "webhook_id": raw["webhook_id"],
                    "attempt": attempt, "status": outcome}

        def build(pipe: Any) -> None:
            pipe.multi()
            self.store.queue_attempted(pipe, delivery, next_at, entry)

        transact(self.r, build)

    @staticmethod
    def send(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
        """POST once: (HTTP status, None) or (None, the kind of failure). Never follows
        redirects; logs no URL or body."""
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                response.read(1024)
                return int(response.status), None
        except urllib.error.HTTPError as error:
            error.close()
            return int(error.code), None
        except (TimeoutError, urllib.error.URLError, OSError, ValueError) as error:
            return None, type(error).__name__
