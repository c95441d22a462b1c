"""Verify an ISO/IEC 18013-5 mdoc presented over OpenID4VP 1.0 and the Digital Credentials API.

Pure: no Flask, no Redis. `verify` takes the base64url DeviceResponse a wallet returned for one
DCQL credential query and answers `over_18`, `not_over_18`, or `rejected` with the first check
that failed, in the contract's order (docs/api.md, "Digital credentials"):

1. the DeviceResponse parses (CBOR) and has the shape 18013-5 gives it (else `malformed`);
2. `issuerAuth` is a COSE_Sign1 (ES256, ES384 or EdDSA) by the document-signer certificate in
   its `x5chain` (`bad_issuer_signature`), a certificate issued by one of the trust anchors, and
   both valid now (`untrusted_issuer`);
3. the Mobile Security Object's `docType` (and the document's) is the one requested
   (`wrong_doctype`) and its `validityInfo` covers now (`not_yet_valid`, `expired`);
4. every disclosed IssuerSignedItem's digest (over its tag-24 encoding) is the MSO's
   `valueDigests` entry for its namespace and digestID (`digest_mismatch`);
5. `deviceAuth.deviceSignature` is a COSE_Sign1 (detached payload) by the MSO's device key over
   DeviceAuthenticationBytes, whose SessionTranscript binds the request's origin and nonce
   (OpenID4VP 1.0 Appendix B.2.6.2), so a response made for another request or site fails
   (`bad_device_signature`);
6. `age_over_18` is issuer-signed in the requested namespace (`element_missing`): true is
   `over_18`, false `not_over_18`.

Built on cbor2 (CBOR) and cryptography (ECDSA/EdDSA, X.509); COSE_Sign1's Sig_structure
(RFC 9052 section 4.4) is assembled here, a few lines, so that every check is ours and tested.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

log = logging.getLogger("agegate.mdoc")

# The DCQL credential query ids of the contract: (doctype, namespace of age_over_18).
QUERIES: dict[str, tuple[str, str]] = {
    "age": ("eu.europa.ec.av.1", "eu.europa.ec.av.1"),
    "mdl": ("org.iso.18013.5.1.mDL", "org.iso.18013.5.1"),
}
ELEMENT = "age_over_18"
PROTOCOL = "openid4vp-v1-unsigned"
HANDOVER = "OpenID4VPDCAPIHandover"

REASONS = ("untrusted_issuer", "bad_issuer_signature", "bad_device_signature",
           "digest_mismatch", "expired", "not_yet_valid", "wrong_doctype", "element_missing",
           "malformed")

# COSE algorithm ids (RFC 9053): the three the contract accepts.
ES256, ES384, EDDSA = -7, -35, -8
_ECDSA = {ES256: (ec.SECP256R1, hashes.SHA256), ES384: (ec.SECP384R1, hashes.SHA384)}
_DIGESTS = {"SHA-256": hashlib.sha256, "SHA-384": hashlib.sha384, "SHA-512": hashlib.sha512}
# COSE header labels and COSE_Key parameters (RFC 9052, RFC 9053, RFC 9360).
ALG, X5CHAIN = 1, 33
KTY, CRV, X, Y = 1, -1, -2, -3
KTY_OKP, KTY_EC2 = 1, 2
_EC_CURVES: dict[int, Callable[[], ec.EllipticCurve]] = {
    1: ec.SECP256R1, 2: ec.SECP384R1, 3: ec.SECP521R1}


class Rejected(Exception):
    """A presentation failed one check; `reason` is the contract's word for which."""

    def __init__(self, reason: str) -> None:
        assert reason in REASONS
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Verdict:
    """What the service keeps of a presentation: the result, and for a verified one the
    doctype and the SHA-256 fingerprint (hex) of the issuer's document-signer certificate."""

    result: str  # over_18 | not_over_18 | rejected
    reason: str | None = None
    doctype: str | None = None
    issuer_fingerprint: str | None = None


def session_transcript(origin: str, nonce: str) -> list[Any]:
    """OpenID4VP 1.0 Appendix B.2.6.2, response mode `dc_api` (not encrypted, so the JWK
    thumbprint is null): [null, null, ["OpenID4VPDCAPIHandover", sha256(cbor([origin, nonce,
    null]))]]. `origin` is the web origin, without an `origin:` prefix."""
    info = cbor2.dumps([origin, nonce, None])
    return [None, None, [HANDOVER, hashlib.sha256(info).digest()]]


def device_authentication_bytes(transcript: list[Any], doctype: str,
                                device_namespaces: cbor2.CBORTag) -> bytes:
    """DeviceAuthenticationBytes = #6.24(bstr .cbor ["DeviceAuthentication", SessionTranscript,
    DocType, DeviceNameSpacesBytes]) (ISO/IEC 18013-5, 9.1.3.4)."""
    inner = cbor2.dumps(["DeviceAuthentication", transcript, doctype, device_namespaces])
    return cbor2.dumps(cbor2.CBORTag(24, inner))


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """COSE_Sign1's Sig_structure (RFC 9052, 4.4), without external AAD."""
    return cbor2.dumps(["Signature1", protected, b"", payload])


def base64url(raw: bytes) -> str:
    """base64url without padding (a nonce, a vp_token entry)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """base64url with or without padding; anything else raises ValueError."""
    if not isinstance(text, str) or not text or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


# -- parsing ------------------------------------------------------------------------------
def _map(value: Any) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise Rejected("malformed")
    return value


def _field(container: dict[Any, Any], name: Any, kind: type | tuple[type, ...]) -> Any:
    value = container.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise Rejected("malformed")
    return value


def _embedded(value: Any) -> Any:
    """The CBOR inside an encoded-CBOR item (#6.24(bstr))."""
    if not (isinstance(value, cbor2.CBORTag) and value.tag == 24
            and isinstance(value.value, bytes)):
        raise Rejected("malformed")
    try:
        return cbor2.loads(value.value)
    except Exception:  # cbor2 raises many kinds on hostile input
        raise Rejected("malformed") from None


@dataclass(frozen=True)
class _Sign1:
    protected: bytes
    header: dict[Any, Any]  # protected header, decoded
    unprotected: dict[Any, Any]
    payload: bytes | None
    signature: bytes

    @property
    def alg(self) -> Any:
        return self.header.get(ALG)


def _sign1(value: Any) -> _Sign1:
    """A COSE_Sign1 array (tag 18 optional)."""
    if isinstance(value, cbor2.CBORTag) and value.tag == 18:
        value = value.value
    if not (isinstance(value, list) and len(value) == 4):
        raise Rejected("malformed")
    protected, unprotected, payload, signature = value
    if not (isinstance(protected, bytes) and isinstance(unprotected, dict)
            and (payload is None or isinstance(payload, bytes))
            and isinstance(signature, bytes)):
        raise Rejected("malformed")
    try:
        header = cbor2.loads(protected) if protected else {}
    except Exception:
        raise Rejected("malformed") from None
    return _Sign1(protected, _map(header), unprotected, payload, signature)


def _signature_valid(alg: Any, key: Any, signature: bytes, data: bytes) -> bool:
    """Whether `signature` over `data` verifies under `key` with COSE algorithm `alg`; an
    algorithm outside the contract's three, or one that does not fit the key, is False."""
    try:
        if alg in _ECDSA:
            curve, digest = _ECDSA[alg]
            if not (isinstance(key, ec.EllipticCurvePublicKey)
                    and isinstance(key.curve, curve)):
                return False
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                       int.from_bytes(signature[size:], "big"))
            key.verify(der, data, ec.ECDSA(digest()))
            return True
        if alg == EDDSA and isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
            return True
    except InvalidSignature:
        return False
    return False


def cose_key(value: Any) -> Any:
    """A COSE_Key (EC2 P-256/384/521 or OKP Ed25519/Ed448) as a cryptography public key."""
    key = _map(value)
    try:
        if key.get(KTY) == KTY_EC2 and key.get(CRV) in _EC_CURVES:
            curve = _EC_CURVES[key[CRV]]()
            size = (curve.key_size + 7) // 8
            x, y = key.get(X), key.get(Y)
            if not (isinstance(x, bytes) and len(x) == size):
                raise Rejected("malformed")
            if isinstance(y, bool):  # a compressed point: y's sign bit
                point = bytes([3 if y else 2]) + x
            elif isinstance(y, bytes) and len(y) == size:
                point = b"\x04" + x + y
            else:
                raise Rejected("malformed")
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        if key.get(KTY) == KTY_OKP and isinstance(key.get(X), bytes):
            if key.get(CRV) == 6:
                return ed25519.Ed25519PublicKey.from_public_bytes(key[X])
            if key.get(CRV) == 7:
                return ed448.Ed448PublicKey.from_public_bytes(key[X])
    except ValueError:  # not a point on the curve, wrong length
        raise Rejected("malformed") from None
    raise Rejected("malformed")


def _x5chain(sign1: _Sign1) -> list[x509.Certificate]:
    raw = sign1.header.get(X5CHAIN, sign1.unprotected.get(X5CHAIN))
    chain = [raw] if isinstance(raw, bytes) else raw
    if not (isinstance(chain, list) and chain and all(isinstance(c, bytes) for c in chain)):
        raise Rejected("malformed")
    try:
        return [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError:
        raise Rejected("malformed") from None


def _valid_at(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _may_sign(cert: x509.Certificate) -> bool:
    """A document signer's key usage, when stated, allows digital signatures."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature)
    except x509.ExtensionNotFound:
        return True


def _chains_to_anchor(chain: list[x509.Certificate], anchors: Sequence[x509.Certificate],
                      now: datetime) -> bool:
    """The document signer (chain[0]), through any intermediates the x5chain carries, is issued
    by a trust anchor; every certificate on the path, the anchor included, is valid now, and
    every issuer is a CA. (IACA roots issue document signers directly: the usual path is one
    step.) Signatures are checked with cryptography's verify_directly_issued_by."""
    leaf = chain[0]
    if not (_valid_at(leaf, now) and _may_sign(leaf)):
        return False
    path = [leaf]
    for _ in range(len(chain)):
        current = path[-1]
        for anchor in anchors:
            if _issued_by(current, anchor) and _is_ca(anchor) and _valid_at(anchor, now):
                return True
        parent = next((c for c in chain[1:] if c not in path and _issued_by(current, c)), None)
        if parent is None or not (_is_ca(parent) and _valid_at(parent, now)):
            return False
        path.append(parent)
    return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def load_anchors(pem: bytes) -> list[x509.Certificate]:
    """The trust anchors of a PEM bundle (AGEGATE_CREDENTIAL_TRUST_ANCHORS)."""
    return x509.load_pem_x509_certificates(pem)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


# -- the checks ----------------------------------------------------------------------------
def verify(presentation: str, *, query: str, origin: str, nonce: str,
           anchors: Sequence[x509.Certificate], now: datetime) -> Verdict:
    """Verify one base64url DeviceResponse answering DCQL query `query` ("age" or "mdl") of
    the request made for `origin` with `nonce`, at `now` (aware UTC)."""
    try:
        return _verify(presentation, query, origin, nonce, anchors, now)
    except Rejected as rejected:
        return Verdict("rejected", rejected.reason)
    except Exception as error:  # hostile input must never become a 500
        # A certificate whose extensions or key only fail when read (cryptography parses them
        # lazily), an unsupported key algorithm, nesting deep enough to exhaust the stack...
        log.warning("presentation refused as malformed: %s", type(error).__name__)
        return Verdict("rejected", "malformed")


def _verify(presentation: str, query: str, origin: str, nonce: str,
            anchors: Sequence[x509.Certificate], now: datetime) -> Verdict:
    doctype, namespace = QUERIES[query]
    # 1. CBOR and shape.
    try:
        response = cbor2.loads(b64url_decode(presentation))
    except Exception:  # ValueError, cbor2's decode errors, and whatever hostile input raises
        raise Rejected("malformed") from None
    documents = _field(_map(response), "documents", list)
    if len(documents) != 1:
        raise Rejected("malformed")
    document = _map(documents[0])
    document_type = _field(document, "docType", str)
    issuer_signed = _map(document.get("issuerSigned"))
    device_signed = _map(document.get("deviceSigned"))
    namespaces = _map(issuer_signed.get("nameSpaces", {}))
    issuer_auth = _sign1(issuer_signed.get("issuerAuth"))
    device_auth = _map(device_signed.get("deviceAuth"))
    device_namespaces = device_signed.get("nameSpaces")
    if not (isinstance(device_namespaces, cbor2.CBORTag) and device_namespaces.tag == 24):
        raise Rejected("malformed")
    if issuer_auth.payload is None:
        raise Rejected("malformed")

    # 2. The issuer's signature, by the document signer in x5chain, which chains to an anchor.
    chain = _x5chain(issuer_auth)
    signer = chain[0]
    if not _signature_valid(issuer_auth.alg, signer.public_key(), issuer_auth.signature,
                            sig_structure(issuer_auth.protected, issuer_auth.payload)):
        raise Rejected("bad_issuer_signature")
    if not _chains_to_anchor(chain, anchors, now):
        raise Rejected("untrusted_issuer")

    # 3. The Mobile Security Object: the doctype requested, valid now.
    try:
        mso = _map(_embedded(cbor2.loads(issuer_auth.payload)))
    except Rejected:
        raise
    except Exception:
        raise Rejected("malformed") from None
    mso_doctype = _field(mso, "docType", str)
    validity = _map(mso.get("validityInfo"))
    valid_from = _field(validity, "validFrom", datetime)
    valid_until = _field(validity, "validUntil", datetime)
    value_digests = _map(mso.get("valueDigests"))
    device_key_info = _map(mso.get("deviceKeyInfo"))
    digest = _DIGESTS.get(mso.get("digestAlgorithm"))  # type: ignore[arg-type]
    if digest is None or valid_from.tzinfo is None or valid_until.tzinfo is None:
        raise Rejected("malformed")
    if mso_doctype != doctype or document_type != doctype:
        raise Rejected("wrong_doctype")
    if now < valid_from:
        raise Rejected("not_yet_valid")
    if now > valid_until:
        raise Rejected("expired")

    # 4. Every disclosed element is the one the issuer signed.
    disclosed: dict[tuple[str, str], Any] = {}
    for space, items in namespaces.items():
        if not (isinstance(space, str) and isinstance(items, list)):
            raise Rejected("malformed")
        digests = value_digests.get(space)
        for tagged in items:
            item = _map(_embedded(tagged))
            digest_id = _field(item, "digestID", int)
            _field(item, "random", bytes)
            name = _field(item, "elementIdentifier", str)
            expected = digests.get(digest_id) if isinstance(digests, dict) else None
            actual = digest(cbor2.dumps(tagged)).digest()
            if not (isinstance(expected, bytes) and hmac.compare_digest(expected, actual)):
                raise Rejected("digest_mismatch")
            disclosed[(space, name)] = item.get("elementValue")

    # 5. The device signed this request's session transcript (origin and nonce).
    device_signature = device_auth.get("deviceSignature")
    if device_signature is None:  # deviceMac needs a reader key, which OpenID4VP has not
        raise Rejected("bad_device_signature")
    device_sign1 = _sign1(device_signature)
    device_key = cose_key(device_key_info.get("deviceKey"))
    signed = device_authentication_bytes(session_transcript(origin, nonce), document_type,
                                         device_namespaces)
    if device_sign1.payload not in (None, signed):
        raise Rejected("bad_device_signature")
    if not _signature_valid(device_sign1.alg, device_key, device_sign1.signature,
                            sig_structure(device_sign1.protected, signed)):
        raise Rejected("bad_device_signature")

    # 6. age_over_18, issuer-signed in the requested namespace.
    if (namespace, ELEMENT) not in disclosed:
        raise Rejected("element_missing")
    value = disclosed[(namespace, ELEMENT)]
    if not isinstance(value, bool):
        raise Rejected("malformed")
    return Verdict("over_18" if value else "not_over_18", None, doctype, fingerprint(signer))
