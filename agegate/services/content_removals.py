"""California minor content removal: Cal. Bus. & Prof. Code §22581 ("Online Eraser").

A registered user who is a California minor may have content they posted removed (§22581(a)(1));
the operator must tell them so, how to ask, and that removal may not be complete (§22581(a)(2)-(4)).
The operator need not remove content in the cases §22581(b) lists; the platform tells us which
apply to each item, and we refuse those items with the matching reason.
"""

from __future__ import annotations

from typing import Any

import redis

from agegate.clock import Clock
from agegate.crypto import Hasher, new_id
from agegate.errors import Conflict, NotEligible
from agegate.services.audit import AuditTrail, transact
from agegate.storage import keys
from agegate.storage.events import EventStream
from agegate.storage.idempotency import IdempotencyKey, IdempotencyStore
from agegate.storage.keys import Retention
from agegate.storage.removals import RemovalStore

ELIGIBLE_REGION = "US-CA"
EVENT_TYPE = "content.removal_requested"

NOTICE = {
    "law": "Cal. Bus. & Prof. Code §22581",
    # §22581(a)(1)-(2): the right to remove, or to request and obtain removal of, own posts.
    "right": (
        "If you are under 18 and live in California, you may ask us to remove content or "
        "information that you posted on this service while signed in to your account."
    ),
    # §22581(a)(3): clear instructions on how to ask.
    "how_to_request": (
        "Open the item you posted, choose \"Remove my post\" (or select several items under "
        "Settings > Privacy > Remove my posts), and confirm. We hide removed items from other "
        "users and the public."
    ),
    # §22581(a)(4): removal does not ensure complete or comprehensive removal.
    "limitations": (
        "Removal does not ensure complete or comprehensive removal of the content or "
        "information: copies that someone else reposted or stored, content we must keep by "
        "law, content made anonymous, and content you were paid for may remain, and copies may "
        "already exist elsewhere on the internet."
    ),
}
NOTICE["text"] = " ".join((NOTICE["right"], NOTICE["how_to_request"], NOTICE["limitations"]))


def refusal(account_id: str, item: dict[str, Any]) -> str | None:
    """Why an item is not removed, or None when it must be."""
    # §22581(a)(1): the right covers content "posted ... by the user" only.
    if item["author_account_id"] != account_id:
        return "not_author"
    # §22581(b)(1): another federal or state law requires the content to be kept.
    if item.get("legal_hold"):
        return "legal_hold"
    # §22581(b)(2): stored, republished or reposted by a third party other than the minor.
    if item.get("posted_by", "self") == "third_party":
        return "third_party_repost"
    # §22581(b)(3): anonymized so the minor cannot be individually identified.
    if item.get("anonymized"):
        return "anonymized"
    # §22581(b)(5): the minor received compensation or other consideration for the content.
    if item.get("compensated"):
        return "compensated"
    return None


class ContentRemovalService:
    """Decides per item, emits one event per newly removed item, and opens a review case."""

    def __init__(
        self,
        client: redis.Redis,
        hasher: Hasher,
        audit: AuditTrail,
        events: EventStream,
        retention: Retention,
        clock: Clock,
        *,
        all_regions: bool = False,
    ) -> None:
        self.r = client
        self.hasher = hasher
        self.audit = audit
        self.events = events
        self.retention = retention
        self.clock = clock
        self.all_regions = all_regions
        self.removals = RemovalStore(client, retention)
        self.idempotency = IdempotencyStore(hasher, retention)
        # Wired by the container once the review queue exists.
        self.review: Any = None

    def request(self, data: dict[str, Any], actor: str,
                idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
        """Handle one removal request from the platform for a signed-in user. A retry with
        the same Idempotency-Key is answered with the first request's id (what is removed and
        refused follows from the body alone) and removes, emits and audits nothing again."""
        region = data["region"]
        if region != ELIGIBLE_REGION and not self.all_regions:
            raise NotEligible("Content removal under §22581 is for users in California (US-CA).",
                              fields={"region": ["Only US-CA is eligible."]})
        account_id = data["account_id"]
        request_id = new_id("crm")
        removable: list[str] = []
        refused: list[dict[str, str]] = []
        seen: set[str] = set()
        for item in data["items"]:
            content_id = item["content_id"]
            if content_id in seen:
                continue
            seen.add(content_id)
            reason = refusal(account_id, item)
            if reason:
                refused.append({"content_id": content_id, "reason": reason})
            else:
                removable.append(content_id)
        # A California minor asking means an under-18 user on an 18+ platform: review it.
        case_id = None
        if self.review is not None:
            try:
                case = self.review.open_or_raise(account_id, "content_removal", actor=actor,
                                                 ref={"request_id": request_id})
                case_id = case["case_id"]
            except Conflict as error:
                # A terminated account needs no review, but its posts still come down.
                if error.code != "account_terminated":
                    raise
        account_hash = self.hasher.account(account_id)
        # Every live key's hash of each id: one removed before a key rotation stays removed.
        hashes = {cid: self.hasher.all_short("content", cid) for cid in removable}
        now = self.clock.now()

        shard = keys.shard_of(account_hash)
        answered = [request_id]

        def write(pipe: redis.client.Pipeline) -> list[str]:
            if idempotency is not None:
                kept = self.idempotency.first(pipe, shard, idempotency)
                if kept is not None:
                    answered[0] = kept["request_id"]
                    return []
            chain = self.audit.begin(pipe)
            seen = self.removals.already_removed(
                pipe, account_hash, [h for cid in removable for h in hashes[cid]])
            width = len(self.hasher.key_ids)
            new = [cid for i, cid in enumerate(removable)
                   if not any(seen[i * width:(i + 1) * width])]
            pipe.multi()
            self.removals.queue_removed(pipe, account_hash, [hashes[cid][0] for cid in new])
            for cid in new:
                self.events.queue_emit(pipe, EVENT_TYPE, account_id=account_id, at=now,
                                       request_id=request_id, content_id=cid)
            chain.append(pipe, actor=actor, action="content_removal.requested",
                         account_id=account_id,
                         details={"request_id": request_id, "region": region,
                                  "case_id": case_id, "removed": removable,
                                  "newly_removed": len(new), "refused": refused})
            if idempotency is not None:
                self.idempotency.queue_remember(pipe, shard, idempotency,
                                                {"request_id": request_id})
            return new

        # WATCH the account's removal set too, so two requests for one item emit one event.
        transact(self.r, write, *self.removals.watched_keys(account_hash))
        return {"request_id": answered[0], "removed": removable, "refused": refused}
