"""Real mdoc presentations for the tests: a PKI made here (an IACA-style root, its document
signer, an untrusted root with a signer of its own, a device key) and DeviceResponses built
the way a wallet builds them (ISO/IEC 18013-5, OpenID4VP 1.0 over the DC API).

Built with cbor2 and cryptography directly, independently of agegate/mdoc.py's parsing; the
only things shared are the two formulas the contract fixes (session transcript and
DeviceAuthentication), written out again here so a mistake in one is not copied into the other.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

NOW = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)  # the tests' clock (conftest.py)
AV = ("eu.europa.ec.av.1", "eu.europa.ec.av.1")
MDL = ("org.iso.18013.5.1.mDL", "org.iso.18013.5.1")
ORIGIN = "https://signup.example"
MDL_DS_EKU = x509.ObjectIdentifier("1.0.18013.5.1.2")  # ISO 18013-5 id-mdl-kp-mdlDS


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "EU"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _root(common: str, key: Any, now: datetime) -> x509.Certificate:
    """An IACA-style root: self-signed CA, path length 0, keyCertSign + cRLSign."""
    return (x509.CertificateBuilder()
            .subject_name(_name(common)).issuer_name(_name(common))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=365)).not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))


def _signer(common: str, key: Any, root: x509.Certificate, root_key: Any,
            now: datetime, days: int = 365) -> x509.Certificate:
    """A document signer: digitalSignature, EKU mdlDS, issued by the root."""
    algorithm = None if isinstance(root_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (x509.CertificateBuilder()
            .subject_name(_name(common)).issuer_name(root.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=30)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([MDL_DS_EKU]), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                root_key.public_key()), critical=False)
            .sign(root_key, algorithm))


@dataclass
class Pki:
    root_key: Any
    root: x509.Certificate
    signer_key: Any
    signer: x509.Certificate
    untrusted_root: x509.Certificate
    untrusted_signer_key: Any
    untrusted_signer: x509.Certificate
    device_key: Any
    other_device_key: Any

    def anchors_pem(self) -> bytes:
        """The trust-anchor bundle: the IACA root only."""
        return self.root.public_bytes(serialization.Encoding.PEM)


def make_pki(now: datetime = NOW) -> Pki:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _root("Test IACA", root_key, now)
    signer_key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_root = _root("Untrusted IACA", other_key, now)
    other_signer_key = ec.generate_private_key(ec.SECP256R1())
    return Pki(root_key, root, signer_key, _signer("Test DS", signer_key, root, root_key, now),
               other_root, other_signer_key,
               _signer("Untrusted DS", other_signer_key, other_root, other_key, now),
               ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1()))


# -- COSE ----------------------------------------------------------------------------------
def _alg(key: Any) -> int:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return -8
    return {256: -7, 384: -35}[key.curve.key_size]


def _sign(key: Any, data: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    size = (key.curve.key_size + 7) // 8
    digest = hashes.SHA256() if size == 32 else hashes.SHA384()
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def sign1(key: Any, payload: bytes, unprotected: dict[int, Any], detached: bool = False) -> list:
    protected = cbor2.dumps({1: _alg(key)})
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    return [protected, unprotected, None if detached else payload, _sign(key, to_sign)]


def cose_key(key: Any) -> dict[int, Any]:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        return {1: 1, -1: 6, -2: raw}
    numbers = key.public_key().public_numbers()
    size = (key.curve.key_size + 7) // 8
    return {1: 2, -1: {256: 1, 384: 2}[key.curve.key_size],
            -2: numbers.x.to_bytes(size, "big"), -3: numbers.y.to_bytes(size, "big")}


def transcript(origin: str, nonce: str) -> list:
    handover_info = cbor2.dumps([origin, nonce, None])
    return [None, None, ["OpenID4VPDCAPIHandover", hashlib.sha256(handover_info).digest()]]


# -- a presentation ------------------------------------------------------------------------
@dataclass
class Presentation:
    """What to build; every field defaults to a valid EU age verification presentation."""

    pki: Pki
    nonce: str
    origin: str = ORIGIN
    doctype: str = AV[0]
    namespace: str = AV[1]
    elements: dict[str, Any] = field(default_factory=lambda: {"age_over_18": True})
    valid_from: datetime = NOW - timedelta(days=1)
    valid_until: datetime = NOW + timedelta(days=90)
    issuer: str = "trusted"  # or "untrusted"
    device_key: Any = None  # default: pki.device_key (the key the MSO names)
    mso_doctype: str | None = None  # default: doctype
    tamper_element: bool = False  # change an element's value after signing

    def build(self) -> bytes:
        pki = self.pki
        signer_key, signer = ((pki.signer_key, pki.signer) if self.issuer == "trusted"
                              else (pki.untrusted_signer_key, pki.untrusted_signer))
        items = []
        digests = {}
        for digest_id, (name, value) in enumerate(self.elements.items()):
            item = {"digestID": digest_id, "random": secrets.token_bytes(16),
                    "elementIdentifier": name, "elementValue": value}
            tagged = cbor2.CBORTag(24, cbor2.dumps(item))
            digests[digest_id] = hashlib.sha256(cbor2.dumps(tagged)).digest()
            if self.tamper_element:
                item = dict(item, elementValue=not value if isinstance(value, bool) else "x")
                tagged = cbor2.CBORTag(24, cbor2.dumps(item))
            items.append(tagged)
        mso = {"version": "1.0", "digestAlgorithm": "SHA-256",
               "valueDigests": {self.namespace: digests},
               "deviceKeyInfo": {"deviceKey": cose_key(pki.device_key)},
               "docType": self.mso_doctype or self.doctype,
               "validityInfo": {"signed": cbor2.CBORTag(0, _tdate(NOW - timedelta(days=1))),
                                "validFrom": cbor2.CBORTag(0, _tdate(self.valid_from)),
                                "validUntil": cbor2.CBORTag(0, _tdate(self.valid_until))}}
        mso_bytes = cbor2.dumps(cbor2.CBORTag(24, cbor2.dumps(mso)))
        issuer_auth = sign1(signer_key, mso_bytes,
                            {33: signer.public_bytes(serialization.Encoding.DER)})
        device_namespaces = cbor2.CBORTag(24, cbor2.dumps({}))
        device_auth = cbor2.dumps(cbor2.CBORTag(24, cbor2.dumps(
            ["DeviceAuthentication", transcript(self.origin, self.nonce), self.doctype,
             device_namespaces])))
        device_signature = sign1(self.device_key or pki.device_key, device_auth, {},
                                 detached=True)
        response = {"version": "1.0", "status": 0, "documents": [{
            "docType": self.doctype,
            "issuerSigned": {"nameSpaces": {self.namespace: items}, "issuerAuth": issuer_auth},
            "deviceSigned": {"nameSpaces": device_namespaces,
                             "deviceAuth": {"deviceSignature": device_signature}}}]}
        return cbor2.dumps(response)

    def encoded(self) -> str:
        """base64url without padding, as a wallet's vp_token carries it."""
        return base64.urlsafe_b64encode(self.build()).rstrip(b"=").decode()


def _tdate(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def salts(raw: bytes) -> list[bytes]:
    """Every IssuerSignedItem's `random` in a built DeviceResponse (for the storage check)."""
    response = cbor2.loads(raw)
    found = []
    for items in response["documents"][0]["issuerSigned"]["nameSpaces"].values():
        for tagged in items:
            found.append(cbor2.loads(tagged.value)["random"])
    return found
