"""Content-addressed storage under MISSIVE_STORAGE: a file is named by its sha256.

A stored file is never overwritten: writing the same bytes twice is a no-op, and a
signed or converted PDF is new content, hence a new file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from contextvars import ContextVar
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
    """Store bytes durably (write, fsync, atomic rename) and return their sha256.

    Inside a ``Writer`` block, bytes the writer was given return at once: the writer
    stores them, and its ``wait`` tells when they are durable.
    """
    digest = hashlib.sha256(data).hexdigest()
    writer = _writer.get()
    if writer is not None and digest in writer.queued:
        return digest
    _store(data, digest, blob_path(digest))
    return digest


class Writer:
    """Stores files in background threads, so that their fsyncs overlap each other and
    the caller's work (parsing, database statements); a context manager owning its threads.

    Inside ``deferring()``, ``put`` of bytes given to ``submit`` returns at once; the
    caller must ``wait`` before committing anything that names those files: it returns
    once every one is durable, or raises the first ``StorageError``.
    """

    def __init__(self, threads: int = 8) -> None:
        self.root = root()
        self.queued: dict[str, Future] = {}
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="storage")

    def submit(self, data: bytes) -> str:
        """Start storing bytes; return their sha256."""
        digest = hashlib.sha256(data).hexdigest()
        if digest not in self.queued:
            target = self.root / digest[:2] / digest[2:4] / digest
            self.queued[digest] = self._pool.submit(_store, data, digest, target)
        return digest

    def wait(self) -> None:
        """Block until every submitted file is stored; raise the first failure."""
        for future in self.queued.values():
            future.result()

    @contextmanager
    def deferring(self) -> Iterator[Writer]:
        """A block where ``put`` leaves submitted bytes to the writer; on leaving it, the
        writes are over (failed or not) and forgotten."""
        token = _writer.set(self)
        try:
            yield self
        finally:
            _writer.reset(token)
            futures_wait(list(self.queued.values()))
            self.queued.clear()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc_info) -> None:
        self._pool.shutdown(wait=True)


_writer: ContextVar[Writer | None] = ContextVar("missive_storage_writer", default=None)


def _store(data: bytes, digest: str, target: Path) -> None:
    if target.exists():
        return
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


def read(sha256: str) -> bytes:
    """The bytes stored under that digest (verified)."""
    data = blob_path(sha256).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise StorageError(f"Contenu altéré pour {sha256}")
    return data


def exists(sha256: str) -> bool:
    """True when the content is stored."""
    return blob_path(sha256).exists()
