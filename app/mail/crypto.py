"""Mailbox passwords encrypted at rest (Fernet) with a key from the environment.

``MISSIVE_ENCRYPTION_KEY`` holds one or more Fernet keys separated by commas: the first
encrypts, all decrypt (key rotation). Outside production, a key derived from SECRET_KEY
is used when the variable is unset; in production the variable is required.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

from app.core.errors import MissiveError


class SecretUnavailable(MissiveError):
    status = 500
    kind = "secret-unavailable"


def _keys() -> list[bytes]:
    configured = current_app.config.get("MISSIVE_ENCRYPTION_KEY") or ""
    keys = [k.strip().encode() for k in configured.split(",") if k.strip()]
    if keys:
        return keys
    if current_app.config.get("MISSIVE_ENV") == "production":
        raise SecretUnavailable(
            "MISSIVE_ENCRYPTION_KEY doit être défini en production pour chiffrer les "
            "mots de passe des boîtes fonctionnelles."
        )
    derived = hashlib.sha256(b"missive-mailbox:" + current_app.config["SECRET_KEY"].encode())
    return [base64.urlsafe_b64encode(derived.digest())]


def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(k) for k in _keys()])
    except ValueError as exc:
        raise SecretUnavailable(
            "MISSIVE_ENCRYPTION_KEY n'est pas une clé Fernet valide (32 octets en base64 URL-safe)."
        ) from exc


def encrypt(secret: str) -> str:
    """The encrypted form of a secret, safe to store."""
    return _fernet().encrypt(secret.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """The clear secret; SecretUnavailable when no configured key opens it."""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise SecretUnavailable(
            "Le mot de passe de la boîte ne peut pas être déchiffré avec la clé configurée."
        ) from exc
