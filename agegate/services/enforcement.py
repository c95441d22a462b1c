"""Termination and the deletion record: one atomic step that forgets an account here, blocks its
identifiers and tells downstream systems to delete theirs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily, Metric

from agegate.clock import Clock, iso
from agegate.crypto import Hasher, new_id
from agegate.errors import NotFound, ValidationFailed
from agegate.services.audit import AuditTrail, Chain, transact
from agegate.storage import keys
from agegate.storage.accounts import AccountStore
from agegate.storage.cases import CaseStore
from agegate.storage.deletions import DeletionStore
from agegate.storage.events import EventStream
from agegate.storage.identities import Identifier, IdentityStore
from agegate.storage.keys import Retention
from agegate.storage.unit import watch

ADULT_AGE = 18


def eighteenth_birthday(born: date) -> date:
    """The day someone turns 18; a 29 February birthday turns over on 1 March (API.md)."""
    try:
        return born.replace(year=born.year + ADULT_AGE)
    except ValueError:
        return date(born.year + ADULT_AGE, 3, 1)


# Reasons the service itself gives; an administrator's free-text reason stays on the deletion
# record and the audit trail says only that an administrator asked (audit details hold no text).
SERVICE_REASONS = frozenset({"confirm_minor", "verified_minor", "parent_request"})


def reason_code(reason: str) -> str:
    """The reason as the audit trail may hold it."""
    return reason if reason in SERVICE_REASONS else "admin_request"


@dataclass
class TerminationPlan:
    """What termination read under WATCH: enough to write everything in one MULTI."""

    account_id: str
    account_hash: str
    existing: str | None
    case_ids: list[str] = field(default_factory=list)
    identifiers: list[Identifier] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)


class EnforcementService:
    """Terminations, deletion records and downstream acknowledgements."""

    def __init__(
        self,
        client: redis.Redis,
        hasher: Hasher,
        audit: AuditTrail,
        events: EventStream,
        identities: IdentityStore,
        cases: CaseStore,
        deletions: DeletionStore,
        retention: Retention,
        clock: Clock,
        systems: tuple[str, ...],
        due_days: int,
    ) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.hasher = hasher
        self.audit = audit
        self.events = events
        self.identities = identities
        self.cases = cases
        self.deletions = deletions
        self.retention = retention
        self.clock = clock
        self.systems = systems
        self.due_days = due_days
        # Steps other features add to every termination's MULTI: hook(pipe, plan, block_seconds).
        self.termination_hooks: list[Callable[[Any, TerminationPlan, int], None]] = []
        self.accounts = AccountStore(client, retention)

    # -- termination ---------------------------------------------------------------------
    def block_seconds(self, born: date | None, now: datetime) -> int:
        """Identity blocks last until the 18th birthday where known, else the default year."""
        if born is not None:
            until = datetime.combine(eighteenth_birthday(born), time(), UTC)
            seconds = int((until - now).total_seconds())
            if seconds > 0:
                return seconds
        return self.retention.seconds("identity_block_default")

    def prepare(self, pipe: Any, account_id: str) -> TerminationPlan:
        """Read (and WATCH) everything termination touches; call before pipe.multi()."""
        account_hash = self.hasher.account(account_id)
        watch(pipe, keys.account_deletion(account_hash), *keys.account_keys(account_hash))
        existing = self.deletions.for_account(pipe, account_hash)
        case_ids = self.accounts.case_ids(pipe, account_hash)
        identifiers: list[Identifier] = [("account", account_hash)]
        identifiers += self.accounts.linked_identifiers(pipe, account_hash)
        meta = self.accounts.meta(pipe, account_hash)
        return TerminationPlan(account_id, account_hash, existing, case_ids, identifiers, meta)

    def queue(
        self,
        pipe: redis.client.Pipeline,
        chain: Chain,
        plan: TerminationPlan,
        *,
        actor: str,
        reason: str,
        born: date | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue the whole termination on a MULTI pipeline; returns the deletion record.

        The date of birth, when given, only times the identity block and is then dropped.
        """
        now = self.clock.now()
        deletion_id = new_id("del")
        due_at = iso(now + timedelta(days=self.due_days))
        record: dict[str, Any] = {
            "deletion_id": deletion_id,
            "account_id": plan.account_id,
            "status": "pending",
            "systems": {system: "pending" for system in self.systems},
            "requested_at": iso(now),
            "due_at": due_at,
            "completed_at": None,
            "reason": reason,
        }
        # Data minimisation: nothing about a terminated minor stays here but the proof of
        # deletion, the identity blocks and the audit trail (COPPA 16 CFR §312.10).
        self.cases.queue_delete(pipe, plan.case_ids)
        self.accounts.queue_forget(pipe, plan.account_hash)
        block_seconds = self.block_seconds(born, now)
        self.identities.queue_identity_blocks(pipe, plan.identifiers, block_seconds)
        for hook in self.termination_hooks:
            hook(pipe, plan, block_seconds)
        self.deletions.queue_write(pipe, record, plan.account_hash)
        self.events.queue_emit(pipe, "account.terminated", account_id=plan.account_id, at=now,
                               deletion_id=deletion_id)
        self.events.queue_emit(pipe, "account.deletion_requested", account_id=plan.account_id,
                               at=now, deletion_id=deletion_id, due_at=due_at,
                               systems=",".join(self.systems))
        chain.append(pipe, actor=actor, action="account_terminated", account_id=plan.account_id,
                     details={"deletion_id": deletion_id, "reason": reason_code(reason),
                              "cases_closed": len(plan.case_ids), **(details or {})})
        return record

    def terminate(
        self,
        account_id: str,
        *,
        actor: str,
        reason: str,
        born: date | None = None,
        details: dict[str, Any] | None = None,
        precheck: Callable[[TerminationPlan], None] | None = None,
    ) -> dict[str, Any]:
        """Terminate an account in one transaction; a repeat returns the same deletion."""

        def build(pipe: redis.client.Pipeline) -> dict[str, Any]:
            plan = self.prepare(pipe, account_id)
            if precheck is not None:
                precheck(plan)
            if plan.existing:
                record = self.deletions.read(pipe, plan.existing)
                if record is not None:
                    return record
            chain = self.audit.begin(pipe)
            pipe.multi()
            return self.queue(pipe, chain, plan, actor=actor, reason=reason, born=born,
                              details=details)

        return transact(self.r, build)

    # -- deletion records ----------------------------------------------------------------
    def get_deletion(self, deletion_id: str) -> dict[str, Any]:
        """One deletion record."""
        record = self.deletions.read(self.r, deletion_id)
        if record is None:
            raise NotFound("No such deletion.")
        return record

    def list_deletions(self, status: str | None = None, overdue: bool | None = None,
                       limit: int = 100) -> list[dict[str, Any]]:
        """Deletions: pending ones by due date (overdue ones only if asked), else newest first."""
        now = self.clock.now()
        if overdue or status == "pending":
            ids = self.deletions.ids(pending_only=True, due_before=now if overdue else None,
                                     limit=limit)
            records = self.deletions.read_many(ids)
            if overdue:
                records = [r for r in records if r["due_at"] < iso(now)]
            if status == "completed":
                return []
            return records
        records = self.deletions.read_many(self.deletions.ids(pending_only=False,
                                                              due_before=None, limit=limit))
        if overdue is False:
            records = [r for r in records if r["status"] != "pending" or r["due_at"] >= iso(now)]
        return [r for r in records if status is None or r["status"] == status]

    def ack(self, deletion_id: str, system: str, *, actor: str) -> dict[str, Any]:
        """A downstream system confirms it deleted the account; the last ack completes it."""
        key = keys.deletion(deletion_id)

        def build(pipe: redis.client.Pipeline) -> dict[str, Any]:
            record = self.deletions.read(pipe, deletion_id)
            if record is None:
                raise NotFound("No such deletion.")
            if system not in record["systems"]:
                raise ValidationFailed(fields={"system": [
                    "Not a system this deletion waits for: use one of "
                    + ", ".join(sorted(record["systems"])) + "."]})
            if record["systems"][system] == "done":
                return record
            now = self.clock.now()
            record["systems"][system] = "done"
            if all(state == "done" for state in record["systems"].values()):
                record["status"] = "completed"
                record["completed_at"] = iso(now)
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.deletions.queue_write(pipe, record)
            chain.append(pipe, actor=actor, action="deletion_acknowledged",
                         account_id=record["account_id"],
                         details={"deletion_id": deletion_id, "system": system,
                                  "status": record["status"]})
            if record["status"] == "completed":
                self.events.queue_emit(pipe, "account.deletion_completed",
                                       account_id=record["account_id"], at=now,
                                       deletion_id=deletion_id)
            return record

        return transact(self.r, build, key)

    def gauges(self) -> Iterable[Metric]:
        """Pending and overdue deletions, read from Redis at scrape time."""
        pending, overdue = self.deletions.counts(self.clock.now())
        for name, text, value in (
            ("agegate_deletions_pending", "Deletions waiting for downstream acks", pending),
            ("agegate_deletions_overdue", "Pending deletions past their due date", overdue),
        ):
            family = GaugeMetricFamily(name, text)
            family.add_metric([], value)
            yield family
