"""Adding and reading documents (the one storage path of Missive)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.core import audit
from app.core.errors import NotFound
from app.core.extensions import db
from app.core.permissions import require
from app.documents import storage
from app.documents.models import Document

# Other domains tell who may read a document attached to their objects (a case, a folder).
DocumentAccess = Callable[[Any, Document], bool]
_access_rules: list[DocumentAccess] = []


def register_document_access(rule: DocumentAccess) -> DocumentAccess:
    """Register a rule ``(user, document) -> bool`` granting read access."""
    _access_rules.append(rule)
    return rule


def can_read(user, document: Document) -> bool:
    """True when one of the registered rules lets the user read the document."""
    if document.created_by_id == user.id:
        return True
    return any(rule(user, document) for rule in _access_rules)


def add_document(data: bytes, *, actor=None, **fields) -> Document:
    """Store bytes and record a document, in the caller's transaction (flushed, not committed);
    ``fields`` are those of ``new_document``.

    Raises ``storage.StorageError`` before anything is recorded when the bytes cannot be
    written, so the caller's transaction can roll back cleanly.
    """
    document = new_document(data, actor=actor, **fields)
    db.session.flush()
    audit.record(**creation_event(document, actor))
    return document


def new_document(
    data: bytes,
    *,
    filename: str,
    mime_type: str,
    actor=None,
    kind: str = "original",
    description: str | None = None,
    parent: Document | None = None,
    flags: dict | None = None,
    text: str | None = None,
) -> Document:
    """Store bytes and add their document to the session, unflushed: for callers recording
    many documents with one flush, which then write each one's ``creation_event``."""
    digest = storage.put(data)
    document = Document(
        sha256=digest,
        size=len(data),
        mime_type=mime_type or "application/octet-stream",
        filename=(filename or "document")[:300],
        kind=kind,
        description=description,
        parent=parent,
        created_by_id=getattr(actor, "id", None),
        flags=flags or {},
        text=text,
    )
    db.session.add(document)
    return document


def creation_event(document: Document, actor=None) -> dict:
    """The audit event of a new document (flushed: it has its id), for ``audit.record``
    or ``audit.record_many``."""
    return {
        "action": "document.create",
        "actor": actor,
        "object_type": "document",
        "object_id": document.id,
        "data": {
            "sha256": document.sha256,
            "filename": document.filename,
            "kind": document.kind,
            "parent": document.parent.id if document.parent else None,
        },
    }


def get_document(document_id: int, actor=None) -> Document:
    """A document the actor may read."""
    document = db.session.get(Document, document_id)
    if document is None:
        raise NotFound("Document introuvable.")
    if actor is not None:
        require(actor, "read", "document", document)
    return document


def content(document: Document) -> bytes:
    """The document's bytes (digest verified)."""
    return storage.read(document.sha256)


def versions(document: Document) -> list[Document]:
    """The document and every document derived from it, oldest first."""
    found, frontier = [document], [document.id]
    while frontier:
        children = list(
            db.session.query(Document)
            .filter(Document.parent_id.in_(frontier))
            .order_by(Document.id)
        )
        found.extend(children)
        frontier = [c.id for c in children]
    return found
