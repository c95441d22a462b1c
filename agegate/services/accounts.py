"""Accounts: signals in, an account-level score out, and the cases and restrictions that follow."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import redis

from agegate.clock import Clock, iso
from agegate.crypto import Hasher
from agegate.errors import AgegateError, Conflict, ModelUnavailable, NotFound, ValidationFailed
from agegate.metrics import STATE_RESETS
from agegate.services.age_checks import age_on
from agegate.services.age_signals import stated_rules
from agegate.services.audit import AuditTrail, transact
from agegate.services.enforcement import ADULT_AGE, EnforcementService, TerminationPlan
from agegate.services.feedback import FeedbackService
from agegate.services.review import ReviewService
from agegate.storage import keys
from agegate.storage.accounts import AccountStore
from agegate.storage.cases import CaseStore
from agegate.storage.deletions import DeletionStore
from agegate.storage.events import EventStream
from agegate.storage.unit import watch

log = logging.getLogger("agegate.accounts")


# A stream entry's applied-marker: its effects are written, and its case step is done too
# (APPLIED) or was still due when the marker was written (CASE_DUE).
APPLIED, CASE_DUE = "1", "case"


def terminated() -> Conflict:
    return Conflict("The account has been terminated.", code="account_terminated")


def processing_stopped() -> Conflict:
    # GDPR Art. 21 / COPPA §312.6(a)(2): after a parent's objection we process nothing more.
    return Conflict("Processing of this account's signals has stopped at a parent's request.",
                    code="processing_stopped")


def _top(items: Any) -> list[dict[str, Any]]:
    """The model's top signals as [{"name", "weight"}], whatever pair shape it returns."""
    out = []
    for item in items or []:
        if isinstance(item, dict):
            out.append({"name": str(item["name"]), "weight": round(float(item["weight"]), 4)})
        else:
            name, weight = item[0], item[1]
            out.append({"name": str(name), "weight": round(float(weight), 4)})
    return out


# What establishes that an account is run by a minor (API.md, parent requests): a reviewer's
# confirm_minor, or an age-assurance result `minor`; both terminate the account, so the
# deletion record's reason is where they stay known. An under-18 age signal is another
# (AgeEvidence sources registered by the age-signal feature).
MINOR_TERMINATIONS = {"confirm_minor": "reviewer_confirmed_minor",
                      "verified_minor": "verification_minor"}

# A source of age evidence: (account_id, account_hash) -> {"verdict": "minor"|"adult",
# "source": ..., "at": ...} or None. Must read storage only.
AgeEvidence = Callable[[str, str], "dict[str, Any] | None"]
# Called after an account's age became known: (account_id, "minor"|"adult", actor).
AgeKnownHook = Callable[[str, str, str], None]


class AccountService:
    """Scores accounts from their signals and applies verification outcomes."""

    def __init__(
        self,
        client: redis.Redis,
        hasher: Hasher,
        accounts: AccountStore,
        cases: CaseStore,
        deletions: DeletionStore,
        review: ReviewService,
        enforcement: EnforcementService,
        audit: AuditTrail,
        events: EventStream,
        clock: Clock,
        model: Callable[[], Any],
    ) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.hasher = hasher
        self.accounts = accounts
        self.cases = cases
        self.deletions = deletions
        self.review = review
        self.enforcement = enforcement
        self.audit = audit
        self.events = events
        self.clock = clock
        self.model = model
        self.age_evidence: list[AgeEvidence] = []
        self.age_known_hooks: list[AgeKnownHook] = []
        # Model feedback (issue 12): a de-identified example per verification result.
        self.feedback: FeedbackService | None = None
        # More of what this service holds on an account, for its export: name -> reader
        # (e.g. its age-assurance records, issue 22).
        self.export_sections: dict[str, Callable[[str], Any]] = {}

    # -- signals -------------------------------------------------------------------------
    def record_signals(self, account_id: str, signals: list[dict[str, Any]], *,
                       actor: str, entry: str | None = None) -> dict[str, Any]:
        """Fold signals into the account's bounded state, score it, open or raise its case.

        `entry` (the signal stream's idempotency key) is applied at most once: its marker is
        written in the same MULTI as the state and says whether a case step is still due. A
        replay writes nothing; it runs the case step only if the applying call died before it
        (a reviewer may have decided the case since a completed one), and answers the score.
        """
        model = self.model()
        if model is None:
            raise ModelUnavailable()
        account_hash = self.hasher.account(account_id)
        entry_hash = self._entry_hash(entry) if entry is not None else None
        watched = [keys.account_applied(account_hash, entry_hash)] if entry_hash else []
        reported = any(s["type"] == "report" and s.get("reason") == "suspected_minor"
                       for s in signals)

        # The text model a stored state was scored by, when it is not the loaded one.
        off_scale: list[str | None] = []

        def build(pipe: Any) -> tuple[Any, str | None, bool, str | None]:
            deletion_id, state, case_id, processing, case_score, adult_until, seen = \
                self.accounts.signal_view(pipe, account_hash, entry_hash)
            if deletion_id:
                raise terminated()
            if processing == "stopped":
                raise processing_stopped()
            off_scale.clear()
            if state is not None and not model.on_scale(state):
                # Its sums are on another text model's scale (a full retrain): model.update
                # keeps its platform counters and starts its text evidence again.
                off_scale.append(str(state.get("m")) if isinstance(state, dict) else None)
            if seen:
                pipe.multi()  # a replayed stream entry: nothing to write
                result = model.score(state or model.new_state())
                return result, case_id, seen == CASE_DUE, adult_until
            state = model.update(state if state is not None else model.new_state(), signals)
            result = model.score(state)
            # The open case already carries this score or a higher one: nothing to raise.
            settled = (case_id is not None and case_score is not None
                       and float(result.score) <= float(case_score))
            due = reported or (bool(result.flagged) and not settled)
            pipe.multi()
            if entry_hash:
                self.accounts.queue_applied(pipe, account_hash, entry_hash,
                                            CASE_DUE if due else APPLIED)
            self.accounts.queue_state(pipe, account_hash, state)
            self.accounts.queue_meta(pipe, account_hash, account_id, {
                "score": repr(float(result.score)), "band": str(result.band),
                "flagged": "1" if result.flagged else "0", "updated_at": iso(self.clock.now()),
            })
            return result, case_id, due, adult_until

        # WATCH the state, the meta, the case pointer and the termination marker: a concurrent
        # post retries on the newer state, and a termination in between turns this into a 409.
        result, case_id, due, adult_until = transact(
            self.r, build, keys.account_state(account_hash), keys.account(account_hash),
            keys.account_open_case(account_hash), keys.account_deletion(account_hash), *watched)
        if off_scale:
            STATE_RESETS.inc()
            log.info("account state of text model %s reset for text model %s", off_scale[0],
                     model.text_version)
        score, top = float(result.score), _top(result.top_signals)
        # Stated rules beside the model's signals; they never change the score or the flag.
        top = stated_rules(adult_until, self.clock.now()) + top
        if due:
            case = self.review.open_or_raise(account_id, "report" if reported else "classifier",
                                             actor=actor, score=score, top_signals=top)
            case_id = case["case_id"]
            if entry_hash:
                self.accounts.mark_applied(account_hash, entry_hash, APPLIED)
        return {"account_id": account_id, "score": score, "band": str(result.band),
                "flagged": bool(result.flagged), "case_id": case_id, "top_signals": top}

    def _entry_hash(self, entry: str) -> str:
        """A stream entry's key under the account's tag (64 bits: unique within one account)."""
        return self.hasher.short("signal_entry", entry)[:16]

    def settle_entries(self, entries: list[tuple[str, str]]) -> None:
        """Shorten the applied-markers of (account id, entry) pairs that only a stalled worker
        could still hold: entries without the platform's id, acknowledged and deleted from the
        stream (a day of markers per message would outgrow the account)."""
        self.accounts.shorten_applied([(self.hasher.account(account_id),
                                        self._entry_hash(entry)) for account_id, entry in entries])

    def on_redeclaration(self, account_id: str, at: datetime, actor: str) -> None:
        """Age-check hook: a retry with another birth date is a signal on the account."""
        try:
            self.record_signals(account_id, [{"type": "age_redeclaration", "at": at}], actor=actor)
        except AgegateError as error:
            # A terminated or objected account, or no model: the age check itself still stands.
            log.info("age_redeclaration not recorded: %s", error.code)

    # -- reading -------------------------------------------------------------------------
    def get(self, account_id: str) -> dict[str, Any]:
        """The account's status and latest score; terminated accounts from their deletion."""
        account_hash = self.hasher.account(account_id)
        meta, case_id, deletion_id = self.accounts.overview(account_hash)
        if deletion_id:
            record = self.deletions.read(self.r, deletion_id)
            return {"account_id": account_id, "status": "terminated", "score": None,
                    "band": None, "case_id": None, "deletion_id": deletion_id,
                    "updated_at": record["requested_at"] if record else None,
                    "processing_stopped": False}
        if not meta:
            raise NotFound("No such account.")
        return {
            "account_id": account_id,
            "status": meta.get("status", "active"),
            "score": float(meta["score"]) if meta.get("score") else None,
            "band": meta.get("band") or None,
            "case_id": case_id,
            "deletion_id": None,
            "updated_at": meta.get("updated_at") or None,
            "processing_stopped": meta.get("processing") == "stopped",
        }

    # -- what is known about the account's age ---------------------------------------------
    def age_knowledge(self, account_id: str) -> dict[str, Any]:
        """What storage knows about the account's age, for decisions and for the reviewer.

        `established` is "minor" when any evidence says so (an under-18 signal is never
        outweighed), "adult" when an age-assurance check said adult, else "unknown".
        """
        account_hash = self.hasher.account(account_id)
        seen = self.accounts.seen(self.r, account_hash)
        meta = self.accounts.meta(self.r, account_hash)
        evidence: list[dict[str, Any]] = []
        deletion_id = self.deletions.for_account(self.r, account_hash)
        deletion = self.deletions.read(self.r, deletion_id) if deletion_id else None
        if deletion and deletion.get("reason") in MINOR_TERMINATIONS:
            evidence.append({"verdict": "minor", "source": MINOR_TERMINATIONS[deletion["reason"]],
                             "at": deletion["requested_at"]})
        if meta.get("verified") == "adult":
            evidence.append({"verdict": "adult", "source": "verification_adult",
                             "method": meta.get("verified_method"),
                             "at": meta.get("verified_at")})
        for source in self.age_evidence:
            found = source(account_id, account_hash)
            if found:
                evidence.append(found)
        verdicts = {item["verdict"] for item in evidence}
        established = "minor" if "minor" in verdicts else "adult" if verdicts else "unknown"
        return {
            "seen": seen,
            "status": "terminated" if deletion_id else (meta.get("status", "active")
                                                        if seen else None),
            "established": established,
            "evidence": evidence,
            "score": float(meta["score"]) if meta.get("score") else None,
            "band": meta.get("band") or None,
        }

    def notify_age_known(self, account_id: str, verdict: str, actor: str) -> None:
        """Tell the hooks (waiting parent requests) that the account's age is now known."""
        for hook in self.age_known_hooks:
            hook(account_id, verdict, actor)

    def restrict_for_verification(self, account_id: str, case_id: str, *, actor: str,
                                  reason: str) -> bool:
        """Restrict a known, live account until an age-assurance result arrives; False when it
        is already restricted, terminated or never seen (nothing is created)."""
        account_hash = self.hasher.account(account_id)
        meta_key = keys.account(account_hash)

        def build(pipe: redis.client.Pipeline) -> bool:
            if self.deletions.for_account(pipe, account_hash):
                return False
            meta = self.accounts.meta(pipe, account_hash)
            if meta.get("status") == "restricted" or not self.accounts.seen(pipe, account_hash):
                return False
            now = self.clock.now()
            chain = self.audit.begin(pipe)
            pipe.multi()
            # No open-case pointer: a report or the classifier can still open a case on the
            # account, where a reviewer's confirm_minor establishes what the request waits for.
            self.accounts.queue_meta(pipe, account_hash, account_id,
                                     {"status": "restricted", "restricted_case": case_id,
                                      "updated_at": iso(now)})
            self.events.queue_emit(pipe, "account.restricted", account_id=account_id, at=now,
                                   case_id=case_id)
            chain.append(pipe, actor=actor, action="account_restricted", account_id=account_id,
                         details={"case_id": case_id, "reason": reason})
            return True

        return bool(transact(self.r, build, meta_key, keys.account_deletion(account_hash),
                             *keys.account_keys(account_hash)))

    # -- verification --------------------------------------------------------------------
    def holds_case(self, account_id: str, reviewer: str) -> bool | None:
        """Whether `reviewer` holds this account's case: a case of the account they have
        claimed (lease still running), or the case the account is restricted under, claimed
        and decided by them. None for an account never seen (there is nothing to hold)."""
        account_hash = self.hasher.account(account_id)
        meta = self.accounts.meta(self.r, account_hash)
        if not meta:
            return None
        restricted = meta.get("restricted_case")
        now = self.clock.now().timestamp()
        for case_id in {*self.accounts.case_ids(self.r, account_hash), restricted} - {None, ""}:
            case = self.cases.read(self.r, str(case_id))
            if case is None or case.get("claimed_by") != reviewer:
                continue
            if case["status"] == "claimed" and (case.get("lease_until") or 0) > now:
                return True
            if case_id == restricted and case["status"] in ("claimed", "decided"):
                return True
        return False

    def verify(self, account_id: str, outcome: str, method: str, born: date | None, *,
               actor: str) -> dict[str, Any]:
        """Apply an age-assurance result to a restricted account. `born` times the identity
        block only and is never stored."""
        if born is not None:
            today = self.clock.today()
            if born > today or age_on(born, today) > 130:
                raise ValidationFailed(fields={"date_of_birth": ["Is not a plausible date."]})
            if outcome == "minor" and age_on(born, today) >= ADULT_AGE:
                raise ValidationFailed(fields={"date_of_birth": ["Does not match outcome minor."]})
        details = {"verification": outcome, "method": method}
        account_hash = self.hasher.account(account_id)
        captured: list[dict[str, Any] | None] = [None]
        if outcome == "minor":
            # The example is taken just before termination deletes the state it comes from.
            if self.feedback is not None:
                captured[0] = self.feedback.capture(self.r, account_hash)

            def precheck(plan: TerminationPlan) -> None:
                if plan.existing:
                    raise terminated()
                if not plan.meta:
                    raise NotFound("No such account.")
                if plan.meta.get("status") != "restricted":
                    raise Conflict("The account is not awaiting verification.")

            record = self.enforcement.terminate(account_id, actor=actor,
                                                reason="verified_minor", born=born,
                                                details=details, precheck=precheck)
            if self.feedback is not None:
                self.feedback.record(captured[0], "minor")
            self.notify_age_known(account_id, "minor", actor)
            return {**self.get(account_id), "deletion_id": record["deletion_id"]}

        meta_key = keys.account(account_hash)

        def build(pipe: redis.client.Pipeline) -> None:
            watch(pipe, keys.account_deletion(account_hash), keys.account_open_case(account_hash),
                  keys.account_open_age_case(account_hash))
            if self.deletions.for_account(pipe, account_hash):
                raise terminated()
            meta = self.accounts.meta(pipe, account_hash)
            if not meta:
                raise NotFound("No such account.")
            if meta.get("status") != "restricted":
                raise Conflict("The account is not awaiting verification.")
            if self.feedback is not None:
                captured[0] = self.feedback.capture(pipe, account_hash)
            restricted_case = meta.get("restricted_case")
            now = self.clock.now()
            chain = self.audit.begin(pipe)
            pipe.multi()
            # The result stays on the account: a parent request cannot act on a verified adult.
            self.accounts.queue_meta(pipe, account_hash, account_id,
                                     {"status": "active", "updated_at": iso(now),
                                      "verified": "adult", "verified_method": method,
                                      "verified_at": iso(now)},
                                     drop=("restricted_case",))
            self.accounts.queue_pointer(pipe, account_hash, None)
            self.accounts.queue_pointer(pipe, account_hash, None, kind="age_signal")
            if restricted_case:
                # The case may live in another shard (a parent request's case opened before
                # its child was known): its history line goes through this unit's outbox.
                self.cases.queue_history(pipe, restricted_case, {
                    "at": iso(now), "event": "verified", "outcome": outcome, "method": method,
                    "actor": actor})
            self.events.queue_emit(pipe, "account.unrestricted", account_id=account_id, at=now)
            chain.append(pipe, actor=actor, action="account_verified", account_id=account_id,
                         details={**details, "case_id": meta.get("restricted_case")})

        transact(self.r, build, meta_key)
        if self.feedback is not None:
            self.feedback.record(captured[0], "adult")
        self.notify_age_known(account_id, "adult", actor)
        return self.get(account_id)

    # -- parents' rights (issue 5 calls these) -----------------------------------------
    def stop_processing(self, account_id: str, *, actor: str) -> None:
        """A parent's objection: refuse further signals and forget the score state."""
        account_hash = self.hasher.account(account_id)

        def build(pipe: redis.client.Pipeline) -> None:
            if self.deletions.for_account(pipe, account_hash):
                return  # terminated: nothing is processed or held any more
            now = self.clock.now()
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.accounts.queue_meta(pipe, account_hash, account_id,
                                     {"processing": "stopped", "updated_at": iso(now)},
                                     drop=("score", "band", "flagged"))
            self.accounts.queue_drop_state(pipe, account_hash)
            chain.append(pipe, actor=actor, action="processing_stopped", account_id=account_id)

        transact(self.r, build, keys.account(account_hash), keys.account_state(account_hash),
                 keys.account_deletion(account_hash))

    def export(self, account_id: str) -> dict[str, Any]:
        """Everything this service holds on the account (a parent's access request)."""
        account_hash = self.hasher.account(account_id)
        try:
            account: dict[str, Any] | None = self.get(account_id)
        except NotFound:
            account = None
        case_ids = self.accounts.case_ids(self.r, account_hash)
        internal = ("sortkey", "lease_until")
        cases = [{k: v for k, v in c.items() if k not in internal}
                 for c in self.cases.read_many(case_ids)]
        deletion_id = self.deletions.for_account(self.r, account_hash)
        deletions = [d for d in [self.deletions.read(self.r, deletion_id)] if d] \
            if deletion_id else []
        return {
            "account_id": account_id,
            "account": account,
            "model_state": self.accounts.state(self.r, account_hash),
            "linked_identifiers": len(self.accounts.linked_identifiers(self.r, account_hash)),
            "cases": cases,
            "deletions": deletions,
            "audit": self.audit.entries(account_id, 1000),
            **{name: read(account_id) for name, read in self.export_sections.items()},
        }
