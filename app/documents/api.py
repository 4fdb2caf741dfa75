"""API: document metadata and content."""

from __future__ import annotations

from urllib.parse import quote

from flask import Response, jsonify
from flask_login import current_user

from app.api import api_route, spec
from app.documents import services
from app.documents.models import Document

DOCUMENT_SCHEMA = spec.schema(
    "Document",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "filename": {"type": "string"},
            "mime_type": {"type": "string"},
            "size": {"type": "integer"},
            "sha256": {"type": "string"},
            "kind": {"type": "string"},
            "description": {"type": ["string", "null"]},
            "parent_id": {"type": ["integer", "null"]},
            "created_at": {"type": "string"},
            "flags": {"type": "object"},
        },
        "required": ["id", "filename", "mime_type", "size", "sha256"],
    },
)
INLINE_TYPES = {"application/pdf", "image/png", "image/jpeg", "image/tiff", "text/plain"}


def document_json(document: Document) -> dict:
    """Public representation of a document."""
    return {
        "id": document.id,
        "filename": document.filename,
        "mime_type": document.mime_type,
        "size": document.size,
        "sha256": document.sha256,
        "kind": document.kind,
        "description": document.description,
        "parent_id": document.parent_id,
        "created_at": document.created_at.isoformat(),
        "flags": document.flags or {},
    }


@api_route(
    "/documents/<int:document_id>",
    "GET",
    summary="Métadonnées d'un document",
    tag="Documents",
    responses={200: DOCUMENT_SCHEMA},
)
def get_document(document_id):
    return jsonify(document_json(services.get_document(document_id, current_user)))


@api_route(
    "/documents/<int:document_id>/content",
    "GET",
    summary="Contenu d'un document",
    tag="Documents",
    responses={200: None},
)
def get_content(document_id):
    document = services.get_document(document_id, current_user)
    quarantined = bool((document.flags or {}).get("quarantined"))
    inline = document.mime_type in INLINE_TYPES and not quarantined
    response = Response(
        services.content(document),
        mimetype=document.mime_type if inline else "application/octet-stream",
    )
    disposition = "inline" if inline else "attachment"
    response.headers["Content-Disposition"] = (
        f"{disposition}; filename*=UTF-8''{quote(document.filename)}"
    )
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
