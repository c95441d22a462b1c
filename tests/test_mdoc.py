"""The mdoc verifier (agegate/mdoc.py) on real DeviceResponses built with a PKI made here."""

from __future__ import annotations

import base64
from datetime import timedelta

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from agegate import mdoc
from tests.mdoc_helpers import AV, MDL, NOW, ORIGIN, Presentation

NONCE = "n-0123456789abcdefghijAB"


def check(pki, presentation: str, query: str = "age", origin: str = ORIGIN,
          nonce: str = NONCE, now=NOW, anchors=None) -> mdoc.Verdict:
    return mdoc.verify(presentation, query=query, origin=origin, nonce=nonce,
                       anchors=anchors if anchors is not None else [pki.root], now=now)


def test_a_valid_eu_age_verification_presentation_is_over_18(pki):
    verdict = check(pki, Presentation(pki, NONCE).encoded())
    assert verdict == mdoc.Verdict("over_18", None, AV[0], mdoc.fingerprint(pki.signer))


def test_a_valid_mobile_driving_licence_is_over_18(pki):
    presentation = Presentation(pki, NONCE, doctype=MDL[0], namespace=MDL[1],
                                elements={"age_over_18": True, "age_over_21": False})
    verdict = check(pki, presentation.encoded(), query="mdl")
    assert (verdict.result, verdict.doctype) == ("over_18", MDL[0])


def test_age_over_18_false_is_not_over_18(pki):
    verdict = check(pki, Presentation(pki, NONCE, elements={"age_over_18": False}).encoded())
    assert (verdict.result, verdict.reason) == ("not_over_18", None)


@pytest.mark.parametrize(("change", "reason"), [
    ({"nonce": "another-nonce-0123456789"}, "bad_device_signature"),
    ({"origin": "https://evil.example"}, "bad_device_signature"),
    ({"origin": "https://signup.example:8443"}, "bad_device_signature"),
    ({"issuer": "untrusted"}, "untrusted_issuer"),
    ({"tamper_element": True}, "digest_mismatch"),
    ({"valid_until": NOW - timedelta(seconds=1)}, "expired"),
    ({"valid_from": NOW + timedelta(minutes=5)}, "not_yet_valid"),
    ({"doctype": MDL[0]}, "wrong_doctype"),
    ({"mso_doctype": MDL[0]}, "wrong_doctype"),
    ({"elements": {"age_over_21": True}}, "element_missing"),
    ({"namespace": "org.iso.18013.5.1"}, "element_missing"),
    ({"elements": {"age_over_18": "yes"}}, "malformed"),
], ids=lambda value: str(value)[:40])
def test_each_failure_has_its_reason(pki, change, reason):
    presentation = Presentation(pki, **{"nonce": NONCE, **change})
    if "nonce" in change or "origin" in change:  # built for another request, checked for ours
        verdict = check(pki, presentation.encoded())
    else:
        verdict = check(pki, presentation.encoded())
    assert (verdict.result, verdict.reason) == ("rejected", reason)


def test_a_device_key_other_than_the_msos_is_a_bad_device_signature(pki):
    presentation = Presentation(pki, NONCE, device_key=pki.other_device_key)
    assert check(pki, presentation.encoded()).reason == "bad_device_signature"


def test_an_mdl_answering_the_age_query_is_the_wrong_doctype(pki):
    presentation = Presentation(pki, NONCE, doctype=MDL[0], namespace=MDL[1])
    assert check(pki, presentation.encoded(), query="age").reason == "wrong_doctype"
    assert check(pki, presentation.encoded(), query="mdl").result == "over_18"


def _reencode(raw: str, edit) -> str:
    response = cbor2.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    edit(response)
    return base64.urlsafe_b64encode(cbor2.dumps(response)).decode()


def test_a_changed_mso_breaks_the_issuer_signature(pki):
    def edit(response):
        auth = response["documents"][0]["issuerSigned"]["issuerAuth"]
        mso = cbor2.loads(cbor2.loads(auth[2]).value)
        mso["validityInfo"]["validUntil"] = cbor2.CBORTag(0, "2099-01-01T00:00:00Z")
        auth[2] = cbor2.dumps(cbor2.CBORTag(24, cbor2.dumps(mso)))

    raw = _reencode(Presentation(pki, NONCE).encoded(), edit)
    assert check(pki, raw).reason == "bad_issuer_signature"


def test_a_swapped_certificate_is_a_bad_issuer_signature(pki):
    """The trusted signer's certificate on an MSO the untrusted signer signed."""
    from cryptography.hazmat.primitives import serialization

    def edit(response):
        response["documents"][0]["issuerSigned"]["issuerAuth"][1][33] = \
            pki.signer.public_bytes(serialization.Encoding.DER)

    raw = _reencode(Presentation(pki, NONCE, issuer="untrusted").encoded(), edit)
    assert check(pki, raw).reason == "bad_issuer_signature"


def test_an_expired_or_future_certificate_or_anchor_is_untrusted(pki):
    presentation = Presentation(pki, NONCE).encoded()
    assert check(pki, presentation, now=NOW + timedelta(days=400)).reason == "untrusted_issuer"
    assert check(pki, presentation, now=NOW - timedelta(days=60)).reason == "untrusted_issuer"
    assert check(pki, presentation, anchors=[]).reason == "untrusted_issuer"
    # The signer itself is no anchor: only a CA in the bundle is.
    assert check(pki, presentation, anchors=[pki.signer]).reason == "untrusted_issuer"


def test_a_device_mac_instead_of_a_signature_is_refused(pki):
    def edit(response):
        response["documents"][0]["deviceSigned"]["deviceAuth"] = {"deviceMac": [b"", {}, None,
                                                                                b"x" * 32]}

    raw = _reencode(Presentation(pki, NONCE).encoded(), edit)
    assert check(pki, raw).reason == "bad_device_signature"


def test_element_signed_only_by_the_device_does_not_count(pki):
    """age_over_18 must be issuer-signed: a device-signed copy is not the issuer's word."""
    def edit(response):
        document = response["documents"][0]
        document["issuerSigned"]["nameSpaces"] = {}

    raw = _reencode(Presentation(pki, NONCE).encoded(), edit)
    assert check(pki, raw).reason == "element_missing"


@pytest.mark.parametrize("garbage", [
    "", "!!!", "a", "AAAA", base64.urlsafe_b64encode(b"\xff\xff\xff").decode(),
    base64.urlsafe_b64encode(cbor2.dumps({"documents": []})).decode(),
    base64.urlsafe_b64encode(cbor2.dumps({"documents": [{"docType": 1}]})).decode(),
    base64.urlsafe_b64encode(cbor2.dumps([1, 2, 3])).decode(),
    base64.urlsafe_b64encode(b"\x9f" * 5000).decode(),  # deeply nested, unterminated arrays
    base64.urlsafe_b64encode(b"\x5b" + b"\xff" * 8).decode(),  # a bstr claiming 2^64 bytes
    base64.urlsafe_b64encode(cbor2.dumps({"documents": [{
        "docType": AV[0], "issuerSigned": {"issuerAuth": [b"", {}, b"", b""]},
        "deviceSigned": {"nameSpaces": cbor2.CBORTag(24, b"\xa0"), "deviceAuth": {}}}]})).decode(),
])
def test_garbage_is_malformed(pki, garbage):
    assert check(pki, garbage) == mdoc.Verdict("rejected", "malformed")


def test_the_session_transcript_is_openid4vp_appendix_b_2_6_2():
    """[null, null, ["OpenID4VPDCAPIHandover", sha256(cbor([origin, nonce, null]))]], with the
    CBOR written out by hand: array(3), text origin, text nonce, null."""
    import hashlib

    info = bytes([0x83, 0x60 + 14]) + b"https://rp.exa" + bytes([0x62]) + b"n1" + b"\xf6"
    assert mdoc.session_transcript("https://rp.exa", "n1") == [
        None, None, ["OpenID4VPDCAPIHandover", hashlib.sha256(info).digest()]]


@pytest.mark.parametrize("curve", ["P-384", "Ed25519"])
def test_es384_and_eddsa_signatures_verify(curve):
    """ES384 and EdDSA document signers and device keys, besides ES256."""
    from tests import mdoc_helpers as helpers

    def key():
        return (ec.generate_private_key(ec.SECP384R1()) if curve == "P-384"
                else ed25519.Ed25519PrivateKey.generate())

    root_key = ec.generate_private_key(ec.SECP384R1())
    root = helpers._root("IACA 384", root_key, NOW)
    signer_key = key()
    pki = helpers.Pki(root_key, root, signer_key,
                      helpers._signer("DS", signer_key, root, root_key, NOW),
                      root, signer_key, root, key(), key())
    verdict = check(pki, Presentation(pki, NONCE).encoded())
    assert verdict.result == "over_18"
    bad = Presentation(pki, NONCE, device_key=pki.other_device_key).encoded()
    assert check(pki, bad).reason == "bad_device_signature"


def test_an_algorithm_outside_the_contract_is_refused(pki):
    def edit(response):
        auth = response["documents"][0]["issuerSigned"]["issuerAuth"]
        auth[0] = cbor2.dumps({1: -257})  # RS256

    raw = _reencode(Presentation(pki, NONCE).encoded(), edit)
    assert check(pki, raw).reason == "bad_issuer_signature"


def test_random_corruption_is_refused_or_harmless_and_never_raises(pki):
    """Byte flips anywhere in a valid DeviceResponse: each is rejected (or, where it hits a
    field no check covers, such as `status`, still the same over_18), never an exception."""
    import random

    raw = Presentation(pki, NONCE).build()
    rng = random.Random(23)
    seen = set()
    for _ in range(300):
        corrupted = bytearray(raw)
        for _ in range(rng.randint(1, 3)):
            corrupted[rng.randrange(len(corrupted))] = rng.randrange(256)
        verdict = check(pki, mdoc.base64url(bytes(corrupted)))
        assert verdict.result in ("over_18", "rejected")
        seen.add(verdict.reason)
    assert {"malformed", "bad_issuer_signature"} <= seen
