"""The registration age gate: a neutral screen that cannot be beaten by trying another date."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from agegate.clock import Clock
from agegate.crypto import Hasher, new_id
from agegate.errors import ValidationFailed
from agegate.metrics import AGE_CHECKS
from agegate.services import test_mode
from agegate.services.audit import AuditTrail, transact
from agegate.services.jurisdictions import ASSURANCE_METHODS, MinimumAgePolicy
from agegate.storage import keys
from agegate.storage.identities import Identifier, IdentityStore

MAX_PLAUSIBLE_AGE = 130

# Neutral on purpose: the same words for every refusal, and nothing that reveals the cutoff,
# so the screen does not coach anyone into typing an older birth date.
ALLOW_MESSAGE = "Thank you. You can continue."
DENY_MESSAGE = "Sorry, we can't create an account for you."
# Where a declared age is not enough (API.md "Age assurance"): the same words for everyone.
VERIFY_MESSAGE = "Please confirm your age to continue."
MESSAGES = {"allow": ALLOW_MESSAGE, "deny": DENY_MESSAGE, "verify": VERIFY_MESSAGE}

RedeclarationHook = Callable[[str, datetime, str], None]
# Reads (under WATCH, before MULTI) whether the account of a `verify` answer is to wait as
# pending_assurance: (pipe, account_hash, account_id, jurisdiction) -> a writer for the MULTI,
# or None. Set by the assurance service (services/assurance.py).
PendingHook = Callable[[Any, str, str, str], "Callable[[Any], None] | None"]
# (pipe, session hash, identifiers) of a check answered `verify`, inside its unit of work.
VerifySessionHook = Callable[[Any, str, list[Identifier]], None]


def age_on(born: date, today: date) -> int:
    """Whole years on `today`. A 29 February birthday turns over on 1 March in common years,
    because (3, 1) is the first (month, day) after (2, 29)."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _decision(reason: str) -> str:
    return {"of_age": "allow", "assurance_required": "verify"}.get(reason, "deny")


def normalise_email(email: str) -> str:
    """Trimmed and lower-cased, so `Kid@Example.com ` and `kid@example.com` are one person."""
    return email.strip().lower()


@dataclass(frozen=True)
class AgeCheckResult:
    check_id: str
    decision: str
    reason: str
    message: str
    # The accepted assurance methods, for a `verify` answer only.
    methods: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"check_id": self.check_id, "decision": self.decision,
                               "reason": self.reason, "message": self.message}
        if self.methods is not None:
            out["methods"] = list(self.methods)
        return out


class AgeCheckService:
    """Decides allow/deny and remembers under-age attempts by keyed hash only."""

    def __init__(
        self,
        hasher: Hasher,
        identities: IdentityStore,
        audit: AuditTrail,
        policy: MinimumAgePolicy,
        clock: Clock,
    ) -> None:
        self.hasher = hasher
        self.identities = identities
        self.audit = audit
        self.policy = policy
        self.clock = clock
        self.redeclaration_hooks: list[RedeclarationHook] = []
        self.pending: PendingHook | None = None
        # Digital credentials (services/credentials.py): whether a wallet proved over 18 for
        # this session or account lately, and what a `verify` answer leaves for a later deny.
        self.credential_passed: Callable[[list[Identifier]], bool] = lambda lookups: False
        self.verify_session_hooks: list[VerifySessionHook] = []

    def identifiers(self, data: dict[str, Any]) -> list[Identifier]:
        """Keyed hashes of whichever identifiers the check carried."""
        found: list[Identifier] = []
        if data.get("account_id"):
            found.append(("account", self.hasher.account(data["account_id"])))
        for kind, field in (("device", "device_id"), ("session", "session_id")):
            if data.get(field):
                found.append((kind, self.hasher.short(kind, data[field])))
        if data.get("email"):
            found.append(("email", self.hasher.short("email", normalise_email(data["email"]))))
        return found

    def lookups(self, data: dict[str, Any]) -> list[Identifier]:
        """The same identifiers hashed under every live key: a block written before a key
        rotation still refuses them (a check writes only under the primary key)."""
        if len(self.hasher.key_ids) == 1:
            return self.identifiers(data)
        found: list[Identifier] = []
        values = [("account", data.get("account_id")), ("device", data.get("device_id")),
                  ("session", data.get("session_id")),
                  ("email", normalise_email(data["email"]) if data.get("email") else None)]
        for kind, value in values:
            if value:
                found.extend((kind, digest) for digest in self.hasher.all_short(kind, value))
        return found

    def _age(self, born: date) -> int:
        today = self.clock.today()
        if born > today:
            raise ValidationFailed(fields={"date_of_birth": ["Must not be in the future."]})
        age = age_on(born, today)
        if age > MAX_PLAUSIBLE_AGE:
            raise ValidationFailed(fields={"date_of_birth": ["Is not a plausible date of birth."]})
        return age

    def check(self, data: dict[str, Any], actor: str) -> AgeCheckResult:
        """Run one age check. The date of birth is used here and never leaves this function."""
        age = self._age(data["date_of_birth"])
        country = data["country"]
        region = data.get("region")
        identifiers = self.identifiers(data)
        lookups = self.lookups(data)
        # A test token's `@allow.test` / `@deny.test` email decides instead of the date.
        forced = test_mode.forced_decision(data.get("email"))
        under_age = forced == "deny" if forced else age < self.policy.minimum_age(country, region)
        place, assurance = self.policy.assurance(country, region)
        check_id = new_id("chk")
        account_id = data.get("account_id")
        account_hash = dict(identifiers).get("account")  # hashed once, with the others

        # Blocks win over the declared date, whatever it now says; the order is the contract's.
        # The block keys live in many slots, so they are read before the unit of work; blocks
        # only ever get added, so a block written meanwhile changes nothing a moment earlier
        # would not have.
        identity_blocked, retry_blocked = self.identities.blocks(lookups)
        if identity_blocked:
            reason = "identity_blocked"
        elif retry_blocked:
            reason = "previous_underage_attempt"
        elif under_age:
            reason = "under_minimum_age"
        elif forced == "verify" or (not forced and not assurance["self_declaration_sufficient"]):
            reason = "assurance_required"  # a declared adult age does not admit anyone here
        else:
            reason = "of_age"
        if reason in ("under_minimum_age", "assurance_required") and not forced \
                and self.credential_passed(lookups):
            reason = "of_age"  # the wallet's issuer-signed word beats a typed date

        def write(pipe: Any) -> None:
            pending = None
            if (reason == "assurance_required" and account_hash and account_id
                    and self.pending is not None):
                pending = self.pending(pipe, account_hash, account_id, place)
            chain = self.audit.begin(pipe)
            pipe.multi()
            if reason == "under_minimum_age":
                self.identities.queue_retry_blocks(pipe, identifiers)
            if account_hash:
                self.identities.queue_link(pipe, account_hash, identifiers)
            if pending is not None:
                pending(pipe)
            session_hash = dict(identifiers).get("session")
            if reason == "assurance_required" and session_hash:
                for hook in self.verify_session_hooks:
                    hook(pipe, session_hash, identifiers)
            chain.append(pipe, actor=actor, action="age_check", account_id=account_id,
                         details={"check_id": check_id, "decision": _decision(reason),
                                  "reason": reason, "country": country, "region": region})

        # One unit of work in the account's shard (or any, for a check without one): the
        # decision's audit entry and links land together, and the retry blocks through the
        # shard's outbox, applied right after it (and by `agegate worker` after a crash).
        shard = (keys.shard_of(account_hash or identifiers[0][1]) if identifiers
                 else secrets.randbelow(keys.SHARDS))
        transact(self.identities.r, write, shard=shard, reads=False)
        decision = _decision(reason)
        result = AgeCheckResult(
            check_id=check_id, decision=decision, reason=reason, message=MESSAGES[decision],
            methods=tuple(assurance["accepted_methods"] or ASSURANCE_METHODS)
            if decision == "verify" else None,
        )
        AGE_CHECKS.labels(decision, reason).inc()
        if reason == "previous_underage_attempt" and account_id:
            for hook in self.redeclaration_hooks:
                hook(account_id, self.clock.now(), actor)
        return result
