"""The service container attached to the app as app.extensions["agegate"].

Built once per app by create_app; web workers stay stateless because everything shared lives
in Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis
from prometheus_client.core import Metric

from agegate.auth import TokenTable
from agegate.clock import Clock
from agegate.config import Config, ConfigError
from agegate.crypto import Hasher
from agegate.metrics import GaugeSource, gauge
from agegate.services import test_mode
from agegate.services.age_checks import AgeCheckService
from agegate.services.audit import AuditTrail
from agegate.services.console import ConsoleAuth
from agegate.services.content_removals import ContentRemovalService
from agegate.services.jurisdictions import JurisdictionError, JurisdictionTable, MinimumAgePolicy
from agegate.services.mailer import Mailer
from agegate.services.parent_requests import DECISIONS, ParentRequestService
from agegate.storage import connect, keyspace, replicas
from agegate.storage.audit import AuditLog
from agegate.storage.console import ConsoleStore
from agegate.storage.embedded import EmbeddedRedis
from agegate.storage.events import EventStream
from agegate.storage.idempotency import IdempotencyStore
from agegate.storage.identities import IdentityStore
from agegate.storage.keys import Retention
from agegate.storage.outbox import Outbox, OutboxJob
from agegate.worker import InKeyspace, Job

log = logging.getLogger("agegate")


class Agegate:
    """Config, Redis, the model and every service, wired once."""

    def __init__(self, config: Config, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.embedded: EmbeddedRedis | None = None
        # Checked before Redis starts: a bad operator file stops the service at once.
        try:
            self.jurisdictions = JurisdictionTable.build(
                config.jurisdictions_file, config.minimum_ages, config.default_minimum_age)
        except JurisdictionError as error:
            raise ConfigError(f"AGEGATE_JURISDICTIONS_FILE: {error}") from None
        if config.redis_url:
            url = config.redis_url
        else:
            self.embedded = EmbeddedRedis(config.data_dir / "redis")
            url = self.embedded.start()
        self.redis_url = url
        self.redis: redis.Redis = connect(url, cluster=config.redis_cluster)
        # Every write through this client is confirmed by this many replicas (WAIT).
        replicas.require(self.redis, config.redis_min_replicas, config.redis_wait_ms)
        self.retention = Retention(retry_block_days=config.retry_block_days,
                                   age_signal_days=config.age_signal_ttl_days,
                                   assurance_days=config.assurance_retention_days)
        self.hasher = Hasher(config.secret_keys)
        self.idempotency = IdempotencyStore(self.hasher, self.retention)
        self.tokens = TokenTable(config.api_keys)
        self.audit = AuditTrail(
            AuditLog(self.redis, config.secret_keys, self.retention), self.hasher, self.clock
        )
        self.events = EventStream(self.redis, config.events_stream, self.retention)
        self.identities = IdentityStore(self.redis, self.retention)
        self.age_checks = AgeCheckService(
            self.hasher, self.identities, self.audit, MinimumAgePolicy(self.jurisdictions),
            self.clock,
        )
        self.console = ConsoleAuth(
            ConsoleStore(self.redis), self.tokens, config.api_keys, self.hasher, self.audit,
            self.clock, self.retention,
        )
        self.model: Any = None
        self.model_error: str | None = None
        self.gauge_sources: list[GaugeSource] = [self.replica_gauges]
        # What `agegate worker` runs (agegate/worker.py); each feature adds its own job.
        self.worker_jobs: list[Job] = []
        # Steps units of work left for outside their slot (events, blocks): repaired after a
        # crash by whichever worker runs this (storage/outbox.py).
        self.outbox = Outbox(self.redis, self.retention)
        self.worker_jobs.append(OutboxJob(self.outbox))
        # Test mode's keyspace has its own outboxes (events to its own stream, its own blocks).
        self.worker_jobs.append(InKeyspace(keyspace.TEST, OutboxJob(self.outbox)))
        self._wire_signals()
        self._wire_signal_stream()
        self._wire_parents_and_removals()
        self._wire_webhooks()
        self._wire_credentials()

    def _wire_signals(self) -> None:
        """Issue 4: cases and the review queue, enforcement, accounts and signals."""
        from agegate.services.accounts import AccountService
        from agegate.services.enforcement import EnforcementService
        from agegate.services.review import ReviewService
        from agegate.storage.accounts import AccountStore
        from agegate.storage.cases import CaseStore
        from agegate.storage.deletions import DeletionStore

        cases = CaseStore(self.redis, self.retention)
        account_store = AccountStore(self.redis, self.retention)
        # After a key rotation an account keeps the records it has under an older key's hash.
        self.hasher.account_resolver = account_store.existing_hash
        deletions = DeletionStore(self.redis, self.retention)
        self.enforcement = EnforcementService(
            self.redis, self.hasher, self.audit, self.events, self.identities, cases, deletions,
            self.retention, self.clock, self.config.deletion_systems,
            self.config.deletion_due_days,
        )
        self.review = ReviewService(
            self.redis, self.hasher, cases, account_store, deletions, self.enforcement,
            self.audit, self.events, self.clock, self.config.review_lease_seconds,
        )
        self.accounts = AccountService(
            self.redis, self.hasher, account_store, cases, deletions, self.review,
            self.enforcement, self.audit, self.events, self.clock,
            # A test token's AGEGATE_TEST_MINOR / _ADULT score as forced (API.md "Test mode").
            lambda: test_mode.scoring_model(self.model),
        )
        self.age_checks.redeclaration_hooks.append(self.accounts.on_redeclaration)
        self._wire_age_signals(account_store, cases)
        self.gauge_sources.extend([self.review.gauges, self.enforcement.gauges])
        self._wire_feedback(account_store)

    def _wire_feedback(self, account_store: Any) -> None:
        """Issue 12: a de-identified example per reviewer verdict and verification result."""
        from agegate.services.feedback import FeedbackService
        from agegate.storage.feedback import FeedbackStore

        self.feedback = FeedbackService(
            FeedbackStore(self.redis, self.retention, self.config.feedback_max_examples),
            account_store, lambda: self.model, self.clock,
        )
        self.review.feedback = self.accounts.feedback = self.feedback

    def _wire_age_signals(self, account_store: Any, cases: Any) -> None:
        """Issue 13: platform age signals and appeals."""
        from agegate.services.age_signals import AgeSignalService
        from agegate.services.appeals import DECISIONS as APPEAL_DECISIONS
        from agegate.services.appeals import AppealService
        from agegate.storage.age_signals import AgeSignalStore
        from agegate.storage.appeals import AppealStore

        self.age_signals = AgeSignalService(
            self.redis, self.hasher, AgeSignalStore(self.redis, self.retention), account_store,
            cases, self.audit, self.events, self.clock, self.config.age_signal_ttl_days,
            self.idempotency,
        )
        # Parents' requests: an under-18 signal establishes minority, an enhanced adult one
        # adulthood, and a new under-18 signal answers the requests waiting for it.
        self.accounts.age_evidence.append(self.age_signals.evidence)
        self.age_signals.age_known_hooks.append(self.accounts.notify_age_known)
        self._wire_assurance(account_store)
        self.appeals = AppealService(
            self.redis, self.hasher, AppealStore(self.redis, self.retention), account_store,
            cases, self.enforcement.deletions, self.audit, self.events, self.clock,
            self.config.appeal_due_days, self.idempotency,
        )
        self.enforcement.termination_hooks.append(self.appeals.keep_blocked)
        self.review.register_decider("appeal", set(APPEAL_DECISIONS), self.appeals.decide)

    def _wire_assurance(self, account_store: Any) -> None:
        """Issue 22: step-up age assurance; its results join the age signals' evidence."""
        from agegate.services.assurance import AssuranceService
        from agegate.storage.assurance import AssuranceStore

        self.assurance = AssuranceService(
            self.redis, self.hasher, AssuranceStore(self.redis, self.retention), account_store,
            self.age_signals, self.jurisdictions, self.audit, self.clock, self.idempotency,
        )
        self.age_checks.pending = self.assurance.stage_pending
        self.accounts.export_sections["assurance"] = self.assurance.for_account

    def _wire_signal_stream(self) -> None:
        """Issue 14: the signal stream `agegate worker` applies through the accounts service."""
        from agegate.ingest import SignalStreamJob
        from agegate.services.ingest import IngestService
        from agegate.storage.signal_stream import SignalStreamStore

        self.ingest = IngestService(
            SignalStreamStore(self.redis, self.config.signals_stream, self.retention),
            self.config.signals_batch, self.config.signals_claim_idle_seconds,
        )
        self.worker_jobs.append(SignalStreamJob(self.ingest, self.accounts))
        self.gauge_sources.append(self.ingest.gauges)

    def _wire_parents_and_removals(self) -> None:
        """Parent requests, the mailer and §22581 content removals."""
        config = self.config
        self.mailer = Mailer(self.redis, self.retention, self.clock, config.smtp_url,
                             config.smtp_sender)
        self.parent_requests = ParentRequestService(
            self.redis, self.hasher, self.audit, self.mailer, self.retention, self.clock
        )
        self.content_removals = ContentRemovalService(
            self.redis, self.hasher, self.audit, self.events, self.retention, self.clock,
            all_regions=config.content_removal_all_regions,
        )
        self.gauge_sources.append(self.parent_requests.gauges)
        # The review queue, enforcement and accounts (issue 4) carry out the outcomes.
        review = getattr(self, "review", None)
        self.parent_requests.review = self.content_removals.review = review
        self.parent_requests.enforcement = getattr(self, "enforcement", None)
        self.parent_requests.accounts = accounts = getattr(self, "accounts", None)
        if accounts is not None:
            # A waiting deletion or access request is answered once the child's age is known.
            self.parent_requests.account_store = accounts.accounts
            accounts.age_known_hooks.append(self.parent_requests.on_age_known)
        if review is not None:
            review.register_decider("parent_request", set(DECISIONS), self.parent_requests.decide)
            review.minor_confirmed_hooks.append(self.parent_requests.on_age_known)

    def _wire_webhooks(self) -> None:
        """Issue 13: signed webhooks, delivered by `agegate worker`."""
        from agegate.outbound import OutboundPolicy, parse_networks
        from agegate.secret_box import SecretBox
        from agegate.services.webhooks import WebhookDeliveryJob, WebhookService
        from agegate.storage.webhooks import WebhookStore

        store = WebhookStore(self.redis, self.retention)
        policy = OutboundPolicy(allow_http=self.config.webhook_allow_http,
                                allowed_networks=parse_networks(
                                    self.config.webhook_allowed_networks))
        self.webhooks = WebhookService(self.redis, store, self.events,
                                       SecretBox(self.config.secret_keys), self.audit,
                                       self.clock, policy, self.idempotency)
        # Test tokens' webhooks get their keyspace's events: a job instance of their own.
        self.webhook_jobs = [WebhookDeliveryJob(self.redis, self.webhooks, store, self.events,
                                                self.clock) for _ in range(2)]
        self.worker_jobs.append(self.webhook_jobs[0])
        self.worker_jobs.append(InKeyspace(keyspace.TEST, self.webhook_jobs[1]))

    def _wire_credentials(self) -> None:
        """Issue 23: digital credentials; an over-18 answer lets the age check through."""
        from agegate import mdoc
        from agegate.services.credentials import CredentialService, assurance_stager
        from agegate.storage.credentials import CredentialStore

        store = CredentialStore(self.redis, self.retention)
        pem = self.config.credential_anchor_pem()
        self.credentials = CredentialService(
            self.hasher, store, self.identities, self.audit, self.clock, self.retention,
            self.config.credential_origins, mdoc.load_anchors(pem) if pem else [],
            self.idempotency)
        self.age_checks.credential_passed = store.passed
        self.age_checks.verify_session_hooks.append(store.queue_verify_session)
        # An answer is an assurance result (issue 22's records), recorded with the answer:
        # over_18 admits the account.
        self.credentials.assurance_stagers.append(assurance_stager(self.assurance, self.clock))

    def load_model(self) -> None:
        """Load and verify the classifier; a bad artifact leaves the service unready, not up."""
        from agegate.model import ModelLoadError, load_model

        try:
            self.model = load_model(self.config.model_dir,
                                    prevalence=self.config.minor_prevalence,
                                    review_threshold=self.config.minor_review_threshold)
            self.model_error = None
        except ModelLoadError as error:
            self.model = None
            self.model_error = str(error)
            log.error("model not loaded: %s", error)

    def close(self) -> None:
        """Release Redis, and stop the embedded server if this container started it."""
        # Webhook deliveries in flight finish (each within its 5 s) and record their attempt.
        for job in self.webhook_jobs:
            job.close()
        self.redis.close()
        if self.embedded is not None:
            self.embedded.stop()

    def readiness(self) -> dict[str, str]:
        """Per-dependency readiness for /readyz; with AGEGATE_REDIS_MIN_REPLICAS, "replicas" is
        "too_few" while any primary has fewer replicas connected than that (its writes would
        all answer 503)."""
        try:
            redis_ok = "ok" if self.redis.ping() else "unavailable"
        except redis.RedisError:
            redis_ok = "unavailable"
        model_ok = "ok" if self.model is not None else "not_loaded"
        checks = {"redis": redis_ok, "model": model_ok}
        required = self.config.redis_min_replicas
        if required:
            try:
                fewest = min(p["connected"] for p in replicas.status(self.redis))
                checks["replicas"] = "ok" if fewest >= required else "too_few"
            except redis.RedisError:
                checks["replicas"] = "unavailable"
        return checks

    def replica_gauges(self) -> Iterable[Metric]:
        """Replication as AGEGATE_REDIS_MIN_REPLICAS sees it, per scrape (the fewest over the
        primaries: the one whose writes would be refused first)."""
        try:
            found = replicas.status(self.redis)
        except redis.RedisError:
            return
        yield gauge("agegate_redis_min_replicas", "Replicas that must confirm every write "
                    "(AGEGATE_REDIS_MIN_REPLICAS)", self.config.redis_min_replicas)
        yield gauge("agegate_redis_replicas_connected", "Replicas connected to the primary that "
                    "has the fewest", min(p["connected"] for p in found))
        yield gauge("agegate_redis_replicas_in_sync", "Replicas online and acknowledging within "
                    "a second, on the primary that has the fewest",
                    min(p["in_sync"] for p in found))
