"""Content-addressed storage under MISSIVE_STORAGE: a file is named by its sha256.

A stored file is never overwritten: writing the same bytes twice is a no-op, and a
signed or converted PDF is new content, hence a new file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from flask import current_app


class StorageError(Exception):
    """The bytes could not be stored (disk full, permissions…); nothing was recorded."""


def root() -> Path:
    """The storage directory of this installation."""
    return Path(current_app.config["MISSIVE_STORAGE"])


def blob_path(sha256: str) -> Path:
    """Where the content with that digest lives."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("invalid sha256")
    return root() / sha256[:2] / sha256[2:4] / sha256


def put(data: bytes) -> str:
    """Store bytes durably (write, fsync, atomic rename) and return their sha256."""
    digest = hashlib.sha256(data).hexdigest()
    target = blob_path(digest)
    if target.exists():
        return digest
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    except OSError as exc:
        raise StorageError(f"Le fichier n'a pas pu être enregistré : {exc.strerror}") from exc
    return digest


def read(sha256: str) -> bytes:
    """The bytes stored under that digest (verified)."""
    data = blob_path(sha256).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise StorageError(f"Contenu altéré pour {sha256}")
    return data


def exists(sha256: str) -> bool:
    """True when the content is stored."""
    return blob_path(sha256).exists()
