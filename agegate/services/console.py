"""Reviewer console sign-in: token -> short-lived server-side session, with a brute-force brake."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from agegate.clock import Clock, iso, parse_iso
from agegate.crypto import Hasher
from agegate.errors import RateLimited, Unauthorized
from agegate.services.audit import AuditTrail
from agegate.storage.console import ConsoleStore
from agegate.storage.keys import Retention

CONSOLE_ROLES = frozenset({"reviewer", "admin"})


class TokenLookup(Protocol):
    """What the console needs of the token table: find a key by its secret."""

    def find(self, token: str) -> Any: ...


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in reviewer: the token's name and role, never the token itself."""

    session_id: str
    name: str
    role: str
    expires_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class ConsoleAuth:
    """Sign in, resume and sign out console sessions."""

    def __init__(
        self,
        store: ConsoleStore,
        tokens: TokenLookup,
        api_keys: Any,
        hasher: Hasher,
        audit: AuditTrail,
        clock: Clock,
        retention: Retention,
        *,
        lifetime: timedelta = timedelta(hours=8),
        max_failures: int = 10,
        failure_window_seconds: int = 900,
    ) -> None:
        self.store = store
        self.tokens = tokens
        # A session lives only while its token's name still holds that role: rotating a token
        # out of AGEGATE_API_KEYS ends the sessions it opened on the next request.
        self.grants = {(k.name, k.role) for k in api_keys}
        self.hasher = hasher
        self.audit = audit
        self.clock = clock
        self.lifetime = lifetime
        self.ttl = min(int(lifetime.total_seconds()), retention.seconds("console_session"))
        self.max_failures = max_failures
        self.window = min(failure_window_seconds, retention.seconds("rate_limit"))

    def _key(self, session_id: str) -> str:
        # Only a keyed hash of the session id is stored, so a Redis dump holds no usable session.
        return self.hasher.short("console_session", session_id)

    def sign_in(self, token: str, client_address: str) -> ConsoleSession:
        """Exchange a reviewer/admin token for a session; refuse after too many failures.

        Failures are counted per client address AND token fingerprint: ten wrong tries of one
        token from one address lock that pair only, so an attacker (or many reviewers behind
        one proxy address) can never lock another reviewer's token out. Guessing a token is
        bounded by its length (16+ characters, checked at start-up), not by this counter. The
        address is ProxyFix's (AGEGATE_TRUSTED_PROXIES); both are kept only as a keyed hash.
        """
        fingerprint = hashlib.sha256(token.strip().encode()).hexdigest()
        client = self.hasher.short("console_client",
                                   f"{client_address or 'unknown'}|{fingerprint}")
        # Every attempt is counted before its token is looked at, in one atomic step: parallel
        # guesses cannot all slip in under the limit before any of them is counted.
        attempt, retry_after = self.store.count_attempt(client, self.window)
        if attempt > self.max_failures:
            raise RateLimited(retry_after, "Too many failed sign-ins; try again later.")
        key = self.tokens.find(token.strip()) if token and token.strip() else None
        # The console shows live cases: a test token (API.md "Test mode") never signs in.
        if key is None or key.role not in CONSOLE_ROLES or key.test:
            raise Unauthorized("That token was not accepted.")
        self.store.clear_failures(client)
        now = self.clock.now()
        session = ConsoleSession(
            session_id=secrets.token_urlsafe(32), name=key.name, role=key.role,
            expires_at=now + self.lifetime,
        )
        self.store.create(
            self._key(session.session_id),
            {"name": key.name, "role": key.role, "issued_at": iso(now),
             "expires_at": iso(session.expires_at)},
            self.ttl,
        )
        self.audit.record(key.name, "console.signed_in", details={"role": key.role})
        return session

    def resume(self, session_id: str | None) -> ConsoleSession | None:
        """The live session for this id, or None when unknown, expired, revoked or rotated out."""
        if not session_id:
            return None
        # A session opened before a key rotation is still found under its older key's hash.
        record, key = None, ""
        for key in self.hasher.all_short("console_session", session_id):
            record = self.store.get(key)
            if record is not None:
                break
        if record is None:
            return None
        expires_at = parse_iso(record["expires_at"])
        if expires_at <= self.clock.now() or (record["name"], record["role"]) not in self.grants:
            self.store.delete(key)
            return None
        return ConsoleSession(session_id, record["name"], record["role"], expires_at)

    def sign_out(self, session: ConsoleSession) -> None:
        """Revoke the session server-side, so a copied cookie stops working too."""
        for key in self.hasher.all_short("console_session", session.session_id):
            self.store.delete(key)
        self.audit.record(session.name, "console.signed_out")
