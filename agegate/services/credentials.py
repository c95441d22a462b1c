"""Digital credentials: a wallet proves "over 18" and nothing else (docs/api.md).

A request is made by the platform's backend for one of the configured origins and carries a
fresh nonce; the page hands it to the browser's Digital Credentials API and the backend relays
the wallet's answer here once. agegate/mdoc.py verifies it; this service records the result:
an `over_18` is a highly effective `digital_identity` assurance result (it lets the same
session's or account's age check through for 30 minutes), a `not_over_18` blocks like an
under-age age check. Kept: the result, the issuer certificate's fingerprint and the doctype
(in the audit trail), never the presentation.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, cast

from cryptography import x509

from agegate import mdoc
from agegate.clock import Clock, iso
from agegate.crypto import Hasher, new_id
from agegate.errors import Conflict, NotFound, ValidationFailed
from agegate.metrics import CREDENTIAL_CHECKS
from agegate.services.assurance import OWN_PROVIDER, Staged
from agegate.services.audit import AuditTrail, transact
from agegate.storage import keys
from agegate.storage.credentials import CredentialStore
from agegate.storage.idempotency import IdempotencyKey, IdempotencyStore
from agegate.storage.identities import Identifier, IdentityStore
from agegate.storage.keys import Retention

# The contract's DCQL query: an EU age verification attestation or a mobile driving licence,
# asking for age_over_18 alone.
DCQL_QUERY: dict[str, Any] = {
    "credentials": [
        {"id": query, "format": "mso_mdoc", "meta": {"doctype_value": doctype},
         "claims": [{"path": [namespace, mdoc.ELEMENT]}]}
        for query, (doctype, namespace) in mdoc.QUERIES.items()
    ],
    "credential_sets": [{"options": [[query] for query in mdoc.QUERIES]}],
}
NONCE_BYTES = 24  # 192 random bits (the contract asks for at least 128)

# Called inside the answer's unit of work, before its `pipe.multi()`, with (pipe, account_id or
# None, verdict, request_id, actor, the unit's shard) for a verified answer: stages it as an
# assurance result in that same unit (services/assurance.py `stage`; `assurance_stager` below),
# or answers None when nothing is to be recorded.
AssuranceStager = Callable[[Any, str | None, mdoc.Verdict, str, str, int], "Staged | None"]


def assurance_stager(assurance: Any, clock: Clock) -> AssuranceStager:
    """A verified answer as a `digital_identity` assurance result (a verification method):
    `over_18` is `over_threshold`, which admits a pending_assurance account; `not_over_18` is
    `under_threshold`, an under-18 finding (the account is restricted and a reviewer sees one
    `age_signal` case). The evidence id is the request id; nothing of the credential goes in.
    Recorded in the answer's own unit of work, so an answer is never used up without it."""
    def stage(pipe: Any, account_id: str | None, verdict: mdoc.Verdict, request_id: str,
              actor: str, shard: int) -> Staged | None:
        result = {"method": "digital_identity", "provider": OWN_PROVIDER,
                  "evidence_id": request_id, "actor": actor,
                  "outcome": "over_threshold" if verdict.result == "over_18"
                  else "under_threshold"}
        if account_id is not None and \
                keys.shard_of(assurance.hasher.account(account_id)) != shard:
            # An account first named under an older secret key when the request was made and
            # under the new primary key now (a key rotation within the request's five
            # minutes) lives in another slot: its record is its own unit, right after.
            def alone(_: dict[str, Any]) -> dict[str, Any]:
                try:
                    return dict(assurance.record(account_id, observed_at=clock.now(),
                                                 **result))
                except Conflict:  # a terminated account: its blocks answer its age checks
                    return {}

            return Staged(lambda pipe, chain: {}, alone)
        try:
            return cast(Staged, assurance.stage(pipe, account_id, shard=shard,
                                                observed_at=clock.now(), **result))
        except Conflict:  # a terminated account: its identity blocks answer its age checks
            return None

    return stage


def _request_answer(request_id: str, expires_at: str, nonce: str) -> dict[str, Any]:
    """A credential request as `create` answers it."""
    return {
        "request_id": request_id,
        "expires_at": expires_at,
        "protocol": mdoc.PROTOCOL,
        "request": {"response_type": "vp_token", "response_mode": "dc_api",
                    "nonce": nonce, "dcql_query": DCQL_QUERY},
    }


class CredentialService:
    def __init__(self, hasher: Hasher, store: CredentialStore, identities: IdentityStore,
                 audit: AuditTrail, clock: Clock, retention: Retention,
                 origins: Sequence[str], anchors: Sequence[x509.Certificate],
                 idempotency: IdempotencyStore) -> None:
        self.hasher = hasher
        self.idempotency = idempotency
        self.store = store
        self.identities = identities
        self.audit = audit
        self.clock = clock
        self.retention = retention
        self.origins = frozenset(origins)
        self.anchors = list(anchors)
        self.assurance_stagers: list[AssuranceStager] = []

    def create(self, data: dict[str, Any],
               idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
        """A new single-use request for one of the configured origins. A retry with the same
        Idempotency-Key gets the same request while it is open (409 once it was answered or
        expired: the page must start again with a new key)."""
        origin = data["origin"]
        if origin not in self.origins:
            raise ValidationFailed(fields={"origin": [
                "Not an origin this service accepts presentations for "
                "(AGEGATE_CREDENTIAL_ORIGINS)."]})
        account_id = data.get("account_id")
        shard = (keys.shard_of(self.hasher.account(account_id)) if account_id
                 else keys.shard_of(idempotency.key_hash) if idempotency
                 else secrets.randbelow(keys.SHARDS))
        request_id = keys.new_sharded_id("creq", shard)
        nonce = mdoc.base64url(secrets.token_bytes(NONCE_BYTES))
        expires_at = iso(self.clock.now() + timedelta(
            seconds=self.retention.seconds("credential_request")))
        record = {"origin": origin, "nonce": nonce, "account_id": account_id,
                  "session": self.hasher.short("session", data["session_id"])
                  if data.get("session_id") else None}
        if idempotency is None:
            self.store.create(request_id, record)
            return _request_answer(request_id, expires_at, nonce)

        def build(pipe: Any) -> dict[str, Any]:
            kept = self.idempotency.first(pipe, shard, idempotency)
            if kept is not None:  # a retry: the request the first one made, while it is open
                first = self.store.read(pipe, kept["request_id"])
                if first is None:
                    raise Conflict("The credential request this Idempotency-Key made was "
                                   "answered or has expired; send a new key.")
                return _request_answer(kept["request_id"], kept["expires_at"], first["nonce"])
            pipe.multi()
            self.store.queue_create(pipe, request_id, record)
            self.idempotency.queue_remember(pipe, shard, idempotency,
                                            {"request_id": request_id,
                                             "expires_at": expires_at})
            return _request_answer(request_id, expires_at, nonce)

        return cast(dict[str, Any], transact(self.identities.r, build, shard=shard))

    def answer(self, request_id: str, vp_token: dict[str, list[str]],
               actor: str, idempotency: IdempotencyKey | None = None) -> dict[str, Any]:
        """Verify the wallet's answer to an open request, once, and act on the result. A
        retry with the same Idempotency-Key (and body) is answered with the first result."""
        shard = keys.shard_of_id(request_id)
        if shard is None or not request_id.startswith("creq_"):
            raise NotFound("No such credential request.")
        [(query, presentations)] = vp_token.items()
        check_id = new_id("chk")

        # The request is used up in the same unit of work as the answer's effects and its
        # audit entry (one slot: the request's shard): a unit that did not apply (a lost
        # connection, too few replicas confirming it) leaves the request open for a retry
        # instead of used up with nothing recorded.
        def write(pipe: Any) -> tuple[mdoc.Verdict | None,
                                      list[tuple[Staged, dict[str, Any]]], dict[str, Any]]:
            if idempotency is not None:
                kept = self.idempotency.first(pipe, shard, idempotency)
                if kept is not None:  # a retry of an applied answer: its result
                    return None, [], kept
            request = self.store.read(pipe, request_id)
            if request is None:
                raise Conflict("This credential request was already answered or has expired.")
            verdict = mdoc.verify(presentations[0], query=query, origin=request["origin"],
                                  nonce=request["nonce"], anchors=self.anchors,
                                  now=self.clock.now())
            account_id = request.get("account_id")
            identifiers: list[Identifier] = []
            if account_id:
                identifiers.append(("account", self.hasher.account(account_id)))
            if request.get("session"):
                identifiers.append(("session", request["session"]))
            blocked: list[Identifier] = []
            if verdict.result == "not_over_18":
                blocked = identifiers + (
                    self.store.verify_session_identifiers(request["session"])
                    if request.get("session") else [])
            staged = [found for stage in self.assurance_stagers
                      if verdict.result != "rejected" and (found := stage(
                          pipe, account_id, verdict, request_id, actor, shard)) is not None]
            chain = self.audit.begin(pipe)
            pipe.multi()
            self.store.queue_take(pipe, request_id)
            answered = {"result": verdict.result, "reason": verdict.reason,
                        "check_id": check_id}
            if idempotency is not None:
                self.idempotency.queue_remember(pipe, shard, idempotency, answered)
            if verdict.result == "over_18":
                self.store.queue_pass(pipe, identifiers)
            elif blocked:
                self.identities.queue_retry_blocks(pipe, blocked)
            chain.append(pipe, actor=actor, action="credential_check", account_id=account_id,
                         details={"request_id": request_id, "check_id": check_id,
                                  "result": verdict.result, "reason": verdict.reason,
                                  "doctype": verdict.doctype,
                                  "issuer_fingerprint": verdict.issuer_fingerprint})
            return verdict, [(found, found.write(pipe, chain)) for found in staged], answered

        verdict, recorded, answered = transact(self.identities.r, write,
                                               keys.credential_request(request_id))
        if verdict is not None:
            CREDENTIAL_CHECKS.labels(verdict.result, verdict.reason or "").inc()
        for found, record in recorded:
            found.after(record)
        return {"request_id": request_id, **answered}

    def passed(self, lookups: Sequence[Identifier]) -> bool:
        """Whether a wallet proved over 18 for this session or account (age checks)."""
        return self.store.passed(lookups)
