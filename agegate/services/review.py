"""The trust-and-safety review queue: one open case per account, priority order, leased claims,
and decisions that take effect in the same transaction as the case is closed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily, Metric

from agegate.clock import Clock, iso, parse_iso
from agegate.crypto import Hasher
from agegate.errors import Conflict, NotFound, ValidationFailed
from agegate.services.audit import AuditTrail, transact
from agegate.services.enforcement import EnforcementService
from agegate.services.feedback import FEEDBACK_KINDS, VERDICTS, FeedbackService
from agegate.storage import keys
from agegate.storage.accounts import AccountStore
from agegate.storage.assurance import status_after_restriction
from agegate.storage.cases import HISTORY_LIMIT, KINDS, CaseStore
from agegate.storage.deletions import DeletionStore
from agegate.storage.events import EventStream
from agegate.storage.unit import watch

log = logging.getLogger("agegate.review")

STATUSES = ("open", "claimed", "decided")
# Kinds that share the account's one open case; parent requests get a case per request.
SINGLE_CASE_KINDS = frozenset({"classifier", "report", "content_removal"})
MINOR_DECISIONS = frozenset({"confirm_minor", "not_minor", "request_verification"})
PARENT_DECISIONS = frozenset({"fulfill", "reject"})

# Priority is a head start in the queue, in hours: a case is served as if it had been waiting
# that much longer. Parent requests carry a legal deadline (COPPA 16 CFR §312.6; GDPR Art. 12(3):
# one month), a California minor's removal request is a statutory right (Cal. Bus. & Prof. Code
# §22581), a human report outranks the classifier alone; within a kind the score decides.
# An under-18 platform age signal is actual knowledge (Cal. Civ. Code §1798.500-.502) and the
# account is already restricted: it outranks a user report. Appeals are served by their due date.
KIND_HEAD_START_HOURS = {"parent_request": 30 * 24, "content_removal": 14 * 24,
                         "age_signal": 7 * 24, "report": 3 * 24, "classifier": 0, "appeal": 0}
SCORE_HEAD_START_HOURS = 7 * 24
# A case with a due date is served by how close that date is: as if it had been waiting since
# (due - window), so the request nearest its deadline comes first.
DUE_WINDOW = timedelta(days=30)

Decider = Callable[[dict, str, "str | None", str], None]


def _parse(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return parse_iso(value)


def position(kinds: Iterable[str], score: float | None, created: datetime,
             due_at: datetime | None) -> tuple[float, float]:
    """(priority in hours of head start, queue sort key: lower is served first)."""
    head = max(KIND_HEAD_START_HOURS[k] for k in kinds) + SCORE_HEAD_START_HOURS * (score or 0.0)
    sortkey = created.timestamp() - head * 3600
    if due_at is not None:
        sortkey = min(sortkey, (due_at - DUE_WINDOW).timestamp() - head * 3600)
    return round((created.timestamp() - sortkey) / 3600, 2), sortkey


def _history(case: dict[str, Any], at: datetime, event: str, **extra: Any) -> None:
    case["history"] = [*case.get("history", []), {"at": iso(at), "event": event, **extra}]
    case["history"] = case["history"][-HISTORY_LIMIT:]


def new_case(account_id: str, kind: str, now: datetime, *, actor: str, account_hash: str,
             score: float | None = None, top_signals: list[dict] | None = None,
             due_at: datetime | None = None, ref: dict[str, str] | None = None) -> dict[str, Any]:
    """A new open case of `kind`, placed in the queue by kind, score and due date. It lives in
    the account's shard (`account_hash`), beside the account and that shard's queue."""
    if kind not in KINDS:
        raise ValueError(f"unknown case kind {kind!r}")
    priority, sortkey = position([kind], score, now, due_at)
    case = {
        "case_id": keys.new_sharded_id("case", keys.shard_of(account_hash)),
        "account_id": account_id, "kind": kind,
        "status": "open", "priority": priority, "score": score,
        "top_signals": list(top_signals or []), "created_at": iso(now),
        "due_at": iso(due_at) if due_at else None, "claimed_by": None,
        "lease_expires_at": None, "lease_until": None, "decision": None, "note": None,
        "decided_at": None, "history": [], "ref": dict(ref or {}), "sortkey": sortkey,
        "kinds_seen": [kind],
    }
    _history(case, now, "opened", actor=actor)
    return case


class ReviewService:
    """Open, list, claim and decide review cases."""

    def __init__(
        self,
        client: redis.Redis,
        hasher: Hasher,
        cases: CaseStore,
        accounts: AccountStore,
        deletions: DeletionStore,
        enforcement: EnforcementService,
        audit: AuditTrail,
        events: EventStream,
        clock: Clock,
        lease_seconds: int,
    ) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.hasher = hasher
        self.cases = cases
        self.accounts = accounts
        self.deletions = deletions
        self.enforcement = enforcement
        self.audit = audit
        self.events = events
        self.clock = clock
        self.lease = timedelta(seconds=lease_seconds)
        self._deciders: dict[str, tuple[frozenset[str], Decider]] = {}
        # Called with (account_id, "minor", reviewer) once a confirm_minor has landed.
        self.minor_confirmed_hooks: list[Callable[[str, str, str], None]] = []
        # Model feedback (issue 12): a de-identified example per verdict; set by the container.
        self.feedback: FeedbackService | None = None

    def register_decider(self, kind: str, decisions: set[str], handler: Decider) -> None:
        """Let another feature decide cases of `kind`; handler(case, decision, note, actor)."""
        if kind not in KINDS:
            raise ValueError(f"unknown case kind {kind!r}")
        self._deciders[kind] = (frozenset(decisions), handler)

    def decisions_for(self, kind: str) -> frozenset[str]:
        """The decisions a case of this kind takes."""
        if kind in self._deciders:
            return self._deciders[kind][0]
        return PARENT_DECISIONS if kind == "parent_request" else MINOR_DECISIONS

    # -- opening -------------------------------------------------------------------------
    def open_or_raise(
        self,
        account_id: str,
        kind: str,
        *,
        actor: str,
        score: float | None = None,
        top_signals: list[dict] | None = None,
        due_at: datetime | None = None,
        ref: dict[str, str] | None = None,
    ) -> dict:
        """Open a case, or raise the priority of the account's open one; returns the case."""
        if kind not in KINDS:
            raise ValueError(f"unknown case kind {kind!r}")
        account_hash = self.hasher.account(account_id)
        pointer = keys.account_open_case(account_hash)
        single = kind in SINGLE_CASE_KINDS

        def build(pipe: Any) -> dict[str, Any]:
            # One round trip for both markers (both WATCHed by transact below).
            deletion_id, existing_id = self.accounts.deletion_and_open_case(pipe, account_hash)
            if deletion_id:
                raise Conflict("The account has been terminated.", code="account_terminated")
            now = self.clock.now()
            if single:
                if existing_id:
                    watch(pipe, keys.case(existing_id))
                    case = self.cases.read(pipe, existing_id)
                    if case is not None:
                        if case["status"] == "decided":
                            # Restricted, awaiting age assurance: that case stands for the account.
                            return case
                        if self._raise(case, kind, score, top_signals, now):
                            pipe.multi()
                            self.cases.queue_update(pipe, case)
                            self._queue_case_score(pipe, account_hash, account_id, case)
                        return case
            case = new_case(account_id, kind, now, actor=actor, account_hash=account_hash,
                            score=score, top_signals=top_signals, due_at=due_at, ref=ref)
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.cases.queue_create(pipe, case, account_hash)
            if single:
                self.accounts.queue_pointer(pipe, account_hash, case["case_id"])
                self._queue_case_score(pipe, account_hash, account_id, case)
            chain.append(pipe, actor=actor, action="case_opened", account_id=account_id,
                         details={"case_id": case["case_id"], "kind": kind, "score": score})
            return case

        return transact(self.r, build, pointer, keys.account_deletion(account_hash))

    def _queue_case_score(self, pipe: Any, account_hash: str, account_id: str,
                          case: dict[str, Any]) -> None:
        """Note the open case's score on the account, so signal posts that would not raise it
        can skip the case transaction."""
        score = case["score"]
        self.accounts.queue_meta(pipe, account_hash, account_id,
                                 {"case_score": repr(float(score))} if score is not None else {})

    def _raise(self, case: dict[str, Any], kind: str, score: float | None,
               top_signals: list[dict] | None, now: datetime) -> bool:
        """Update an open case with a newer signal; True when anything changed."""
        kinds = sorted(set(case["kinds_seen"]) | {kind})
        scores = [s for s in (case["score"], score) if s is not None]
        new_score = max(scores) if scores else None
        priority, sortkey = position(kinds, new_score, _parse(case["created_at"]),  # type: ignore[arg-type]
                                     _parse(case["due_at"]))
        changed = (kinds != sorted(case["kinds_seen"]) or new_score != case["score"]
                   or (top_signals is not None and score is not None
                       and score >= (case["score"] or 0) and top_signals != case["top_signals"]))
        if sortkey < case["sortkey"]:
            # A chatty account raises its case with nearly every message: consecutive raises
            # are one history entry (the latest), so the case stays small whatever the count.
            if case["history"] and case["history"][-1].get("event") == "raised":
                case["history"] = case["history"][:-1]
            _history(case, now, "raised", kind=kind, priority=priority)
            case["sortkey"], case["priority"] = sortkey, priority
            changed = True
        if top_signals is not None and score is not None and score >= (case["score"] or 0):
            case["top_signals"] = list(top_signals)
        case["kinds_seen"], case["score"] = kinds, new_score
        return changed

    # -- reading -------------------------------------------------------------------------
    def list_cases(self, status: str = "open", limit: int = 50,
                   kind: str | None = None) -> list[dict]:
        """Cases by status; open ones in the order they will be served."""
        if status not in STATUSES:
            raise ValidationFailed(fields={"status": ["Use open, claimed or decided."]})
        if kind is not None and kind not in KINDS:
            raise ValidationFailed(fields={"kind": ["Not a case kind."]})
        self.cases.requeue_expired(self.clock.now())
        found = self.cases.read_many(self.cases.ids(status, limit, kind))
        return [c for c in found if kind is None or c["kind"] == kind][:limit]

    def get(self, case_id: str) -> dict:
        """One case."""
        self.cases.requeue_expired(self.clock.now())
        case = self.cases.read(self.r, case_id)
        if case is None:
            raise NotFound("No such case.")
        return case

    # -- claiming ------------------------------------------------------------------------
    def claim_next(self, reviewer: str, kind: str | None = None) -> tuple[dict, datetime] | None:
        """Lease the top open case (of `kind`) to `reviewer`; None when the queue is empty."""
        if kind is not None and kind not in KINDS:
            raise ValidationFailed(fields={"kind": ["Not a case kind."]})
        now = self.clock.now()
        until = now + self.lease
        outcome, case_id = self.cases.claim(now, until, reviewer, kind=kind)
        if outcome != "ok" or case_id is None:
            return None
        return self.get(case_id), until

    def claim(self, case_id: str, reviewer: str) -> tuple[dict, datetime]:
        """Lease one particular open case (the reviewer console)."""
        now = self.clock.now()
        until = now + self.lease
        outcome, detail = self.cases.claim(now, until, reviewer, case_id=case_id)
        if outcome == "missing":
            raise NotFound("No such case.")
        if outcome != "ok":
            raise Conflict(f"The case is {detail}, not open.")
        return self.get(case_id), until

    # -- deciding ------------------------------------------------------------------------
    def _check(self, case: dict[str, Any], reviewer: str, decision: str, now: datetime) -> None:
        if case["status"] == "decided":
            raise Conflict("This case has already been decided.")
        if case["status"] != "claimed" or case["claimed_by"] != reviewer:
            raise Conflict("Only the reviewer holding the claim on this case may decide it.")
        if case["lease_until"] is not None and case["lease_until"] <= now.timestamp():
            raise Conflict("Your claim on this case has expired; claim it again.")
        allowed = self.decisions_for(case["kind"])
        if decision not in allowed:
            raise ValidationFailed(fields={"decision": [
                f"A {case['kind']} case takes one of: {', '.join(sorted(allowed))}."]})

    def _decided(self, case: dict[str, Any], reviewer: str, decision: str, note: str | None,
                 now: datetime) -> dict[str, Any]:
        decided = dict(case)
        decided.update(status="decided", decision=decision, note=note, decided_at=iso(now),
                       lease_expires_at=None, lease_until=None)
        _history(decided, now, "decided", actor=reviewer, decision=decision)
        return decided

    def decide(self, case_id: str, reviewer: str, decision: str, note: str | None) -> dict:
        """Decide a case the reviewer holds; the decision's effect lands with the case."""
        case_key = keys.case(case_id)
        if decision in ("fulfill", "reject") or self._external(case_id):
            return self._decide_external(case_id, reviewer, decision, note)
        # The example's numbers, read in the decision's unit of work before termination
        # deletes the state; stored (under no account's tag) only once the decision landed.
        captured: list[dict[str, Any] | None] = [None]

        def build(pipe: redis.client.Pipeline) -> dict[str, Any]:
            case = self.cases.read(pipe, case_id)
            if case is None:
                raise NotFound("No such case.")
            now = self.clock.now()
            self._check(case, reviewer, decision, now)
            if case["kind"] in self._deciders:
                return {"external": True}
            account_id = case["account_id"]
            account_hash = self.hasher.account(account_id)
            decided = self._decided(case, reviewer, decision, note, now)
            details = {"case_id": case_id, "kind": case["kind"], "decision": decision}
            if self.feedback is not None and case["kind"] in FEEDBACK_KINDS \
                    and decision in VERDICTS:
                captured[0] = self.feedback.capture(pipe, account_hash)
            if decision == "confirm_minor":
                plan = self.enforcement.prepare(pipe, account_id)
                chain = self.audit.begin(pipe)
                pipe.multi()
                self.cases.queue_decided(pipe, decided, now)
                chain.append(pipe, actor=reviewer, action="case_decided", account_id=account_id,
                             details=details)
                if plan.existing:
                    return decided
                deletion = self.enforcement.queue(pipe, chain, plan, actor=reviewer,
                                                  reason="confirm_minor",
                                                  details={"case_id": case_id})
                decided["deletion_id"] = deletion["deletion_id"]
                return decided
            kind = case["kind"]
            pointer = keys.open_case_pointer(account_hash, kind)
            watch(pipe, pointer, keys.account(account_hash))
            current = self.accounts.open_case(pipe, account_hash, kind)
            # An age_signal case restricted the account when it opened: clearing it lifts that.
            meta = self.accounts.meta(pipe, account_hash)
            lift = (decision == "not_minor" and kind == "age_signal"
                    and meta.get("restricted_case") == case_id)
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.cases.queue_decided(pipe, decided, now)
            if decision == "not_minor":
                if current == case_id:
                    self.accounts.queue_pointer(pipe, account_hash, None, kind=kind)
                if lift:
                    # Not a minor is not an adult proven: an account an age check sent to
                    # step-up assurance goes back to waiting for its result.
                    self.accounts.queue_meta(pipe, account_hash, account_id,
                                             {"status": status_after_restriction(meta),
                                              "updated_at": iso(now)},
                                             drop=("restricted_case",))
                    self.events.queue_emit(pipe, "account.unrestricted", account_id=account_id,
                                           at=now, case_id=case_id)
            else:  # request_verification: restricted until an age-assurance result arrives
                self.accounts.queue_pointer(pipe, account_hash, case_id, kind=kind)
                self.accounts.queue_meta(pipe, account_hash, account_id,
                                         {"status": "restricted", "restricted_case": case_id,
                                          "updated_at": iso(now)})
                self.events.queue_emit(pipe, "account.restricted", account_id=account_id,
                                       at=now, case_id=case_id)
            chain.append(pipe, actor=reviewer, action="case_decided", account_id=account_id,
                         details=details)
            return decided

        result = transact(self.r, build, case_key)
        if result.get("external"):
            return self._decide_external(case_id, reviewer, decision, note)
        if self.feedback is not None and decision in VERDICTS:
            self.feedback.record(captured[0], VERDICTS[decision])
        if decision == "confirm_minor":
            for hook in self.minor_confirmed_hooks:
                hook(result["account_id"], "minor", reviewer)
        return result

    def _external(self, case_id: str) -> bool:
        kind = self.cases.kind(case_id)
        return kind == "parent_request" or kind in self._deciders

    def _decide_external(self, case_id: str, reviewer: str, decision: str,
                         note: str | None) -> dict:
        """Validate, let the registered handler act, then close the case."""
        case = self.cases.read(self.r, case_id)
        if case is None:
            raise NotFound("No such case.")
        self._check(case, reviewer, decision, self.clock.now())
        entry = self._deciders.get(case["kind"])
        if entry is not None:
            entry[1](case, decision, note, reviewer)

        def build(pipe: redis.client.Pipeline) -> dict[str, Any]:
            current = self.cases.read(pipe, case_id)
            now = self.clock.now()
            if current is not None and current["status"] == "decided":
                return current
            decided = self._decided(current or case, reviewer, decision, note, now)
            chain = self.audit.begin(pipe)
            pipe.multi()
            if current is not None:  # the handler may have terminated the account (and the case)
                self.cases.queue_decided(pipe, decided, now)
            chain.append(pipe, actor=reviewer, action="case_decided",
                         account_id=case["account_id"],
                         details={"case_id": case_id, "kind": case["kind"], "decision": decision})
            return decided

        return transact(self.r, build, keys.case(case_id))

    def gauges(self) -> Iterable[Metric]:
        """Open queue depth per kind and claimed cases, read from Redis at scrape time."""
        depths = self.cases.depths()
        family = GaugeMetricFamily("agegate_review_queue_open", "Open review cases by kind",
                                   labels=["kind"])
        for kind in KINDS:
            family.add_metric([kind], depths[kind])
        yield family
        claimed = GaugeMetricFamily("agegate_review_queue_claimed", "Review cases under a lease")
        claimed.add_metric([], depths["claimed"])
        yield claimed
