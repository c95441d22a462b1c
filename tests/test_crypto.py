"""The keyed hash every identifier and audit entry relies on must be plain HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest

from agegate.crypto import Hasher, HmacSha256


@pytest.mark.parametrize("key_length", [0, 1, 32, 63, 64, 65, 200])
def test_hmac_sha256_is_the_standard_librarys(key_length):
    rng = random.Random(key_length)
    key = rng.randbytes(key_length)
    mac = HmacSha256(key)
    for length in (0, 1, 55, 56, 64, 119, 1000):
        message = rng.randbytes(length)
        assert mac.hexdigest(message) == hmac.new(key, message, "sha256").hexdigest()
        split = length // 3
        assert (mac.with_prefix(message[:split]).hexdigest(message[split:])
                == hmac.new(key, message, "sha256").hexdigest())


def test_a_prefixed_mac_can_be_used_again_and_leaves_the_original_alone():
    mac = HmacSha256(b"k" * 32)
    prefixed = mac.with_prefix(b"head|")
    first = prefixed.hexdigest(b"one")
    assert prefixed.hexdigest(b"two") == hmac.new(b"k" * 32, b"head|two", "sha256").hexdigest()
    assert prefixed.hexdigest(b"one") == first
    assert mac.hexdigest(b"one") == hmac.new(b"k" * 32, b"one", "sha256").hexdigest()


def test_identifier_hashes_did_not_change():
    # Retry and identity blocks already stored are named by these values: they must not move.
    secret = "a-secret-of-forty-characters-or-so-----"
    key = hashlib.sha256(("agegate/v1/" + secret).encode()).digest()
    expected = hmac.new(key, b"email\x00kid@example.com", hashlib.sha256).hexdigest()
    assert Hasher(secret).digest("email", "kid@example.com") == expected
    assert Hasher(secret).short("email", "kid@example.com") == expected[:32]
