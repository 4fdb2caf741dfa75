"""Signing keys at rest and in memory.

At rest: the private key of an imported PKCS#12 is decrypted once, with the passphrase
given at import (then dropped, never stored), and re-encrypted with AES-256-GCM under the
installation's keystore key (``MISSIVE_KEYSTORE_KEY``, read from the environment); the PIN
of a PKCS#11 token is encrypted the same way, the key itself never leaves the token. The
certificate fingerprint is bound to each ciphertext (associated data), so a secret copied
onto another certificate row does not decrypt.

In memory: decrypting and parsing a key (or logging into a token) costs more than the
signature itself, so loaded signers are cached per process, keyed by the certificate
fingerprint and a fingerprint of the *encrypted* key material plus the keystore key id.
Re-importing a certificate, rotating the keystore key or replacing a PIN therefore
changes the cache key and a stale signer is never used; no secret is part of the key.
The cache holds the key as an opaque OpenSSL object (``cryptography``) or an open token
session, never the passphrase, the PIN or the plaintext key bytes: those are local
variables that live only while the key is loaded (Python cannot wipe memory, so their
lifetime is what we control). Entries expire after ``MISSIVE_SIGNER_CACHE_SECONDS``
(0 disables the cache) and the cache is bounded; it is a cache, not state: every web
process rebuilds it on demand from the database.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import pkcs12
from flask import current_app
from pyhanko.sign.general import SigningError, get_pyca_cryptography_hash
from pyhanko.sign.signers import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from app.core.errors import Conflict, ValidationFailed

log = logging.getLogger(__name__)

CACHE_SIZE = 64
_NONCE_BYTES = 12


class KeystoreError(Conflict):
    """A signing key cannot be used (keystore key missing or changed, token unreachable)."""


# --- the keystore key ----------------------------------------------------------------------


def generate_keystore_key() -> str:
    """A new value for MISSIVE_KEYSTORE_KEY (32 random bytes, URL-safe base64)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _keystore_key() -> bytes:
    raw = current_app.config.get("MISSIVE_KEYSTORE_KEY")
    if raw:
        try:
            key = base64.urlsafe_b64decode(raw.strip() + "=" * (-len(raw.strip()) % 4))
        except ValueError:
            key = b""
        if len(key) != 32:
            raise KeystoreError(
                "MISSIVE_KEYSTORE_KEY doit contenir 32 octets encodés en base64 "
                "(générez-en une avec « missive certificate keygen »)."
            )
        return key
    if current_app.config.get("MISSIVE_ENV") == "production":
        raise KeystoreError(
            "MISSIVE_KEYSTORE_KEY n'est pas configurée : les clés de signature "
            "ne peuvent être ni importées ni utilisées."
        )
    # Development and tests: a key derived from SECRET_KEY, so `make run` works as is.
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"missive keystore (development)"
    ).derive(current_app.config["SECRET_KEY"].encode())


def keystore_key_id() -> str:
    """A short public identifier of the current keystore key (stored with each secret)."""
    return hashlib.sha256(b"missive-keystore-id:" + _keystore_key()).hexdigest()[:16]


def encrypt_secret(plaintext: bytes, bound_to: str) -> bytes:
    """Encrypt a key or PIN with the keystore key, bound to a certificate fingerprint."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(_keystore_key()).encrypt(nonce, plaintext, bound_to.encode())


def decrypt_secret(blob: bytes, bound_to: str, key_id: str) -> bytes:
    """Decrypt what ``encrypt_secret`` produced (KeystoreError if the key changed)."""
    if key_id != keystore_key_id():
        raise KeystoreError(
            "Cette clé de signature a été chiffrée avec une autre valeur de "
            "MISSIVE_KEYSTORE_KEY : réimportez le certificat."
        )
    try:
        return AESGCM(_keystore_key()).decrypt(
            blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], bound_to.encode()
        )
    except Exception as exc:  # InvalidTag: altered ciphertext or wrong binding
        raise KeystoreError("La clé de signature enregistrée est illisible (altérée ?).") from exc


# --- reading certificates and keys ---------------------------------------------------------


@dataclass
class KeyMaterial:
    """A certificate, its chain and (for PKCS#12) its private key, as read at import."""

    certificate: x509.Certificate
    chain: list[x509.Certificate]
    private_key: object | None = None

    @property
    def fingerprint(self) -> str:
        return self.certificate.fingerprint(hashes.SHA256()).hex()


def read_pkcs12(data: bytes, password: str | None) -> KeyMaterial:
    """Open a PKCS#12 file with its passphrase; the passphrase is not kept."""
    try:
        key, certificate, others = pkcs12.load_key_and_certificates(
            data, password.encode() if password else None
        )
    except ValueError as exc:
        raise ValidationFailed(
            "Fichier PKCS#12 illisible ou mot de passe incorrect.",
            errors=[{"field": "pkcs12", "message": "Mot de passe incorrect ou fichier invalide."}],
        ) from exc
    if key is None or certificate is None:
        raise ValidationFailed(
            "Le fichier PKCS#12 doit contenir un certificat et sa clé privée.",
            errors=[{"field": "pkcs12", "message": "Clé ou certificat absent."}],
        )
    if _public_bytes(key.public_key()) != _public_bytes(certificate.public_key()):
        raise ValidationFailed(
            "La clé privée ne correspond pas au certificat.",
            errors=[{"field": "pkcs12", "message": "Clé et certificat discordants."}],
        )
    return KeyMaterial(certificate, _order_chain(certificate, list(others or [])), key)


def read_certificates(data: bytes) -> list[x509.Certificate]:
    """Certificates from PEM or DER bytes."""
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def check_usable(certificate: x509.Certificate) -> None:
    """Refuse certificates that are expired, not yet valid or not meant for signing."""
    from app.core.db import utcnow

    now = utcnow()
    if certificate.not_valid_after_utc < now:
        raise ValidationFailed(
            "Ce certificat a expiré.",
            errors=[{"field": "certificate", "message": "Certificat expiré."}],
        )
    if certificate.not_valid_before_utc > now:
        raise ValidationFailed(
            "Ce certificat n'est pas encore valide.",
            errors=[{"field": "certificate", "message": "Certificat pas encore valide."}],
        )
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.digital_signature or usage.content_commitment):
        raise ValidationFailed(
            "Ce certificat ne permet pas de signer (usage de clé).",
            errors=[{"field": "certificate", "message": "Usage de clé incompatible."}],
        )


def _public_bytes(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _order_chain(leaf: x509.Certificate, others: list[x509.Certificate]) -> list[x509.Certificate]:
    """The issuers of ``leaf`` first, then whatever else came with it."""
    ordered, pool, current = [], list(others), leaf
    while True:
        issuer = next((c for c in pool if c.subject == current.issuer and c is not current), None)
        if issuer is None or issuer in ordered:
            break
        ordered.append(issuer)
        pool.remove(issuer)
        if issuer.subject == issuer.issuer:
            break
        current = issuer
    return ordered + pool


def to_asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    """The same certificate for pyHanko (asn1crypto)."""
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def chain_from_rows(chain_der: list[str]) -> list[x509.Certificate]:
    """Certificates stored as base64 DER in a JSON column."""
    return [x509.load_der_x509_certificate(base64.b64decode(c)) for c in chain_der or []]


def chain_to_rows(chain: list[x509.Certificate]) -> list[str]:
    """Certificates as base64 DER for a JSON column."""
    return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]


# --- signers -------------------------------------------------------------------------------


class LoadedKeySigner(Signer):
    """A pyHanko signer over a key held by ``cryptography`` (parsed once, not per signature).

    pyHanko's SimpleSigner keeps the plaintext PKCS#8 bytes and re-parses them for every
    signature; this one keeps only the opaque key object.
    """

    def __init__(self, certificate: x509.Certificate, chain: list[x509.Certificate], private_key):
        self._private_key = private_key
        super().__init__(
            signing_cert=to_asn1(certificate),
            cert_registry=SimpleCertificateStore.from_certs([to_asn1(c) for c in chain]),
            embed_roots=True,
        )

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
        algorithm = mechanism.signature_algo
        key = self._private_key
        if isinstance(key, rsa.RSAPrivateKey) and algorithm == "rsassa_pkcs1v15":
            return key.sign(data, padding.PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm))
        if isinstance(key, ec.EllipticCurvePrivateKey) and algorithm == "ecdsa":
            return key.sign(data, ec.ECDSA(get_pyca_cryptography_hash(digest_algorithm)))
        if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
            return key.sign(data)
        raise SigningError(f"Mécanisme de signature non pris en charge : {algorithm}")


@dataclass
class _Entry:
    signer: Signer
    loaded_at: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    session: object | None = None  # an open PKCS#11 session, closed on eviction


_cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
_cache_lock = threading.Lock()


def material_fingerprint(row) -> str:
    """Fingerprint of a certificate row's encrypted key material (no secret in it)."""
    digest = hashlib.sha256(row.key_id.encode())
    for part in (
        row.encrypted_key,
        row.encrypted_pin,
        row.pkcs11_module,
        row.pkcs11_token,
        row.pkcs11_key_label,
    ):
        digest.update(b"\x00" + (part if isinstance(part, bytes) else (part or "").encode()))
    return digest.hexdigest()


class LoadedSigner:
    """A context manager giving exclusive use of a cached signer (tokens are not thread-safe)."""

    def __init__(self, entry: _Entry):
        self.entry = entry

    def __enter__(self) -> Signer:
        self.entry.lock.acquire()
        return self.entry.signer

    def __exit__(self, *exc) -> None:
        self.entry.lock.release()


def signer_for(row) -> LoadedSigner:
    """The loaded signer of a certificate row, from the cache or freshly loaded."""
    ttl = current_app.config.get("MISSIVE_SIGNER_CACHE_SECONDS", 900)
    key = (row.fingerprint, material_fingerprint(row))
    now = time.monotonic()
    with _cache_lock:
        _evict_expired(now, ttl)
        entry = _cache.get(key)
        if entry is not None:
            _cache.move_to_end(key)
            return LoadedSigner(entry)
    entry = _load(row)
    if ttl > 0:
        with _cache_lock:
            _cache[key] = entry
            while len(_cache) > CACHE_SIZE:
                _close(_cache.popitem(last=False)[1])
    return LoadedSigner(entry)


def forget_signers() -> None:
    """Drop every cached signer (after a revocation, in tests, at shutdown)."""
    with _cache_lock:
        while _cache:
            _close(_cache.popitem()[1])


def cached_signers() -> int:
    """How many signers are loaded in this process."""
    return len(_cache)


def _evict_expired(now: float, ttl: int) -> None:
    for key in [k for k, e in _cache.items() if ttl <= 0 or now - e.loaded_at > ttl]:
        _close(_cache.pop(key))


def _close(entry: _Entry) -> None:
    if entry.session is not None:
        try:
            with entry.lock:
                entry.session.close()
        except Exception:  # a token that went away: nothing left to release
            log.warning("PKCS#11 session could not be closed", exc_info=True)


def _load(row) -> _Entry:
    certificate = x509.load_der_x509_certificate(row.certificate_der)
    chain = chain_from_rows(row.chain_der)
    if row.source == "pkcs11":
        return _load_pkcs11(row, certificate, chain)
    plaintext = decrypt_secret(row.encrypted_key, row.fingerprint, row.key_id)
    private_key = serialization.load_der_private_key(plaintext, password=None)
    del plaintext
    return _Entry(LoadedKeySigner(certificate, chain, private_key), time.monotonic())


def open_token_session(module: str, token: str, pin: str | None):
    """Open a logged-in session on a PKCS#11 token (KeystoreError when unreachable)."""
    from pkcs11.exceptions import UserAlreadyLoggedIn
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign.pkcs11 import open_pkcs11_session

    criteria = TokenCriteria(label=token)
    try:
        try:
            return open_pkcs11_session(module, token_criteria=criteria, user_pin=pin)
        except UserAlreadyLoggedIn:
            # PKCS#11 logins belong to the process: another open session (a cached signer)
            # already logged in, and this one shares it.
            return open_pkcs11_session(module, token_criteria=criteria, user_pin=None)
    except Exception as exc:
        raise KeystoreError(f"Le jeton PKCS#11 « {token} » est inaccessible : {exc}") from exc


def _load_pkcs11(row, certificate: x509.Certificate, chain: list[x509.Certificate]) -> _Entry:
    from pyhanko.sign.pkcs11 import PKCS11Signer

    pin = None
    if row.encrypted_pin:
        pin = decrypt_secret(row.encrypted_pin, row.fingerprint, row.key_id).decode()
    session = open_token_session(row.pkcs11_module, row.pkcs11_token, pin)
    del pin
    signer = PKCS11Signer(
        session,
        key_label=row.pkcs11_key_label,
        signing_cert=to_asn1(certificate),
        ca_chain=[to_asn1(c) for c in chain],
        other_certs_to_pull=None,
    )
    return _Entry(signer, time.monotonic(), session=session)


def token_key_matches(session, key_label: str, certificate: x509.Certificate) -> bool:
    """True when the token's key under that label signs for the certificate's public key."""
    from pkcs11 import KeyType, Mechanism, ObjectClass

    try:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
    except Exception:
        return False
    probe = b"missive: key check"
    public = certificate.public_key()
    try:
        if key.key_type == KeyType.RSA:
            signature = key.sign(probe, mechanism=Mechanism.SHA256_RSA_PKCS)
            public.verify(signature, probe, padding.PKCS1v15(), hashes.SHA256())
        elif key.key_type == KeyType.EC:
            from pkcs11.util.ec import encode_ecdsa_signature

            signature = key.sign(probe, mechanism=Mechanism.ECDSA_SHA256)
            public.verify(encode_ecdsa_signature(signature), probe, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except (InvalidSignature, Exception):
        return False
    return True


def certificate_from_token(session, label: str) -> x509.Certificate | None:
    """The certificate stored on the token under that label, if any."""
    from pkcs11 import Attribute, ObjectClass

    for obj in session.get_objects(
        {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: label}
    ):
        return x509.load_der_x509_certificate(obj[Attribute.VALUE])
    return None
