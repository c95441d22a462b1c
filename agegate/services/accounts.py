"""Accounts: signals in, an account-level score out, and the cases and restrictions that follow."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import redis

from agegate.clock import Clock, iso
from agegate.crypto import Hasher
from agegate.errors import (
    AgegateError,
    Conflict,
    IdempotencyKeyReused,
    ModelUnavailable,
    NotFound,
    StorageUnavailable,
    ValidationFailed,
)
from agegate.metrics import STATE_RESETS
from agegate.services.age_checks import age_on
from agegate.services.age_signals import stated_rules
from agegate.services.audit import AuditTrail, transact
from agegate.services.enforcement import ADULT_AGE, EnforcementService, TerminationPlan
from agegate.services.feedback import FeedbackService
from agegate.services.review import ReviewService
from agegate.storage import keys, replicas
from agegate.storage.accounts import RECORD_SCRIPT, AccountStore, AccountWrite, SignalView
from agegate.storage.cases import CaseStore
from agegate.storage.deletions import DeletionStore
from agegate.storage.events import EventStream
from agegate.storage.scripts import Calls
from agegate.storage.unit import MAX_ATTEMPTS, apply_scripted, watch

log = logging.getLogger("agegate.accounts")


# A keyed entry's applied-marker (written in the unit that applies it) holds the entry's first
# answer, compactly and text-free (`_encode_answer`): a replay is answered with it. Markers
# written before answers were kept say only that the entry was applied, its case step done
# too (APPLIED) or still due (CASE_DUE); a replay of one is answered from the account.
APPLIED, CASE_DUE = "1", "case"


@dataclass(frozen=True)
class SignalEntry:
    """One account's signals to record: a request's body, or one signal-stream entry with its
    idempotency key (`key`, applied at most once)."""

    account_id: str
    signals: list[dict[str, Any]]
    key: str | None = None


@dataclass
class _Result:
    """One entry's fold: its answer (without account_id), whether its case step is due,
    whether a report made it."""

    answer: dict[str, Any]
    due: bool
    reported: bool
    copy_of: int | None = None  # a repeat of an earlier entry's key in the same batch
    # The answer's case id is only known after an earlier entry's case step in this batch:
    # the marker is written again with the answer given.
    case_pending: bool = False
    error: AgegateError | None = None  # a key reused with another body: refused


def _body_of(signals: list[dict[str, Any]]) -> str:
    """An entry's signals in one canonical form (keys sorted, times as their instant), so a
    retry of the same batch through either door hashes alike."""
    return json.dumps(signals, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_canonical)


def _canonical(value: Any) -> str:
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def _encode_answer(answer: dict[str, Any], *, body: str, due: bool, vocabulary: str,
                   codes: dict[str, int]) -> str:
    """An entry's first answer as its applied-marker keeps it: score, band, flagged, case id
    and top signals, with vocabulary n-grams as their ids in `vocabulary` (the text model's
    version): no text, no account id. `body` is the keyed hash of the entry's signals."""
    top: list[list[Any]] = []
    for item in answer["top_signals"]:
        name = str(item["name"])
        if name.startswith("text:"):
            code = codes.get(name[5:])
            if code is None:
                continue  # not a vocabulary n-gram: never kept as text
            top.append([code, item["weight"]])
        else:
            top.append([name, item["weight"]])
    packed: dict[str, Any] = {"h": body, "s": answer["score"], "b": answer["band"],
                              "f": 1 if answer["flagged"] else 0, "c": answer["case_id"],
                              "t": top, "m": vocabulary}
    if due:
        packed["d"] = 1
    return json.dumps(packed, separators=(",", ":"))


def _decode_answer(raw: str, vocabulary: str, names: list[str]
                   ) -> tuple[dict[str, Any], str, bool] | None:
    """(answer, body hash, case step due) from an applied-marker; None for a marker that
    holds no answer (written before answers were kept). Vocabulary ids are named by the
    model's vocabulary when it is the one they were kept under (a full retrain in between
    drops them: their names are not known any more)."""
    if not raw.startswith("{"):
        return None
    packed = json.loads(raw)
    top = []
    for code, weight in packed["t"]:
        if isinstance(code, int):
            if packed.get("m") != vocabulary or not 0 <= code < len(names):
                continue
            top.append({"name": f"text:{names[code]}", "weight": weight})
        else:
            top.append({"name": code, "weight": weight})
    answer = {"score": packed["s"], "band": packed["b"], "flagged": bool(packed["f"]),
              "case_id": packed["c"], "top_signals": top}
    return answer, str(packed["h"]), bool(packed.get("d"))


@dataclass
class _Fold:
    """One account's entries in a batch, and their fold on the state last read."""

    account_id: str
    account_hash: str
    items: list[tuple[int, SignalEntry, str | None]] = field(default_factory=list)
    view: SignalView | None = None
    write: AccountWrite | None = None
    results: dict[int, _Result] = field(default_factory=dict)
    last: Any = None
    error: Exception | None = None
    reset_from: str | None | bool = False  # the text model of a state reset, if one was
    bodies: dict[int, str] = field(default_factory=dict)  # keyed entries' body hashes

    def entry_hashes(self) -> list[str]:
        """The entries' keys (hashed), each once, in order: the markers read and written."""
        return list(dict.fromkeys(h for _, _, h in self.items if h is not None))

    def fail(self, error: Exception) -> None:
        self.error, self.write = error, None


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
        self._codes: tuple[Any, str, dict[str, int]] | None = None

    # -- signals -------------------------------------------------------------------------
    def record_signals(self, entries: Sequence[SignalEntry], *,
                       actor: str) -> list[dict[str, Any] | Exception]:
        """Fold many accounts' signals into their bounded states, score them, open or raise
        their cases: one outcome per entry, in order (the score, or the error that refused it).

        The one write path for signals: a request passes one entry, `agegate worker` its whole
        batch. Entries are grouped by account (an account's entries fold in the order given)
        and accounts by slot. One pipelined round trip reads every account; one more applies
        each slot's share as one script that first checks those reads are unchanged (else that
        slot is read and folded again). A case step follows for the entries that call for one.

        An entry's `key` (the signal stream's idempotency key) is applied at most once: its
        marker is written with the state and says whether its case step is still due. A replay
        writes nothing; it runs the case step only if the applying call died before it (a
        reviewer may have decided the case since a completed one), and answers the score.
        """
        model = self.model()
        if model is None:
            raise ModelUnavailable()
        outcomes: list[dict[str, Any] | Exception | None] = [None] * len(entries)
        folds: dict[str, _Fold] = {}
        for index, entry in enumerate(entries):
            account_hash = self.hasher.account(entry.account_id)
            fold = folds.get(account_hash)
            if fold is None:
                fold = folds[account_hash] = _Fold(entry.account_id, account_hash)
            fold.items.append((index, entry, self._entry_hash(entry.key)
                               if entry.key is not None else None))
            if entry.key is not None:
                fold.bodies[index] = self._body_hash(entry.signals)
        by_shard: dict[int, list[_Fold]] = {}
        for fold in folds.values():
            by_shard.setdefault(keys.shard_of(fold.account_hash), []).append(fold)

        pending = set(by_shard)
        for _ in range(MAX_ATTEMPTS):
            calls = Calls(self.r)
            asked = [(fold, self.accounts.queue_signal_view(calls, fold.account_hash,
                                                            fold.entry_hashes()))
                     for shard in pending for fold in by_shard[shard]]
            replies = calls.execute() if asked else []
            for fold, (found, meta) in asked:
                for reply in (replies[found], replies[meta]):
                    if isinstance(reply, Exception):
                        raise reply
                view = self.accounts.signal_view_of(replies[found], replies[meta])
                if fold.view is None or fold.view.fingerprint != view.fingerprint:
                    self._fold(model, fold, view)
            # With replicas to confirm, a slot with nothing new (replays) still sends its
            # marker: the WAIT after it covers an earlier, unconfirmed application too.
            confirm = replicas.policy(self.r).replicas > 0
            units = {shard: self.accounts.record_unit(keys.shard_tag(shard)[1:-1], writes)
                     for shard in pending
                     if (writes := [f.write for f in by_shard[shard] if f.write is not None])
                     or confirm}
            applied = apply_scripted(self.r, RECORD_SCRIPT, list(units.values()))
            pending = {shard for shard, done in zip(units, applied, strict=True) if not done}
            if not pending:
                break
        else:
            busy = StorageUnavailable("The store is too busy to apply this change; try again.")
            for shard in pending:
                for fold in by_shard[shard]:
                    fold.fail(busy)

        for fold in folds.values():
            if fold.reset_from is not False:
                STATE_RESETS.inc()
                log.info("account state of text model %s reset for text model %s",
                         fold.reset_from, model.text_version)
            self._follow_up(model, fold, actor, outcomes)
        return [StorageUnavailable() if outcome is None else outcome for outcome in outcomes]

    def record_signal(self, account_id: str, signals: list[dict[str, Any]], *,
                      actor: str, key: str | None = None) -> dict[str, Any]:
        """`record_signals` for one account's signals (a request, with its idempotency key if
        it has one): its score, or its error."""
        outcome = self.record_signals([SignalEntry(account_id, signals, key)], actor=actor)[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _fold(self, model: Any, fold: _Fold, view: SignalView) -> None:
        """Fold the account's entries, in order, into the state `view` read: per entry its
        score and whether a case step is due; the write (if any) the slot's script applies."""
        fold.view, fold.write, fold.reset_from = view, None, False
        fold.results, fold.last, fold.error = {}, None, None
        if view.deletion_id or view.processing == "stopped":
            fold.fail(terminated() if view.deletion_id else processing_stopped())
            return
        state = view.state
        if state is not None and not model.on_scale(state):
            # Its sums are on another text model's scale (a full retrain): model.update
            # keeps its platform counters and starts its text evidence again.
            fold.reset_from = str(state.get("m")) if isinstance(state, dict) else None
        case_open, case_score = view.case_id is not None, view.case_score
        applied_of = dict(zip(fold.entry_hashes(), view.applied, strict=True))
        written: dict[str, str] = {}
        seen: dict[str, int] = {}  # entry hash -> the index that applied it in this batch
        vocabulary, codes = self._vocabulary(model)
        now = self.clock.now()
        # Until a case step of this batch has run, the account's open case is the one read.
        case_id, case_known = view.case_id, True
        try:
            for index, entry, entry_hash in fold.items:
                body = fold.bodies.get(index)
                if entry_hash is not None and entry_hash in seen:
                    first = seen[entry_hash]
                    fold.results[index] = _Result({}, False, False, copy_of=first) \
                        if fold.bodies.get(first) == body else \
                        _Result({}, False, False, error=IdempotencyKeyReused())
                    continue
                reported = any(s["type"] == "report" and s.get("reason") == "suspected_minor"
                               for s in entry.signals)
                applied = applied_of.get(entry_hash) if entry_hash is not None else None
                if applied:  # a replay: nothing to write; answered as the first time
                    kept = _decode_answer(applied, vocabulary, model.vocab_names)
                    if kept is None:  # a marker without its answer: from the account
                        scored = model.score(state or model.new_state())
                        fold.results[index] = _Result(
                            self._answer(scored, view, now, case_id), applied == CASE_DUE,
                            reported, case_pending=not case_known)
                    elif kept[1] != body:
                        fold.results[index] = _Result({}, False, False,
                                                      error=IdempotencyKeyReused())
                    else:
                        fold.results[index] = _Result(kept[0], kept[2], reported)
                    continue
                state = model.update(state if state is not None else model.new_state(),
                                     entry.signals)
                result = model.score(state)
                # The open case already carries this score or a higher one: nothing to raise.
                settled = (case_open and case_score is not None
                           and float(result.score) <= float(case_score))
                due = reported or (bool(result.flagged) and not settled)
                answer = self._answer(result, view, now, case_id)
                fold.results[index] = _Result(answer, due, reported,
                                              case_pending=not case_known)
                if due:  # the case step below opens or raises the case to this score
                    case_open, case_score = True, repr(float(result.score))
                    case_known = False
                if entry_hash is not None and body is not None:
                    seen[entry_hash] = index
                    written[entry_hash] = _encode_answer(answer, body=body, due=due,
                                                         vocabulary=vocabulary, codes=codes)
                fold.last = result
        except AgegateError as error:
            fold.fail(error)
            return
        except Exception as error:  # noqa: BLE001 - one bad entry must not fail the others
            log.error("signals for one account failed: %s", type(error).__name__)
            fold.fail(error)
            return
        if fold.last is not None:
            result = fold.last
            fold.write = AccountWrite(fold.account_hash, view, state, {
                "account_id": fold.account_id, "score": repr(float(result.score)),
                "band": str(result.band), "flagged": "1" if result.flagged else "0",
                "updated_at": iso(self.clock.now())},
                [(h, written.get(h, "")) for h in fold.entry_hashes()])

    def _follow_up(self, model: Any, fold: _Fold, actor: str,
                   outcomes: list[dict[str, Any] | Exception | None]) -> None:
        """Each entry's outcome, after its case step when one is due. A keyed entry whose
        answer changed with a case step has it kept in its marker (the marker's TTL stays)."""
        if fold.error is not None:
            for index, _, _ in fold.items:
                outcomes[index] = fold.error
            return
        assert fold.view is not None
        case_id = fold.view.case_id
        vocabulary, codes = self._vocabulary(model)
        for index, _, entry_hash in fold.items:
            result = fold.results[index]
            if result.error is not None:
                outcomes[index] = result.error
                continue
            if result.copy_of is not None:
                outcomes[index] = outcomes[result.copy_of]
                continue
            answer = dict(result.answer)
            if result.case_pending:
                answer["case_id"] = case_id
            if result.due:
                try:
                    case = self.review.open_or_raise(
                        fold.account_id, "report" if result.reported else "classifier",
                        actor=actor, score=answer["score"], top_signals=answer["top_signals"])
                except AgegateError as error:
                    outcomes[index] = error
                    continue
                answer["case_id"] = case_id = case["case_id"]
            body = fold.bodies.get(index)
            if entry_hash and body is not None and (result.due or result.case_pending):
                self.accounts.mark_applied(fold.account_hash, entry_hash, _encode_answer(
                    answer, body=body, due=False, vocabulary=vocabulary, codes=codes))
            outcomes[index] = {"account_id": fold.account_id, **answer}

    @staticmethod
    def _answer(result: Any, view: SignalView, now: datetime,
                case_id: str | None) -> dict[str, Any]:
        """A score as answered (without account_id): stated rules beside the model's signals;
        they never change the score or the flag."""
        return {"score": float(result.score), "band": str(result.band),
                "flagged": bool(result.flagged), "case_id": case_id,
                "top_signals": stated_rules(view.adult_until, now) + _top(result.top_signals)}

    def _vocabulary(self, model: Any) -> tuple[str, dict[str, int]]:
        """The model's text version and its vocabulary's n-gram -> id (cached per model)."""
        cached = self._codes
        if cached is None or cached[0] is not model:
            cached = self._codes = (model, str(model.text_version),
                                    {name: i for i, name in enumerate(model.vocab_names)})
        return cached[1], cached[2]

    def _body_hash(self, signals: list[dict[str, Any]]) -> str:
        """A keyed hash of an entry's signals (64 bits: tells two bodies under one key apart)."""
        return self.hasher.short("signal_entry_body", _body_of(signals))[:16]

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
            self.record_signal(account_id, [{"type": "age_redeclaration", "at": at}], actor=actor)
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
