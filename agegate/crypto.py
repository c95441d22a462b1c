"""Keyed hashes and random codes: the only form in which identifiers are kept.

`AGEGATE_SECRET_KEY` may hold several comma-separated keys (API.md, Conventions): the first
hashes and signs everything new, the others are still recognised, so retry blocks, identity
blocks, codes and the audit chain survive a rotation. Hashes that name Redis keys stay plain hex
(a block's key is looked up under every live key); hashes kept as values to check a secret
against later (codes, status tokens, a child's identifier) carry the short id of their key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

KEY_ID_LENGTH = 8


def split_keys(secret_key: str | Sequence[str]) -> list[str]:
    """The live keys, primary first: a comma-separated string or a sequence."""
    raw = secret_key.split(",") if isinstance(secret_key, str) else list(secret_key)
    return [key.strip() for key in raw if key.strip()]


def key_id(secret: str) -> str:
    """A short, public name for one key (a hash of it under its own label, never the key)."""
    return hashlib.sha256(("agegate/key-id/" + secret).encode()).hexdigest()[:KEY_ID_LENGTH]


@dataclass(frozen=True)
class _Key:
    kid: str
    mac: Any  # an hmac object keyed once; each message hashes on a .copy() of it


class Hasher:
    """HMAC-SHA256 under the service secret(s), with a purpose label per kind of identifier."""

    def __init__(self, secret_key: str | Sequence[str]) -> None:
        live = split_keys(secret_key)
        if not live:
            raise ValueError("no secret key")
        # The key is set up once per secret; .copy() reuses it for every message (stdlib).
        self._keys = [
            _Key(key_id(secret), hmac.new(
                hashlib.sha256(("agegate/v1/" + secret).encode()).digest(),
                digestmod=hashlib.sha256))
            for secret in live
        ]
        self._by_id = {key.kid: key for key in self._keys}
        # Set by the service container: given an account's hashes under every live key (primary
        # first), the one its records already live under, if any (storage reads Redis).
        self.account_resolver: Callable[[list[str]], str | None] | None = None

    @property
    def key_ids(self) -> list[str]:
        """The live keys' ids, primary first."""
        return [key.kid for key in self._keys]

    @staticmethod
    def _hex(key: _Key, purpose: str, value: str) -> str:
        mac = key.mac.copy()
        mac.update(f"{purpose}\x00{value}".encode())
        return str(mac.hexdigest())

    def digest(self, purpose: str, value: str) -> str:
        """Hex HMAC of `value` under the primary key; the purpose keeps an email hash from
        matching a device hash."""
        return self._hex(self._keys[0], purpose, value)

    def short(self, purpose: str, value: str) -> str:
        """A 128-bit keyed hash, enough to name keys without collisions."""
        return self.digest(purpose, value)[:32]

    def all_short(self, purpose: str, value: str) -> list[str]:
        """`short` under every live key, primary first: what a lookup by name must try."""
        return [self._hex(key, purpose, value)[:32] for key in self._keys]

    def account(self, account_id: str) -> str:
        """An account's hash: its keys' hash tag, its audit index and its identity block all
        use this one value, so they must never be derived differently.

        After a rotation an account whose records were written under an older key keeps them
        there (the resolver finds them); a new account is named under the primary key.
        """
        primary = self.short("account", account_id)
        if len(self._keys) == 1 or self.account_resolver is None:
            return primary
        return self.account_resolver(self.all_short("account", account_id)) or primary

    def sealed(self, purpose: str, value: str) -> str:
        """A keyed hash to store and check a secret against later: `<key id>.<hex>`."""
        key = self._keys[0]
        return f"{key.kid}.{self._hex(key, purpose, value)}"

    def matches(self, purpose: str, value: str, expected: str) -> bool:
        """Constant-time check of a value against a stored keyed hash, under the key it names
        (or, for a hash stored before key ids, under each live key)."""
        kid, dot, expected_hex = expected.rpartition(".")
        if dot:
            key = self._by_id.get(kid)
            return key is not None and hmac.compare_digest(
                self._hex(key, purpose, value), expected_hex)
        found = False  # a legacy short hash is the first 32 hex digits
        for key in self._keys:
            found |= hmac.compare_digest(self._hex(key, purpose, value)[:len(expected)] or "-",
                                         expected)
        return found

    def candidates(self, purpose: str, value: str) -> list[str]:
        """What `sealed` would have stored under each live key (for a check done in Redis)."""
        return [f"{key.kid}.{self._hex(key, purpose, value)}" for key in self._keys]


def new_id(prefix: str) -> str:
    """An unguessable identifier such as `chk_3Hq...`."""
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def new_token() -> str:
    """A bearer-style secret handed to a member of the public (e.g. a status token)."""
    return secrets.token_urlsafe(24)
