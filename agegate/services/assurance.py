"""Step-up age assurance: where a declared age is not enough (API.md "Age assurance").

The platform relays its vendor's result (or this service's own digital-credential check records
one); this service judges whether it is *highly effective* for the jurisdiction, keeps an
assurance record for a regulator, and lets the result act on the account:

- A highly effective `over_threshold` admits a `pending_assurance` account and becomes age
  evidence `adult` (level `enhanced` for a verification method, `standard` for an estimation).
- `under_threshold` from a verification method is an under-18 finding: the account is restricted
  at once and gets its one `age_signal` case (a reviewer confirms; nothing is terminated unseen).
  From an estimation it only means the person must use a verification method.

Age evidence has one place: a result that counts is stored as an age signal (source
`age_assurance_vendor`) through AgeSignalService.stage, so the account's standing age, the
conflict rule, the under-18 rule and parents' requests all see it the way they see any signal.
The record itself holds no account id (a keyed `account_ref`), document number, image,
estimated age or date of birth, and outlives the account (Retention.assurance_days).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import redis

from agegate.clock import Clock, iso
from agegate.crypto import Hasher
from agegate.errors import Conflict, NotFound, ValidationFailed
from agegate.services import test_mode
from agegate.services.age_signals import ADULT_AGE, AgeSignalService
from agegate.services.audit import AuditTrail, transact
from agegate.services.jurisdictions import METHOD_CATEGORY, JurisdictionTable
from agegate.storage import keys
from agegate.storage.accounts import AccountStore
from agegate.storage.assurance import (
    ASSURED_FIELD,
    PENDING,
    PENDING_JURISDICTION_FIELD,
    AssuranceStore,
)
from agegate.storage.idempotency import IdempotencyKey, IdempotencyStore
from agegate.storage.unit import watch

OUTCOMES = ("over_threshold", "under_threshold", "inconclusive")


@dataclass(frozen=True)
class Staged:
    """An assurance result read and judged inside a unit of work (AssuranceService.stage):
    `write(pipe, chain)` queues it after `pipe.multi()` and returns the record; `after(record)`
    runs what follows the applied unit (parents' requests waiting on the account's age) and
    returns `record`'s answer."""

    write: Callable[[Any, Any], dict[str, Any]]
    after: Callable[[dict[str, Any]], dict[str, Any]]
ACTIONS = ("none", "admitted", "restricted", "case_opened")
# The source and methods a result that counts is stored under as an age signal.
SIGNAL_SOURCE = "age_assurance_vendor"
SIGNAL_METHOD = {"verification": "confirmed", "estimation": "estimated"}
# What the platform's relayed result is recorded with when this service made the check itself.
OWN_PROVIDER = "agegate_digital_credentials"
MAX_EXPORT_DAYS = 731


def judge(table: JurisdictionTable, jurisdiction: str | None, *, method: str, outcome: str,
          threshold_age: int, challenge_age: int | None,
          liveness_checked: bool | None) -> tuple[bool, str]:
    """(highly_effective, why) for a result in `jurisdiction` (API.md's rules, nothing else).

    Highly effective only when the method is one the jurisdiction accepts and, for an
    estimation, the liveness check was done (where required) and the challenge age is at least
    the jurisdiction's; an `over_threshold` must also be over an age no lower than the
    jurisdiction's minimum. Without a jurisdiction (none given and no pending age check) a
    verification method is highly effective and an estimation is not (no challenge age applies).
    """
    category = METHOD_CATEGORY[method]
    if category == "declaration":
        return False, "Not highly effective: a self-declaration never is."
    if jurisdiction is None:
        if category == "verification":
            return True, (f"Highly effective: {method} is a verification method (no "
                          "jurisdiction was given or pending).")
        return False, ("Not highly effective: an estimation is judged against a jurisdiction's "
                       "challenge age and liveness rule, and none was given or pending.")
    _, rule = table.assurance_of(jurisdiction)
    short: list[str] = []
    if method not in rule["accepted_methods"]:
        if not rule["accepted_methods"]:
            short.append(f"{jurisdiction} accepts no assurance method (a declared age suffices "
                         "there)")
        else:
            short.append(f"{method} is not an accepted method in {jurisdiction} (accepted: "
                         f"{', '.join(rule['accepted_methods'])})")
    if category == "estimation":
        needed = rule["estimation_challenge_age"]
        if challenge_age is None:
            short.append("no challenge_age was given for an estimation")
        elif needed is not None and challenge_age < needed:
            short.append(f"challenge_age {challenge_age} is below {jurisdiction}'s {needed}")
        if rule["liveness_required"] and liveness_checked is not True:
            short.append(f"no liveness check was done, which {jurisdiction} requires")
    minimum = table.minimum_age_of(jurisdiction)
    if outcome == "over_threshold" and threshold_age < minimum:
        short.append(f"threshold_age {threshold_age} is below the minimum age in {jurisdiction}")
    if short:
        return False, f"Not highly effective in {jurisdiction}: " + "; ".join(short) + "."
    extra = (f", with challenge age {challenge_age}"
             + (" and a liveness check" if liveness_checked else "")) \
        if category == "estimation" else ""
    return True, (f"Highly effective in {jurisdiction}: {method} is an accepted {category} "
                  f"method{extra}.")


class AssuranceService:
    """Judge and record assurance results; answer reviewers and the regulator's export."""

    def __init__(self, client: redis.Redis, hasher: Hasher, store: AssuranceStore,
                 accounts: AccountStore, age_signals: AgeSignalService,
                 table: JurisdictionTable, audit: AuditTrail, clock: Clock,
                 idempotency: IdempotencyStore) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.idempotency = idempotency
        self.hasher = hasher
        self.store = store
        self.accounts = accounts
        self.age_signals = age_signals
        self.table = table
        self.audit = audit
        self.clock = clock

    # -- recording ----------------------------------------------------------------------------
    def record(self, account_id: str | None, *, method: str, provider: str, outcome: str,
               observed_at: datetime, actor: str, jurisdiction: str | None = None,
               evidence_id: str | None = None, threshold_age: int = ADULT_AGE,
               challenge_age: int | None = None,
               liveness_checked: bool | None = None,
               idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
        """Record one age-assurance result and let it act on the account; the one way in.

        Signature (keyword-only after `account_id`):
            record(account_id: str | None, *, method: str, provider: str, outcome: str,
                   observed_at: datetime, actor: str, jurisdiction: str | None = None,
                   evidence_id: str | None = None, threshold_age: int = 18,
                   challenge_age: int | None = None,
                   liveness_checked: bool | None = None) -> dict

        - `account_id`: the platform's account id, or None for a result with no account (a
          sign-up that had only a session): the record is kept (account_ref null) and acts on
          nothing.
        - `method`: one of METHOD_CATEGORY (`digital_identity`, `photo_id_matching`, ...);
          `outcome`: `over_threshold` | `under_threshold` | `inconclusive`; `observed_at`: an
          aware datetime, when the check was done (not in the future, not older than
          AGEGATE_AGE_SIGNAL_TTL_DAYS); `actor`: the caller's name for the audit trail.
        - `jurisdiction`: an ISO 3166 code (or `EU`); None judges the result against the
          jurisdiction whose age check left the account `pending_assurance`, else by the
          method alone (see `judge`).
        - `evidence_id`: the vendor's reference (kept for a regulator's question); never a
          document number. `challenge_age` and `liveness_checked`: estimation only.

        Returns `{"assurance_id", "account_id", "highly_effective", "why", "action"}` with
        action `none` | `admitted` | `restricted` | `case_opened`. Raises ValidationFailed (422)
        on bad input and Conflict `account_terminated` (409) for a terminated account.

        The digital-credentials check records a wallet's answer with the answer itself, in one
        unit of work, through `stage` (services/credentials.py).
        """
        account_hash = self.hasher.account(account_id) if account_id else None
        shard = keys.shard_of(account_hash) if account_hash else \
            keys.shard_of(idempotency.key_hash) if idempotency else \
            secrets.randbelow(keys.SHARDS)

        def build(pipe: Any) -> tuple[Staged | None, dict[str, Any]]:
            if idempotency is not None:
                kept = self.idempotency.first(pipe, shard, idempotency)
                if kept is not None:  # a retry: the record the first one wrote
                    return None, self._recorded(pipe, kept["assurance_id"], account_id)
            staged = self.stage(
                pipe, account_id, shard=shard, method=method, provider=provider,
                outcome=outcome, observed_at=observed_at, actor=actor, jurisdiction=jurisdiction,
                evidence_id=evidence_id, threshold_age=threshold_age,
                challenge_age=challenge_age, liveness_checked=liveness_checked)
            chain = self.audit.begin(pipe)
            pipe.multi()
            record = staged.write(pipe, chain)
            if idempotency is not None:
                self.idempotency.queue_remember(pipe, shard, idempotency,
                                                {"assurance_id": record["assurance_id"]})
            return staged, record

        staged, record = transact(self.r, build, shard=shard)
        return staged.after(record) if staged is not None else record

    def _recorded(self, pipe: Any, assurance_id: str, account_id: str | None
                  ) -> dict[str, Any]:
        """`record`'s answer for a record already written (a retried Idempotency-Key)."""
        found = self.store.read_one(pipe, assurance_id)
        if found is None:  # kept 730 days, the key one: only an operator's deletion
            raise Conflict("The record this Idempotency-Key created is gone; send a new key.")
        return {"assurance_id": assurance_id, "account_id": account_id,
                "highly_effective": found["highly_effective"], "why": found["why"],
                "action": found["action"]}

    def stage(self, pipe: Any, account_id: str | None, *, shard: int, method: str,
              provider: str, outcome: str, observed_at: datetime, actor: str,
              jurisdiction: str | None = None, evidence_id: str | None = None,
              threshold_age: int = ADULT_AGE, challenge_age: int | None = None,
              liveness_checked: bool | None = None) -> Staged:
        """`record`'s reads and judgement inside a caller's unit of work in `shard` (the
        account's, when there is one), before its `pipe.multi()`: the returned `write(pipe,
        chain)` queues the record and its effects after it, and `after(record)` runs what
        follows the applied unit and gives `record`'s answer. Raises as `record` does (422,
        409 account_terminated) before anything is queued."""
        now = self.clock.now()
        self._check(method, outcome, observed_at, now, jurisdiction, threshold_age,
                    challenge_age)
        category = METHOD_CATEGORY[method]
        # A test token's `test-over` / `test-under` evidence id forces a highly effective result.
        forced = test_mode.forced_assurance(evidence_id)
        outcome = forced or outcome
        code = jurisdiction.strip().upper() if jurisdiction else None
        account_hash = self.hasher.account(account_id) if account_id else None
        assurance_id = keys.new_sharded_id("asr", shard)
        base = {
            "assurance_id": assurance_id,
            "account_ref": self.hasher.short("assurance_ref", account_id) if account_id
            else None,
            "method": method, "category": category, "provider": provider,
            "evidence_id": evidence_id, "outcome": outcome, "threshold_age": threshold_age,
            "challenge_age": challenge_age, "liveness_checked": liveness_checked,
            "policy_version": self.table.version,
            "observed_at": iso(observed_at), "recorded_at": iso(now),
        }
        minor_finding = (outcome == "under_threshold" and category == "verification"
                         and threshold_age <= ADULT_AGE)

        meta: dict[str, str] = {}
        if account_hash is not None:
            watch(pipe, *self.age_signals.watched(account_hash))
            meta = self.accounts.meta(pipe, account_hash)
            if self.age_signals.store.terminated(pipe, account_hash):
                raise Conflict("The account has been terminated.", code="account_terminated")
        place = code or meta.get(PENDING_JURISDICTION_FIELD) or None
        highly, why = (True, f"Test mode: evidence_id {evidence_id} forces a highly "
                             f"effective {outcome}.") if forced else \
            judge(self.table, place, method=method, outcome=outcome,
                  threshold_age=threshold_age, challenge_age=challenge_age,
                  liveness_checked=liveness_checked)
        action, write_signal, admit = "none", None, False
        if account_id is not None and account_hash is not None:
            signal = None
            if outcome == "over_threshold" and highly:
                signal = self.age_signals.new_signal(
                    source=SIGNAL_SOURCE, method=SIGNAL_METHOD[category],
                    lower=threshold_age, upper=None, observed_at=observed_at, now=now,
                    jurisdiction=place, assurance_id=assurance_id)
                admit = meta.get("status") == PENDING
            elif minor_finding:
                signal = self.age_signals.new_signal(
                    source=SIGNAL_SOURCE, method=SIGNAL_METHOD[category], lower=0,
                    upper=threshold_age - 1, observed_at=observed_at, now=now,
                    jurisdiction=place, assurance_id=assurance_id)
            if signal is not None:
                action, write_signal = self.age_signals.stage(
                    pipe, account_id, account_hash, signal, now, actor=actor,
                    reason="under_threshold_verification")
            if admit:
                action = "admitted"
        record = {**base, "highly_effective": highly, "why": why, "jurisdiction": place,
                  "action": action}

        def write(pipe: Any, chain: Any) -> dict[str, Any]:
            self.store.queue_add(pipe, record, account_hash, now)
            if account_id is not None and account_hash is not None:
                if write_signal is not None:
                    write_signal(pipe, chain)
                fields = {"updated_at": iso(now)}
                if highly and outcome == "over_threshold":
                    fields[ASSURED_FIELD] = iso(now)
                if admit:
                    fields["status"] = "active"
                self.accounts.queue_meta(pipe, account_hash, account_id, fields,
                                         drop=(PENDING_JURISDICTION_FIELD,) if admit else ())
            chain.append(pipe, actor=actor, action="assurance_recorded", account_id=account_id,
                         details={"assurance_id": assurance_id, "method": method,
                                  "outcome": outcome, "highly_effective": highly,
                                  "jurisdiction": place, "policy_version": self.table.version,
                                  "action": action})
            if admit:
                chain.append(pipe, actor=actor, action="account_admitted",
                             account_id=account_id, details={"assurance_id": assurance_id})
            return record

        def after(record: dict[str, Any]) -> dict[str, Any]:
            if account_id is not None:
                verdict = "minor" if minor_finding else "adult" if (
                    record["highly_effective"] and outcome == "over_threshold"
                    and category == "verification") else None
                if verdict is not None:
                    for hook in self.age_signals.age_known_hooks:
                        hook(account_id, verdict, actor)
            return {"assurance_id": assurance_id, "account_id": account_id,
                    "highly_effective": record["highly_effective"], "why": record["why"],
                    "action": record["action"]}

        return Staged(write, after)

    def _check(self, method: str, outcome: str, observed_at: datetime, now: datetime,
               jurisdiction: str | None, threshold_age: int,
               challenge_age: int | None) -> None:
        """What the schema cannot say (and never trusting one door): 422 naming the field."""
        errors: dict[str, list[str]] = {}
        if method not in METHOD_CATEGORY:
            errors["method"] = ["Use one of " + ", ".join(METHOD_CATEGORY) + "."]
        elif challenge_age is not None and METHOD_CATEGORY[method] != "estimation":
            errors["challenge_age"] = ["Only an estimation method has a challenge age."]
        if outcome not in OUTCOMES:
            errors["outcome"] = ["Use one of " + ", ".join(OUTCOMES) + "."]
        if observed_at.tzinfo is None:
            errors["observed_at"] = ["Give the timestamp an offset, e.g. Z."]
        else:
            problem = self.age_signals.observed_problem(observed_at, now)
            if problem:
                errors["observed_at"] = [problem]
        if not 13 <= threshold_age <= 25:
            errors["threshold_age"] = ["Must be within 13..25."]
        if challenge_age is not None and not threshold_age <= challenge_age <= 30:
            errors["challenge_age"] = ["Must be within threshold_age..30."]
        if jurisdiction is not None and not self.table.known(jurisdiction):
            errors["jurisdiction"] = ["Use an ISO 3166 code such as GB or US-CA, or EU."]
        if errors:
            raise ValidationFailed(fields=errors)

    # -- the age check's step-up ------------------------------------------------------------
    @staticmethod
    def pending_fields(meta: dict[str, str], jurisdiction: str) -> dict[str, str] | None:
        """The meta fields an age check answered `verify` writes on its account, or None when
        the account must not wait: it is restricted (a reviewer decides), or a highly effective
        result already admitted it."""
        if meta.get("status") == "restricted" or meta.get(ASSURED_FIELD):
            return None
        return {"status": PENDING, PENDING_JURISDICTION_FIELD: jurisdiction}

    def stage_pending(self, pipe: Any, account_hash: str, account_id: str,
                      jurisdiction: str) -> Callable[[Any], None] | None:
        """The age check's hook (AgeCheckService.pending), inside its unit of work: reads the
        account under WATCH and returns the writer that leaves it pending_assurance, or None."""
        watch(pipe, keys.account(account_hash), keys.account_deletion(account_hash))
        if self.age_signals.store.terminated(pipe, account_hash):
            return None
        fields = self.pending_fields(self.accounts.meta(pipe, account_hash), jurisdiction)
        if fields is None:
            return None
        now = self.clock.now()

        def write(pipe: Any) -> None:
            self.accounts.queue_meta(pipe, account_hash, account_id,
                                     {**fields, "updated_at": iso(now)})

        return write

    # -- reading ------------------------------------------------------------------------------
    def for_account(self, account_id: str) -> list[dict[str, Any]]:
        """The account's records, newest first (also after its termination)."""
        records = self.store.for_account(self.hasher.account(account_id))
        return [self._shown(r) for r in records]

    @staticmethod
    def _shown(record: dict[str, Any]) -> dict[str, Any]:
        """A record as a reviewer sees it: the keyed reference stays internal."""
        return {k: v for k, v in record.items() if k != "account_ref"}

    def export(self, start: date, end: date, jurisdiction: str | None) -> Iterator[str]:
        """NDJSON lines of the records recorded from `start` to `end` (both days inclusive, UTC)
        in `jurisdiction` (its subdivisions and, for a group such as EU, its members)."""
        errors: dict[str, list[str]] = {}
        if end < start:
            errors["to"] = ["Must not be before from."]
        elif (end - start).days >= MAX_EXPORT_DAYS:
            errors["to"] = [f"At most {MAX_EXPORT_DAYS} days after from."]
        code = jurisdiction.strip().upper() if jurisdiction else None
        if code is not None and not self.table.known(code):
            errors["jurisdiction"] = ["Use an ISO 3166 code such as GB or US-CA, or EU."]
        if errors:
            raise ValidationFailed(fields=errors)
        begin = datetime.combine(start, time(), UTC)
        # [begin, finish) ends where the day after `to` starts; the calendar's last day has no
        # day after it (nothing is recorded that late, so its end will do).
        finish = (datetime.combine(end + timedelta(days=1), time(), UTC) if end < date.max
                  else datetime.max.replace(tzinfo=UTC))
        for record in self.store.between(begin, finish):
            if code is None or self._within(record.get("jurisdiction"), code):
                yield json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"

    def _within(self, place: str | None, code: str) -> bool:
        if place is None:
            return False
        country = place.split("-", 1)[0]
        return place == code or country == code or self.table.groups.get(country) == code

    def account_view(self, account_id: str, status: str | None) -> dict[str, Any]:
        """`GET /v1/accounts/{id}/assurance`; NotFound for an account never seen without any
        record."""
        records = self.for_account(account_id)
        if status is None and not records:
            raise NotFound("No such account.")
        return {"account_id": account_id, "status": status, "records": records}

