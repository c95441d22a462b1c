"""Secrets the service must read back (webhook signing secrets), encrypted at rest.

A keyed hash is enough for what we only compare; a webhook secret must be used to sign, so the
worker needs it in clear. It is stored as a Fernet token (AES-128-CBC + HMAC-SHA256, from the
`cryptography` package) under a key derived with HKDF-SHA256 from AGEGATE_SECRET_KEY, so a copy
of Redis alone (a backup, a replica, someone with read access) does not reveal it. Several
service secrets may be given (rotation): the first encrypts, all of them decrypt, and `reseal`
moves a token sealed under an older one to the first (the webhook job does it at start-up), so
the older one can be dropped.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PURPOSE = b"agegate/secret-box/v1"


def _fernet(service_secret: str, purpose: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        service_secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    """Encrypt and decrypt short secrets under the service secret(s)."""

    def __init__(self, service_secrets: Sequence[str], purpose: bytes = PURPOSE) -> None:
        if not service_secrets:
            raise ValueError("at least one service secret is needed")
        self._primary = _fernet(service_secrets[0], purpose)
        self._box = MultiFernet([_fernet(s, purpose) for s in service_secrets])

    def seal(self, plaintext: str) -> str:
        return self._box.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str | None:
        """The secret, or None for a token no configured service secret can open."""
        try:
            return self._box.decrypt(token.encode()).decode()
        except InvalidToken:
            return None

    def reseal(self, token: str) -> str | None:
        """The secret sealed again under the first service secret, when `token` was sealed
        under another one (a key rotation); None when it needs nothing (or nothing opens it)."""
        try:
            self._primary.decrypt(token.encode())
            return None
        except InvalidToken:
            pass
        try:
            return self._box.rotate(token.encode()).decode()
        except InvalidToken:
            return None
