"""Password hashing (argon2) and token digests."""

from __future__ import annotations

import hashlib
import os
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# Cost parameters are sized per server (argon2-cffi's RFC 9106 defaults otherwise).
_hasher = PasswordHasher(
    time_cost=int(os.environ.get("MISSIVE_ARGON2_TIME_COST", "3")),
    memory_cost=int(os.environ.get("MISSIVE_ARGON2_MEMORY_KIB", "65536")),
    parallelism=int(os.environ.get("MISSIVE_ARGON2_PARALLELISM", "4")),
)
# Verified against when an account does not exist, so timing does not reveal it.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """Return an argon2id hash of the password."""
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Check a password against its stored hash; a missing hash still costs one verification."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored_hash)


def new_token(prefix: str = "msv") -> str:
    """Return a new random bearer token."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_digest(token: str) -> str:
    """Return the digest under which a high-entropy token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()
