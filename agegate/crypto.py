"""Keyed hashes and random codes: the only form in which identifiers are kept."""

from __future__ import annotations

import hashlib
import hmac
import secrets


class Hasher:
    """HMAC-SHA256 under the service secret, with a purpose label per kind of identifier."""

    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(("agegate/v1/" + secret_key).encode()).digest()

    def digest(self, purpose: str, value: str) -> str:
        """Hex HMAC of `value`; the purpose keeps an email hash from matching a device hash."""
        message = f"{purpose}\x00{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def short(self, purpose: str, value: str) -> str:
        """A 128-bit keyed hash, enough to name keys without collisions."""
        return self.digest(purpose, value)[:32]

    def account(self, account_id: str) -> str:
        """An account's hash: its keys' hash tag, its audit index and its identity block all
        use this one value, so they must never be derived differently."""
        return self.short("account", account_id)

    def matches(self, purpose: str, value: str, expected_hex: str) -> bool:
        """Constant-time comparison of a value against a stored keyed hash."""
        return hmac.compare_digest(self.digest(purpose, value), expected_hex)


def new_id(prefix: str) -> str:
    """An unguessable identifier such as `chk_3Hq...`."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def new_token() -> str:
    """A bearer-style secret handed to a member of the public (e.g. a status token)."""
    return secrets.token_urlsafe(24)
