"""The keyed hash every identifier and audit entry relies on must be plain HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac

from agegate.crypto import Hasher, key_id


def test_identifier_hashes_did_not_change():
    # Retry and identity blocks already stored are named by these values: they must not move.
    secret = "a-secret-of-forty-characters-or-so-----"
    key = hashlib.sha256(("agegate/v1/" + secret).encode()).digest()
    expected = hmac.new(key, b"email\x00kid@example.com", hashlib.sha256).hexdigest()
    assert Hasher(secret).digest("email", "kid@example.com") == expected
    assert Hasher(secret).short("email", "kid@example.com") == expected[:32]


def test_the_first_key_hashes_and_every_live_key_is_tried():
    old, new = "o" * 40, "n" * 40
    rotated = Hasher(f"{new},{old}")
    assert rotated.digest("email", "a@b.c") == Hasher(new).digest("email", "a@b.c")
    assert rotated.all_short("email", "a@b.c") == [Hasher(new).short("email", "a@b.c"),
                                                   Hasher(old).short("email", "a@b.c")]
    sealed_before = Hasher(old).sealed("status_token", "r:t")
    assert sealed_before.startswith(key_id(old) + ".")
    assert rotated.matches("status_token", "r:t", sealed_before)
    assert not rotated.matches("status_token", "r:other", sealed_before)
    assert not Hasher(new).matches("status_token", "r:t", sealed_before)  # old key retired
    # A hash stored before key ids existed still matches under whichever live key made it.
    assert rotated.matches("status_token", "r:t", Hasher(old).digest("status_token", "r:t"))
