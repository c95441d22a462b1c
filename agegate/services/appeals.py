"""Appeals: a restricted or terminated member asks for a human to look again.

The platform relays the member's statement (at most 2,000 characters; shown to the reviewer and
deleted with the case). The appeal opens an `appeal` case due AGEGATE_APPEAL_DUE_DAYS later,
served with the others by due date. `uphold` changes nothing; `overturn` makes a restricted
account active, or lifts a terminated account's identity blocks and emits `account.reinstated`
(its deleted data is not restored: the deletion record stays as the proof of what was deleted).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import redis

from agegate.clock import Clock, iso
from agegate.crypto import Hasher
from agegate.errors import Conflict, NotFound
from agegate.services.audit import AuditTrail, transact
from agegate.services.enforcement import TerminationPlan
from agegate.services.review import new_case
from agegate.storage import keys
from agegate.storage.accounts import AccountStore
from agegate.storage.appeals import AppealStore
from agegate.storage.assurance import status_after_restriction
from agegate.storage.cases import HISTORY_LIMIT, CaseStore
from agegate.storage.deletions import DeletionStore
from agegate.storage.events import EventStream
from agegate.storage.idempotency import IdempotencyKey, IdempotencyStore

MAX_STATEMENT = 2000
DECISIONS = frozenset({"uphold", "overturn"})
OUTCOMES = {"uphold": "upheld", "overturn": "overturned"}


class AppealService:
    """Submit, read and decide appeals."""

    def __init__(self, client: redis.Redis, hasher: Hasher, store: AppealStore,
                 accounts: AccountStore, cases: CaseStore, deletions: DeletionStore,
                 audit: AuditTrail, events: EventStream, clock: Clock, due_days: int,
                 idempotency: IdempotencyStore) -> None:
        # decode_responses=True: every reply is str, which redis-py's stubs cannot know.
        self.r: Any = client
        self.idempotency = idempotency
        self.hasher = hasher
        self.store = store
        self.accounts = accounts
        self.cases = cases
        self.deletions = deletions
        self.audit = audit
        self.events = events
        self.clock = clock
        self.due = timedelta(days=due_days)

    def keep_blocked(self, pipe: Any, plan: TerminationPlan, block_seconds: int) -> None:
        """Termination hook: remember what was blocked, so an overturned appeal can lift it."""
        self.store.queue_keep_blocked(pipe, plan.account_hash, plan.identifiers, block_seconds)

    def submit(self, account_id: str, statement: str, *, actor: str,
               idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
        """Open an appeal for a restricted or terminated account. A retry with the same
        Idempotency-Key gets the first answer (not the 409 of an appeal already open)."""
        account_hash = self.hasher.account(account_id)
        shard = keys.shard_of(account_hash)

        def build(pipe: Any) -> dict[str, Any]:
            if idempotency is not None:
                kept = self.idempotency.first(pipe, shard, idempotency)
                if kept is not None:
                    return kept
            deletion_id = self.deletions.for_account(pipe, account_hash)
            meta = self.accounts.meta(pipe, account_hash)
            if deletion_id:
                status = "terminated"
            elif not meta:
                raise NotFound("No such account.")
            else:
                status = meta.get("status", "active")
            if status not in ("restricted", "terminated"):
                raise Conflict("Only a restricted or terminated account can appeal.")
            if self.store.open_appeal(pipe, account_hash):
                raise Conflict("This account already has an open appeal.")
            now = self.clock.now()
            due_at = now + self.due
            # In the account's shard, so the appeal, its case and the account change together.
            appeal_id = keys.new_sharded_id("apl", keys.shard_of(account_hash))
            ref = {"appeal_id": appeal_id, "account_status": status}
            if deletion_id:
                ref["deletion_id"] = deletion_id
            case = new_case(account_id, "appeal", now, actor=actor, account_hash=account_hash,
                            due_at=due_at, ref=ref)
            record = {"appeal_id": appeal_id, "account_id": account_id,
                      "case_id": case["case_id"], "status": "open", "outcome": None,
                      "due_at": iso(due_at), "created_at": iso(now), "decided_at": None,
                      "account_status": status}
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.cases.queue_create(pipe, case, account_hash)
            self.store.queue_write(pipe, record)
            self.store.queue_open(pipe, account_hash, appeal_id, case["case_id"], statement)
            # The statement is the member's own words: it stays out of the audit trail.
            chain.append(pipe, actor=actor, action="appeal_submitted", account_id=account_id,
                         details={"appeal_id": appeal_id, "case_id": case["case_id"],
                                  "account_status": status})
            answer = {"appeal_id": appeal_id, "case_id": case["case_id"],
                      "due_at": iso(due_at)}
            if idempotency is not None:  # our ids and a date: nothing of the member's
                self.idempotency.queue_remember(pipe, shard, idempotency, answer)
            return answer

        return transact(self.r, build, keys.account_deletion(account_hash),
                        keys.account(account_hash), keys.account_open_appeal(account_hash))

    def get(self, appeal_id: str) -> dict[str, Any]:
        """`GET /v1/appeals/{id}`."""
        record = self.store.read(self.r, appeal_id)
        if record is None:
            raise NotFound("No such appeal.")
        return {k: record[k] for k in ("appeal_id", "status", "outcome", "due_at")}

    def statement(self, case: dict[str, Any]) -> str | None:
        """The member's statement on an appeal case, for the reviewer."""
        if case.get("kind") != "appeal" or not case.get("account_id"):
            return None
        return self.store.statement(self.r, self.hasher.account(case["account_id"]),
                                    case["case_id"])

    def decide(self, case: dict[str, Any], decision: str, note: str | None,
               reviewer: str) -> None:
        """Review decider for `appeal` cases: the outcome and the closed case land together."""
        case_id = case["case_id"]
        account_id = case["account_id"]
        account_hash = self.hasher.account(account_id)
        appeal_id = case["ref"].get("appeal_id", "")

        def build(pipe: Any) -> None:
            current = self.cases.read(pipe, case_id)
            if current is None or current["status"] == "decided":
                return
            if current["status"] != "claimed" or current["claimed_by"] != reviewer:
                raise Conflict("Only the reviewer holding the claim on this case may decide it.")
            record = self.store.read(pipe, appeal_id)
            deletion_id = self.deletions.for_account(pipe, account_hash)
            meta = self.accounts.meta(pipe, account_hash)
            blocked = self.store.blocked(pipe, account_hash) if deletion_id else []
            now = self.clock.now()
            decided = dict(current)
            decided.update(status="decided", decision=decision, note=note, decided_at=iso(now),
                           lease_expires_at=None, lease_until=None)
            decided["history"] = [*current["history"], {
                "at": iso(now), "event": "decided", "actor": reviewer,
                "decision": decision}][-HISTORY_LIMIT:]
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.cases.queue_decided(pipe, decided, now)
            self.store.queue_close(pipe, account_hash)
            if record is not None:
                self.store.queue_write(pipe, {**record, "status": "decided",
                                              "outcome": OUTCOMES[decision],
                                              "decided_at": iso(now)})
            chain.append(pipe, actor=reviewer, action="case_decided", account_id=account_id,
                         details={"case_id": case_id, "kind": "appeal", "decision": decision})
            if decision != "overturn":
                return
            if deletion_id:
                self.store.queue_lift(pipe, account_hash, blocked)
                self.store.queue_reinstate(pipe, account_hash)
                self.accounts.queue_meta(pipe, account_hash, account_id, {
                    "status": "active", "reinstated_at": iso(now), "updated_at": iso(now)})
                self.events.queue_emit(pipe, "account.reinstated", account_id=account_id,
                                       at=now, deletion_id=deletion_id, appeal_id=appeal_id)
                chain.append(pipe, actor=reviewer, action="account_reinstated",
                             account_id=account_id,
                             details={"appeal_id": appeal_id, "deletion_id": deletion_id,
                                      "blocks_lifted": len(blocked)})
            elif meta.get("status") == "restricted":
                # Back to waiting, for an account an age check sent to step-up assurance.
                self.accounts.queue_meta(pipe, account_hash, account_id,
                                         {"status": status_after_restriction(meta),
                                          "updated_at": iso(now)},
                                         drop=("restricted_case",))
                self.events.queue_emit(pipe, "account.unrestricted", account_id=account_id,
                                       at=now, appeal_id=appeal_id)

        transact(self.r, build, keys.case(case_id), keys.appeal(appeal_id),
                 keys.account_deletion(account_hash), keys.account(account_hash),
                 keys.terminated_identifiers(account_hash))
