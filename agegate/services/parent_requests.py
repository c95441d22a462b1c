"""Parents' requests about a child's account: access, rectification, deletion, objection.

What is kept is only what the request needs: keyed hashes of the parent's email and of the
child's email or username, the child's platform account id when the parent gave it, the request
type, the parent's bounded free text (for the reviewer, dropped once decided), timestamps, and
keyed hashes of the status token and of the one-time code. The parent's email is used once, to
mail the code, and is never stored. Requests are answered within 30 days of submission.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable
from datetime import UTC, timedelta
from typing import Any

import redis

from agegate.clock import Clock, iso, parse_iso
from agegate.crypto import Hasher, new_token
from agegate.errors import (
    ChildUnresolved,
    Conflict,
    NotFound,
    RequestLocked,
    ValidationFailed,
)
from agegate.metrics import gauge
from agegate.services.age_checks import normalise_email
from agegate.services.audit import AuditTrail, transact
from agegate.services.mailer import Mailer
from agegate.storage import keys
from agegate.storage.keys import Retention
from agegate.storage.parent_requests import ParentRequestStore

log = logging.getLogger("agegate.parent_requests")

REQUEST_TYPES = ("access", "rectification", "deletion", "objection")
CHILD_KINDS = ("account_id", "username", "email")
DECISIONS = frozenset({"fulfill", "reject"})
CODE_DIGITS = 8
CODE_LIFETIME = timedelta(hours=24)
MAX_WRONG_CODES = 5
# Answer within 30 days of submission (the deadline the contract promises parents).
RESPONSE_DAYS = 30
MAX_NOTE_CHARS = 2000

OUTCOMES = {
    "deletion": "account_deleted",
    "access": "export_ready",
    "rectification": "rectified",
    "objection": "processing_stopped",
}
# A parent may delete, export or stop the processing of a child's account, never an adult's
# (nor a stranger's: an objection switches off the classifier and user reports): these need
# the account's minority established first (an under-18 age signal, a reviewer's
# confirm_minor, or an age-assurance result `minor`). Until then the account is restricted
# pending verification and the request waits, its due date still counting.
MINORITY_REQUIRED = frozenset({"deletion", "access", "objection"})
WAITING = "awaiting_age_verification"
# Every ending in which nothing is done looks the same to the parent (API.md, "Parent
# requests"): whether the service never saw the account, found its holder adult, could not
# establish the age, or a reviewer rejected the request is for the reviewer only (the
# request's `refusal`, the review view's `outcome`, the audit trail).
NO_ACTION = ("closed", "no_action",
             "We have reviewed this request and cannot take any action on it. If you believe "
             "this is wrong, you may submit a new request with more detail.")
REFUSALS = frozenset({"refused_adult", "age_unverifiable", "nothing_held", "rejected"})

CODE_MAIL = """Hello {name},

Someone (we hope you) asked us to act on a child's account on your behalf ({request_type}).
To confirm the request, enter this code: {code}

It is valid for 24 hours. Request reference: {request_id}
If you did not ask for this, ignore this message and nothing will happen.
"""


def normalise_username(username: str) -> str:
    """Trimmed and case-folded, so `CoolKid ` and `coolkid` name the same account."""
    return username.strip().casefold()


class ParentRequestService:
    """Submission, mailbox proof, status for the parent, and the reviewer's outcome."""

    def __init__(
        self,
        client: redis.Redis,
        hasher: Hasher,
        audit: AuditTrail,
        mailer: Mailer,
        retention: Retention,
        clock: Clock,
    ) -> None:
        self.r = client
        self.store = ParentRequestStore(client, retention)
        self.hasher = hasher
        self.audit = audit
        self.mailer = mailer
        self.retention = retention
        self.clock = clock
        # Wired by the container once the review queue, enforcement and accounts exist.
        self.review: Any = None
        self.enforcement: Any = None
        self.accounts: Any = None
        self.account_store: Any = None

    # -- the parent's side ---------------------------------------------------------------
    @staticmethod
    def _child_identifier(kind: str, value: str) -> tuple[str, str]:
        """(purpose, normalised value) a child identifier is hashed as."""
        if kind == "email":
            return "email", normalise_email(value)
        return "username", normalise_username(value)

    def child_hash(self, kind: str, value: str) -> str:
        """The keyed hash a child identifier is kept as, with its key's id."""
        return self.hasher.sealed(*self._child_identifier(kind, value))

    def _code_hashes(self, request_id: str, code: str) -> list[str]:
        """The code's hash under every live key, primary first (the first is stored)."""
        return self.hasher.candidates("parent_code", f"{request_id}:{code.strip()}")

    def submit(self, data: dict[str, Any], actor: str = "public") -> dict[str, str]:
        """Record a request and mail its code; the parent's email is dropped after sending."""
        now = self.clock.now()
        token = new_token()
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        child = data["child"]
        (kind, value), = child.items()
        # In the child's shard when the parent named the account, so the request, its index
        # and the child's audit index change together; else in any shard.
        shard = (keys.shard_of(self.hasher.account(value)) if kind == "account_id"
                 else secrets.randbelow(keys.SHARDS))
        request_id = keys.new_sharded_id("preq", shard)
        record: dict[str, str] = {
            "request_id": request_id,
            "status": "pending_verification",
            "request_type": data["request_type"],
            "child_kind": kind,
            "parent_email_hash": self.hasher.short("parent_email",
                                                   normalise_email(data["parent_email"])),
            "created_at": iso(now),
            "due_at": iso(now + timedelta(days=RESPONSE_DAYS)),
            "status_token_hash": self.hasher.sealed("status_token", f"{request_id}:{token}"),
            "code_hash": self._code_hashes(request_id, code)[0],
            "code_expires_ts": str(int((now + CODE_LIFETIME).timestamp())),
            "attempts": "0",
        }
        if kind == "account_id":
            record["child_account_id"] = value
        else:
            record["child_hash"] = self.child_hash(kind, value)
        details = data.get("details") or ""

        def write(pipe: redis.client.Pipeline) -> None:
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.store.queue_create(pipe, request_id, record, details)
            chain.append(pipe, actor=actor, action="parent_request.submitted",
                         account_id=record.get("child_account_id"),
                         details={"request_id": request_id,
                                  "request_type": data["request_type"], "child_kind": kind})

        transact(self.r, write, *self.store.watched_keys(request_id))
        body = CODE_MAIL.format(name=data["parent_name"].strip(), code=code,
                                request_type=data["request_type"], request_id=request_id)
        try:
            self.mailer.send(data["parent_email"], "Your verification code", body)
        except Exception:
            # An unmailed code can never be entered: drop the request rather than strand it.
            self.store.delete(request_id)
            raise
        return {"request_id": request_id, "status": "pending_verification",
                "status_token": token}

    def _load(self, request_id: str) -> dict[str, str]:
        record = self.store.read(request_id)
        if not record:
            raise NotFound("No such request.")
        return record

    def verify(self, request_id: str, code: str, actor: str = "public") -> dict[str, str]:
        """Check the mailed code; on success open the reviewer's case. Wrong codes count."""
        now = self.clock.now()
        result = self.store.check_code(request_id, self._code_hashes(request_id, code),
                                       int(now.timestamp()), iso(now), MAX_WRONG_CODES)
        outcome = result[0]
        if outcome == "missing":
            raise NotFound("No such request.")
        if outcome == "locked":
            raise RequestLocked()
        if outcome == "expired":
            raise ValidationFailed(
                "This code has expired; please submit a new request.",
                code="code_expired", fields={"code": ["This code has expired."]},
            )
        if outcome in ("wrong", "wrong_done"):
            raise ValidationFailed("The code is not correct.",
                                   fields={"code": ["The code is not correct."]})
        if outcome == "locked_now":
            self.audit.record(actor, "parent_request.locked", None,
                              {"request_id": request_id, "wrong_codes": MAX_WRONG_CODES})
            raise ValidationFailed(
                "The code is not correct; too many wrong codes, so this request is now locked.",
                fields={"code": ["The code is not correct."]},
            )
        record = self._load(request_id)
        if outcome == "ok" or (record["status"] == "verified" and not record.get("case_id")):
            # A retry with the right code finishes a verification whose case did not open.
            self._open_case(record, actor)
        return {"status": "verified", "due_at": record["due_at"]}

    def _open_case(self, record: dict[str, str], actor: str) -> None:
        """Open the parent_request case and keep the request for its full retention."""
        request_id = record["request_id"]
        due_at = parse_iso(record["due_at"])
        case_id = None
        if self.review is not None:
            # A child named only by username or email has no account id yet: the case carries
            # a placeholder until a reviewer resolves the child (POST .../child).
            placeholder = f"unresolved:{request_id}"
            try:
                case = self.review.open_or_raise(
                    record.get("child_account_id") or placeholder, "parent_request",
                    actor=actor, due_at=due_at, ref={"request_id": request_id},
                )
            except Conflict as error:
                if error.code != "account_terminated":
                    raise
                # The account is already gone, yet the parent is still owed an answer (and an
                # export of what is left): the reviewer decides it under the placeholder.
                case = self.review.open_or_raise(placeholder, "parent_request", actor=actor,
                                                 due_at=due_at, ref={"request_id": request_id})
            case_id = case["case_id"]

        def write(pipe: redis.client.Pipeline) -> None:
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.store.queue_verified(pipe, request_id, case_id, due_at.timestamp())
            chain.append(pipe, actor=actor, action="parent_request.verified",
                         account_id=record.get("child_account_id"),
                         details={"request_id": request_id, "case_id": case_id,
                                  "request_type": record["request_type"]})

        transact(self.r, write, *self.store.watched_keys(request_id))

    def _authorised(self, request_id: str, token: str | None) -> dict[str, str]:
        """The record, if the status token matches; otherwise 404 (existence is not revealed)."""
        record = self.store.read(request_id)
        expected = record.get("status_token_hash", "")
        if not record or not token or not self.hasher.matches(
                "status_token", f"{request_id}:{token}", expected):
            raise NotFound("No such request.")
        return record

    def status(self, request_id: str, token: str | None) -> dict[str, Any]:
        """What the parent may see: nothing about the child beyond the request itself."""
        record = self._authorised(request_id, token)
        return {"request_id": request_id, "status": record["status"],
                "request_type": record["request_type"], "due_at": record["due_at"],
                "outcome": record.get("outcome") or None,
                "reason": record.get("reason") or None}

    def export(self, request_id: str, token: str | None) -> dict[str, Any]:
        """The access export, while it is kept (Retention.export_days)."""
        self._authorised(request_id, token)
        export = self.store.export(request_id)
        if export is None:
            raise NotFound("No export is available for this request.")
        return export

    # -- the reviewer's side -------------------------------------------------------------
    def review_view(self, request_id: str) -> dict[str, Any]:
        """Everything a reviewer needs to decide: type, child reference, the parent's text."""
        record = self._load(request_id)
        return {
            "request_id": request_id,
            "status": record["status"],
            "request_type": record["request_type"],
            "child_kind": record["child_kind"],
            "child_account_id": record.get("child_account_id"),
            "details": self.store.details(request_id),
            "created_at": record["created_at"],
            "due_at": record["due_at"],
            "case_id": record.get("case_id"),
            # The reviewer sees why nothing was done (the parent sees only `no_action`).
            "outcome": record.get("refusal") or record.get("outcome") or None,
            "note": record.get("note") or None,
            "account_age": (self.accounts.age_knowledge(record["child_account_id"])
                            if record.get("child_account_id") and self.accounts else None),
        }

    def resolve_child(
        self, request_id: str, account_id: str, identifier: str | None, actor: str
    ) -> dict[str, Any]:
        """Attach the child's account id, found by the reviewer in the platform's records.

        The reviewer must present the username or email the platform holds for that account:
        it has to match the keyed hash the parent's request was stored as, so a request can
        only ever reach the account the parent named.
        """
        record = self._load(request_id)
        if record["status"] not in ("verified",):
            raise Conflict("Only a verified, undecided request can be resolved.")
        kind = record["child_kind"]
        if kind == "account_id":
            if account_id != record.get("child_account_id"):
                raise ValidationFailed(fields={"account_id": [
                    "The parent named a different account."]})
        else:
            if not identifier or not self.hasher.matches(
                    *self._child_identifier(kind, identifier), record.get("child_hash", "")):
                raise ValidationFailed(fields={"identifier": [
                    f"This {kind} does not match the one in the request."]})
        def write(pipe: redis.client.Pipeline) -> None:
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.store.queue_child(pipe, request_id, account_id)
            chain.append(pipe, actor=actor, action="parent_request.child_resolved",
                         account_id=account_id, details={"request_id": request_id})

        transact(self.r, write, *self.store.watched_keys(request_id))
        return self.review_view(request_id)

    def decide(self, case: dict[str, Any], decision: str, note: str | None, actor: str) -> None:
        """The review queue's handler for parent_request cases: fulfil or reject."""
        ref = case.get("ref") or {}
        if isinstance(ref, str):
            ref = json.loads(ref)
        request_id = ref.get("request_id")
        if not request_id:
            raise Conflict("This case does not refer to a parent request.")
        record = self._load(request_id)
        if record["status"] in ("fulfilled", "rejected", NO_ACTION[0], WAITING) \
                and record.get("decision") == decision:
            return  # a retry after the case itself failed to close: the outcome already stands
        if record["status"] != "verified":
            raise Conflict("This request is not awaiting a decision.")
        account_id = record.get("child_account_id") or None
        if decision == "reject":
            self._refuse(record, "rejected", note, actor, decision="reject")
            return
        if decision != "fulfill":
            raise ValidationFailed(fields={"decision": ["Use fulfill or reject."]})
        if not account_id:
            raise ChildUnresolved()
        if record["request_type"] in MINORITY_REQUIRED:
            knowledge = self.accounts.age_knowledge(account_id)
            if not knowledge["seen"]:
                # Never create an account (or a deletion) for an id this service never saw.
                self._refuse(record, "nothing_held", note, actor)
                return
            if knowledge["established"] == "adult":
                self._refuse(record, "refused_adult", note, actor)
                return
            if knowledge["established"] != "minor":
                if knowledge["status"] == "terminated":
                    if record["request_type"] == "access":
                        self._refuse(record, "age_unverifiable", note, actor)
                        return
                    # Deletion of an account already deleted creates nothing: answer it below.
                else:
                    self._wait(record, case["case_id"], account_id, note, actor)
                    return
        self._fulfil(record, account_id, decision, note, actor)

    def _refuse(self, record: dict[str, str], refusal: str, note: str | None, actor: str,
                audit_actor: str | None = None, decision: str = "fulfill") -> None:
        """End a request with nothing done: the parent sees the one neutral outcome, the
        reviewer (and the audit trail) why."""
        if refusal not in REFUSALS:
            raise ValueError(f"unknown refusal {refusal!r}")
        status, outcome, reason = NO_ACTION
        self._finish(record, status, outcome, decision, note, actor, reason,
                     extra={"refusal": refusal}, audit_actor=audit_actor)

    def _fulfil(self, record: dict[str, str], account_id: str, decision: str,
                note: str | None, actor: str) -> None:
        """Carry out the request on the child's account and record the outcome."""
        request_type = record["request_type"]
        extra: dict[str, str] = {}
        export: dict[str, Any] | None = None
        if request_type == "deletion":
            deletion = self.enforcement.terminate(
                account_id, actor=actor, reason="parent_request", born=None)
            extra["deletion_id"] = str(deletion.get("deletion_id", ""))
        elif request_type == "access":
            export = {"request_id": record["request_id"], "generated_at": iso(self.clock.now()),
                      "account": self.accounts.export(account_id)}
        elif request_type == "objection":
            self.accounts.stop_processing(account_id, actor=actor)
        self._finish(record, "fulfilled", OUTCOMES[request_type], decision, note, actor,
                     extra=extra, export=export)

    def _wait(self, record: dict[str, str], case_id: str, account_id: str, note: str | None,
              actor: str) -> None:
        """Restrict the account pending age verification; the request waits for the result."""
        request_id = record["request_id"]
        self.accounts.restrict_for_verification(account_id, case_id, actor=actor,
                                                reason="parent_request")
        account_hash = self.hasher.account(account_id)

        def write(pipe: redis.client.Pipeline) -> None:
            chain = self.audit.begin(pipe)
            pipe.multi()
            # Still in PARENT_REQUESTS_OPEN: the 30-day due date keeps counting.
            self.store.queue_fields(pipe, request_id, {
                "status": WAITING, "decision": "fulfill", "decided_by": actor,
                "note": (note or "")[:MAX_NOTE_CHARS],
                "reason": "We are verifying the account holder's age before acting on it.",
            })
            self.account_store.queue_wait(pipe, account_hash, request_id)
            chain.append(pipe, actor=actor, action="parent_request.awaiting_verification",
                         account_id=account_id,
                         details={"request_id": request_id, "case_id": case_id,
                                  "request_type": record["request_type"]})

        transact(self.r, write, *self.store.watched_keys(request_id))
        # An age result that landed between the decision and this wait being noted on the
        # account would never reach the request: answer it now instead.
        established = self.accounts.age_knowledge(account_id)["established"]
        if established in ("minor", "adult"):
            self.on_age_known(account_id, established, actor)

    def on_age_known(self, account_id: str, verdict: str, actor: str) -> None:
        """Hook: the account's age is now established; answer the requests waiting for it."""
        if self.account_store is None:
            return
        account_hash = self.hasher.account(account_id)
        for request_id in self.account_store.waiting(self.r, account_hash):
            record = self.store.read(request_id)
            if record.get("status") != WAITING:
                self.account_store.unwait(account_hash, request_id)
                continue
            note, reviewer = record.get("note"), record.get("decided_by") or actor
            if verdict == "adult":
                self._refuse(record, "refused_adult", note, reviewer, audit_actor=actor)
            elif verdict == "minor":
                self._fulfil(record, account_id, "fulfill", note, reviewer)

    def _finish(self, record: dict[str, str], status: str, outcome: str, decision: str,
                note: str | None, actor: str, reason: str | None = None, *,
                extra: dict[str, str] | None = None, export: dict[str, Any] | None = None,
                audit_actor: str | None = None) -> None:
        """Record a decided request's outcome; the parent's text goes, the export is kept."""
        request_id = record["request_id"]
        account_id = record.get("child_account_id") or None
        extra = extra or {}
        fields = {"status": status, "outcome": outcome, "decision": decision,
                  "decided_at": iso(self.clock.now()), "reason": reason or "",
                  "decided_by": actor, "note": (note or "")[:MAX_NOTE_CHARS], **extra}

        def write(pipe: redis.client.Pipeline) -> None:
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.store.queue_decided(pipe, request_id, fields, export)
            if account_id and self.account_store is not None:
                self.account_store.queue_unwait(pipe, self.hasher.account(account_id),
                                                request_id)
            chain.append(pipe, actor=audit_actor or actor, action="parent_request.decided",
                         account_id=account_id,
                         details={"request_id": request_id,
                                  "request_type": record["request_type"],
                                  "decision": decision, "outcome": outcome, **extra})

        transact(self.r, write, *self.store.watched_keys(request_id))

    # -- operators -----------------------------------------------------------------------
    def listing(self, overdue_only: bool, limit: int) -> list[dict[str, Any]]:
        """Verified, undecided requests by due date (overdue ones only if asked)."""
        now = self.clock.now().timestamp()
        ids = self.store.open_ids(now if overdue_only else None, limit)
        out = []
        for request_id in ids:
            record = self.store.read(request_id)
            if not record:
                continue
            out.append({"request_id": request_id, "status": record["status"],
                        "request_type": record["request_type"], "created_at":
                        record["created_at"], "due_at": record["due_at"],
                        "case_id": record.get("case_id"),
                        "overdue": parse_iso(record["due_at"]).timestamp() < now})
        return out

    def overdue_count(self) -> int:
        """Verified requests past their due date and not yet decided."""
        now = self.clock.now().astimezone(UTC).timestamp()
        return self.store.overdue_count(now)

    def gauges(self) -> Iterable[Any]:
        """Prometheus gauge source (read from Redis at scrape time, same in every worker)."""
        yield gauge("agegate_parent_requests_overdue",
                    "Verified parent requests past their 30-day due date", self.overdue_count())

