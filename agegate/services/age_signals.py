"""Platform age signals: what Apple, Google, the operating system (Cal. Civ. Code §1798.500-.502,
AB 1043) or an age-assurance vendor said about an account's age, with provenance and an assurance
level per signal; the account's standing age; and the rule that an under-18 signal is acted on.

Rules (API.md, "Platform age signals"):
- The assurance level comes from the method, in IEEE 2089.1's words.
- A signal whose range lies under 18 is never ignored: AB 1043 makes the OS signal actual
  knowledge, and Utah Code §13-76-202(1)(c) has safety defaults follow the age category. The
  account is restricted at once and gets exactly one open `age_signal` case, whatever the
  classifier says and whatever else was declared.
- Where sources disagree, the lowest range of the highest assurance level stands, and the
  disagreement is shown (`conflict`).
- An adult at `enhanced` assurance is a stated rule, shown to reviewers next to the model's
  signals (`age_signal:verified_adult`, weight 0: it never changes the score or hides a case).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import redis

from agegate.clock import Clock, iso, parse_iso
from agegate.crypto import Hasher, new_id
from agegate.errors import Conflict, ValidationFailed
from agegate.services.audit import AuditTrail, transact
from agegate.services.review import new_case
from agegate.storage import keys
from agegate.storage.accounts import AccountStore
from agegate.storage.age_signals import MAX_SIGNALS, VERIFIED_ADULT_FIELD, AgeSignalStore
from agegate.storage.cases import CaseStore
from agegate.storage.events import EventStream
from agegate.storage.idempotency import IdempotencyKey, IdempotencyStore

ADULT_AGE = 18
MAX_AGE = 130
SOURCES = ("apple_declared_age_range", "google_play_age_signals", "os_age_signal",
           "age_assurance_vendor", "self_declared")
REVOCATION_SOURCES = ("apple_declared_age_range", "google_play_age_signals")
REVOCATION_REASONS = ("consent_revoked", "approval_revoked")
# IEEE 2089.1 assurance words, lowest first.
LEVELS = ("asserted", "standard", "enhanced")
METHOD_LEVEL = {
    "self_declared": "asserted", "guardian_declared": "asserted", "other": "asserted",
    "estimated": "standard", "payment_checked": "standard",
    "id_checked": "enhanced", "confirmed": "enhanced",
}
PARENTAL_APPROVAL = ("approved", "denied", "pending")
MAX_INSTALL_IDS = 1000
# A device clock a little ahead of ours is not an error.
CLOCK_SKEW = timedelta(minutes=5)
VERIFIED_ADULT = "age_signal:verified_adult"


def _upper(signal: dict[str, Any]) -> float:
    return math.inf if signal["upper"] is None else signal["upper"]


def under_18(signal: dict[str, Any]) -> bool:
    """The whole range lies under 18."""
    return signal["upper"] is not None and signal["upper"] < ADULT_AGE


def standing(signals: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The account's age: the lowest range of the highest assurance level, and whether any two
    live signals disagree (their ranges do not overlap)."""
    if not signals:
        return None
    top = max(LEVELS.index(s["assurance"]) for s in signals)
    best = min((s for s in signals if LEVELS.index(s["assurance"]) == top),
               key=lambda s: (s["lower"], _upper(s), s["observed_at"]))
    conflict = any(a["lower"] > _upper(b) or b["lower"] > _upper(a)
                   for i, a in enumerate(signals) for b in signals[i + 1:])
    return {"lower": best["lower"], "upper": best["upper"], "assurance": best["assurance"],
            "source": best["source"], "observed_at": best["observed_at"], "conflict": conflict}


def verified_adult_until(signals: list[dict[str, Any]]) -> datetime | None:
    """While the standing age is an adult at enhanced assurance: until the first of the
    enhanced signals expires (after that the standing age may change; the rule lapses)."""
    age = standing(signals)
    if not age or age["assurance"] != "enhanced" or age["lower"] < ADULT_AGE:
        return None
    return min(parse_iso(s["expires_at"]) for s in signals if s["assurance"] == "enhanced")


def stated_rules(adult_until: str | None, now: datetime) -> list[dict[str, Any]]:
    """The rules shown with a score (top_signals, weight 0): never a silent override."""
    if adult_until and float(adult_until) > now.timestamp():
        return [{"name": VERIFIED_ADULT, "weight": 0.0}]
    return []


def _range(signal: dict[str, Any]) -> str:
    return f"{signal['lower']}+" if signal["upper"] is None else \
        f"{signal['lower']}-{signal['upper']}"


class AgeSignalService:
    """Take platform age signals and revocations in; say what the account's age is."""

    def __init__(self, client: redis.Redis, hasher: Hasher, store: AgeSignalStore,
                 accounts: AccountStore, cases: CaseStore, audit: AuditTrail,
                 events: EventStream, clock: Clock, ttl_days: int,
                 idempotency: IdempotencyStore) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.idempotency = idempotency
        self.hasher = hasher
        self.store = store
        self.accounts = accounts
        self.cases = cases
        self.audit = audit
        self.events = events
        self.clock = clock
        self.ttl = timedelta(days=ttl_days)
        # Called after an under-18 signal was stored: (account_id, "minor", actor), so that
        # requests waiting on the holder's age (parents' deletion or access) go ahead.
        self.age_known_hooks: list[Callable[[str, str, str], None]] = []

    # -- reading -------------------------------------------------------------------------
    def signals(self, account_id: str) -> list[dict[str, Any]]:
        """The account's live signals with provenance (for reviewers), newest first."""
        found = self.store.live(self.r, self.hasher.account(account_id), self.clock.now())
        return sorted(found, key=lambda s: s["observed_at"], reverse=True)

    def age(self, account_id: str) -> dict[str, Any] | None:
        """`GET /v1/accounts/{id}`'s `age`: null when no live signal is known."""
        return standing(self.signals(account_id))

    def minority_established(self, account_id: str) -> bool:
        """True while an unexpired signal puts the account holder under 18 (for parents'
        requests: a platform's under-18 signal establishes the child is a minor)."""
        return any(under_18(s) for s in self.signals(account_id))

    def evidence(self, account_id: str, account_hash: str) -> dict[str, Any] | None:
        """What the live signals establish about the holder's age, for parents' requests:
        an under-18 range (AB 1043 makes it actual knowledge) or an adult at enhanced
        assurance; None while neither is known. `account_hash` is unused (the signals are
        read by id), but it is the evidence sources' shared signature."""
        del account_hash
        live = self.signals(account_id)
        minor = [s for s in live if under_18(s)]
        if minor:
            return {"verdict": "minor", "source": f"age_signal:{minor[0]['source']}",
                    "at": minor[0]["observed_at"]}
        age = standing(live)
        if age and age["assurance"] == "enhanced" and age["lower"] >= ADULT_AGE:
            return {"verdict": "adult", "source": f"age_signal:{age['source']}",
                    "at": age["observed_at"]}
        return None

    # -- writing -------------------------------------------------------------------------
    def _check(self, data: dict[str, Any], now: datetime) -> None:
        """Cross-field rules the schema cannot state."""
        errors: dict[str, list[str]] = {}
        lower, upper = data["age_lower"], data.get("age_upper")
        if upper is not None and upper < lower:
            errors["age_upper"] = ["Must not be below age_lower."]
        problem = self.observed_problem(data["observed_at"], now)
        if problem:
            errors["observed_at"] = [problem]
        if errors:
            raise ValidationFailed(fields=errors)

    def observed_problem(self, observed: datetime, now: datetime) -> str | None:
        """Why a signal seen at `observed` cannot count now (in the future, or expired)."""
        if observed > now + CLOCK_SKEW:
            return "Must not be in the future."
        if observed + self.ttl <= now:
            return f"Older than {self.ttl.days} days: the signal has expired."
        return None

    def record(self, account_id: str, data: dict[str, Any], *, actor: str,
               idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
        """Store one signal; an under-18 range restricts the account and opens its case. The
        answer's `age` is the account's standing age as this unit leaves it; a retry with the
        same Idempotency-Key stores nothing again and gets the first answer."""
        now = self.clock.now()
        self._check(data, now)
        account_hash = self.hasher.account(account_id)
        signal = self.new_signal(
            source=data["source"], method=data["method"], lower=data["age_lower"],
            upper=data.get("age_upper"), observed_at=data["observed_at"], now=now,
            jurisdiction=data.get("jurisdiction"),
            parental_approval=data.get("parental_approval"),
            install_hash=self._install_hash(data["source"], data["install_id"])
            if data.get("install_id") else None)

        shard = keys.shard_of(account_hash)

        def build(pipe: Any) -> tuple[dict[str, Any], bool]:
            if idempotency is not None:
                kept = self.idempotency.first(pipe, shard, idempotency)
                if kept is not None:
                    return kept, True
            action, write = self.stage(pipe, account_id, account_hash, signal, now, actor=actor)
            # What the store keeps after this write: the live signals and this one, the
            # MAX_SIGNALS latest to expire (storage/age_signals.py queue_add).
            kept_signals = sorted([*self.store.live(pipe, account_hash, now), signal],
                                  key=lambda s: s["expires_at"])[-MAX_SIGNALS:]
            answer = {"age": standing(kept_signals), "action": action}
            chain = self.audit.begin(pipe)
            pipe.multi()
            write(pipe, chain)
            if idempotency is not None:  # the range, level, source and times: no ids
                self.idempotency.queue_remember(pipe, shard, idempotency, answer)
            return answer, False

        answer, replayed = transact(self.r, build, *self.watched(account_hash))
        if under_18(signal) and not replayed:
            for hook in self.age_known_hooks:
                hook(account_id, "minor", actor)
        return {"account_id": account_id, **answer}

    def new_signal(self, *, source: str, method: str, lower: int, upper: int | None,
                   observed_at: datetime, now: datetime, **provenance: Any) -> dict[str, Any]:
        """One signal as stored: its level from the method, its expiry from when it was seen.
        `provenance`: jurisdiction, parental_approval, install_hash, assurance_id (optional)."""
        return {
            "signal_id": new_id("sig"), "source": source, "method": method,
            "assurance": METHOD_LEVEL[method], "lower": lower, "upper": upper,
            "observed_at": iso(observed_at), "received_at": iso(now),
            "expires_at": iso(observed_at + self.ttl),
            "jurisdiction": None, "parental_approval": None, "install_hash": None,
            **provenance,
        }

    def stage(self, pipe: Any, account_id: str, account_hash: str, signal: dict[str, Any],
              now: datetime, *, actor: str, reason: str = "under_18_signal"
              ) -> tuple[str, Callable[[Any, Any], None]]:
        """The one way a signal joins an account's evidence, inside a caller's unit of work.

        Reads what storing `signal` needs (under the WATCH of `watched(account_hash)`; call
        before `pipe.multi()`) and returns (action, write): `write(pipe, chain)` queues the
        signal, the verified-adult rule, its audit entry and, for an under-18 range, the
        restriction and the account's one age_signal case (`reason` names why, in the case's
        ref). A terminated account is a Conflict (account_terminated).
        """
        action = "none"
        restrict = None
        adult_until = verified_adult_until([*self.store.live(pipe, account_hash, now), signal])
        if under_18(signal):
            action, restrict = self._prepare_restriction(pipe, account_hash)
        elif self.store.terminated(pipe, account_hash):
            raise Conflict("The account has been terminated.", code="account_terminated")
        details = {"signal_id": signal["signal_id"], "source": signal["source"],
                   "method": signal["method"], "assurance": signal["assurance"],
                   "range": _range(signal)}
        expires = parse_iso(signal["expires_at"])

        def write(pipe: Any, chain: Any) -> None:
            self.store.queue_add(pipe, account_hash, account_id, signal, expires, now)
            if adult_until is None:
                self.accounts.queue_meta(pipe, account_hash, account_id,
                                         {"updated_at": iso(now)}, drop=(VERIFIED_ADULT_FIELD,))
            else:
                self.accounts.queue_meta(pipe, account_hash, account_id, {
                    "updated_at": iso(now), VERIFIED_ADULT_FIELD: repr(adult_until.timestamp())})
            chain.append(pipe, actor=actor, action="age_signal_recorded", account_id=account_id,
                         details=details)
            if restrict is not None:
                restrict(pipe, chain, account_id, {**details, "reason": reason}, actor, now)

        return action, write

    def revoke(self, source: str, install_ids: list[str], reason: str, *,
               actor: str) -> dict[str, int]:
        """A store says a parent revoked consent or approval: restrict every account seen with
        those installs and open its age_signal case."""
        if len(install_ids) > MAX_INSTALL_IDS:  # the schema says so too; never trust one door
            raise ValidationFailed(fields={"install_ids": [f"At most {MAX_INSTALL_IDS}."]})
        # Under every live key: an install seen before a key rotation is still matched.
        hashes = {digest for install_id in install_ids
                  for digest in self.hasher.all_short("install", f"{source}\x00{install_id}")}
        matched = 0
        for account_id in sorted(self.store.accounts_for_installs(hashes)):
            account_hash = self.hasher.account(account_id)
            details = {"source": source, "reason": reason}

            def build(pipe: Any, account_id: str = account_id, account_hash: str = account_hash,
                      details: dict[str, str] = details) -> bool:
                # A terminated account (quiet) has nothing left to restrict.
                _, restrict = self._prepare_restriction(pipe, account_hash, quiet=True)
                if restrict is None:
                    return False
                chain = self.audit.begin(pipe)
                pipe.multi()
                restrict(pipe, chain, account_id, details, actor, self.clock.now())
                return True

            if transact(self.r, build, *self.watched(account_hash)):
                matched += 1
        return {"matched": matched}

    # -- the restriction, shared by both doors ------------------------------------------
    def watched(self, account_hash: str) -> tuple[str, ...]:
        """What a unit of work that stages a signal must WATCH (all in the account's slot)."""
        return (keys.account_deletion(account_hash), keys.account(account_hash),
                keys.account_open_age_case(account_hash), keys.age_signals(account_hash))

    def _prepare_restriction(self, pipe: Any, account_hash: str, quiet: bool = False) -> Any:
        """Read what restricting needs (under WATCH); returns (action, writer or None).

        The account gets one age_signal case: while one is open, or decided as
        request_verification and still awaiting the result, no second one is opened.
        """
        if self.store.terminated(pipe, account_hash):
            if quiet:
                return "none", None
            raise Conflict("The account has been terminated.", code="account_terminated")
        meta = self.accounts.meta(pipe, account_hash)
        existing_id = self.store.open_case(pipe, account_hash)
        existing = self.cases.read(pipe, existing_id) if existing_id else None
        if existing is not None and (existing["status"] != "decided"
                                     or meta.get("status") == "restricted"):
            already = meta.get("status") == "restricted"

            def keep(pipe: Any, chain: Any, account_id: str, details: dict[str, Any],
                     actor: str, now: datetime) -> None:
                if not already:
                    self._queue_restrict(pipe, account_hash, account_id, existing["case_id"], now)
                chain.append(pipe, actor=actor, action="age_signal_case_kept",
                             account_id=account_id,
                             details={**details, "case_id": existing["case_id"]})

            return "restricted", keep

        def open_case(pipe: Any, chain: Any, account_id: str, details: dict[str, Any],
                      actor: str, now: datetime) -> None:
            case = new_case(account_id, "age_signal", now, actor=actor, account_hash=account_hash,
                            ref={k: str(v) for k, v in details.items()})
            self.cases.queue_create(pipe, case, account_hash)
            self.store.queue_open_case(pipe, account_hash, case["case_id"])
            if meta.get("status") != "restricted":
                self._queue_restrict(pipe, account_hash, account_id, case["case_id"], now)
            chain.append(pipe, actor=actor, action="case_opened", account_id=account_id,
                         details={"case_id": case["case_id"], "kind": "age_signal",
                                  "score": None})

        return "case_opened", open_case

    def _queue_restrict(self, pipe: Any, account_hash: str, account_id: str, case_id: str,
                        now: datetime) -> None:
        self.accounts.queue_meta(pipe, account_hash, account_id, {
            "status": "restricted", "restricted_case": case_id, "updated_at": iso(now)})
        self.events.queue_emit(pipe, "account.restricted", account_id=account_id, at=now,
                               case_id=case_id)

    def _install_hash(self, source: str, install_id: str) -> str:
        """Install ids are per store, so the store is part of what is hashed."""
        return self.hasher.short("install", f"{source}\x00{install_id}")
