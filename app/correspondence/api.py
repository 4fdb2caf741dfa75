"""API: registration by business applications, registry search, one item."""

from __future__ import annotations

from datetime import UTC, datetime, time

from flask import current_app, jsonify, request
from flask_login import current_user

from app.api import api_route, page_of, spec
from app.contacts.models import Contact, ContactStatus
from app.contacts.services import SENDER_FIELDS, current_record, resolve_sender
from app.core.errors import ValidationFailed
from app.core.extensions import db
from app.core.pagination import parse_limit
from app.correspondence import files as filetypes
from app.correspondence import services
from app.correspondence.models import (
    CaseStatus,
    Channel,
    Confidentiality,
    Correspondence,
    Direction,
)
from app.documents.api import DOCUMENT_SCHEMA, document_json

DEFAULT_MAX_FILE_MB = 25

SENDER_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string", "maxLength": 300},
        "kind": {"type": "string", "enum": ["person", "organisation"]},
        **{name: {"type": "string", "maxLength": 500} for name in SENDER_FIELDS if name != "kind"},
        "email": {"type": "string", "format": "email", "maxLength": 254},
    },
    "additionalProperties": False,
}
METADATA_SCHEMA = spec.schema(
    "CorrespondenceMetadata",
    {
        "type": "object",
        "properties": {
            "subject": {"type": "string", "minLength": 1, "maxLength": 500},
            "type": {"type": "string", "maxLength": 60},
            "channel": {"type": "string", "enum": [c.value for c in Channel]},
            "direction": {"type": "string", "enum": [d.value for d in Direction]},
            "received_at": {
                "type": "string",
                "description": "Date (AAAA-MM-JJ) ou date et heure ISO 8601 de réception.",
                "pattern": r"^\d{4}-\d{2}-\d{2}([T ].+)?$",
            },
            "sender": SENDER_SCHEMA,
            "summary": {"type": "string", "maxLength": 20000},
            "confidentiality": {"type": "string", "enum": [c.value for c in Confidentiality]},
            "service_group": {"type": "string", "maxLength": 80},
            "copies": {"type": "array", "items": {"type": "string", "maxLength": 80}},
            "external_reference": {"type": "string", "maxLength": 200},
            "data": {"type": "object"},
        },
        "required": ["subject"],
        "additionalProperties": False,
    },
)
CREATED_SCHEMA = spec.schema(
    "CorrespondenceCreated",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "chrono": {"type": "string"},
            "received_at": {"type": "string", "format": "date-time"},
            "due_at": {"type": ["string", "null"], "format": "date-time"},
            "process_instance_id": {"type": ["integer", "null"]},
        },
        "required": ["id", "chrono", "received_at", "due_at", "process_instance_id"],
    },
)
SUMMARY_SCHEMA = spec.schema(
    "CorrespondenceSummary",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "chrono": {"type": "string"},
            "direction": {"type": "string"},
            "channel": {"type": "string"},
            "type": {"type": ["string", "null"]},
            "subject": {"type": "string"},
            "status": {"type": "string"},
            "confidentiality": {"type": "string"},
            "received_at": {"type": "string", "format": "date-time"},
            "legal_start_at": {"type": "string", "format": "date-time"},
            "due_at": {"type": ["string", "null"], "format": "date-time"},
            "answered_at": {"type": ["string", "null"], "format": "date-time"},
            "service_group": {"type": ["string", "null"]},
            "sender": {"type": ["object", "null"]},
            "process_instance_id": {"type": ["integer", "null"]},
            "flags": {"type": "object"},
        },
        "required": ["id", "chrono", "channel", "subject", "status", "received_at"],
    },
)
DETAIL_SCHEMA = spec.schema(
    "Correspondence",
    {
        "allOf": [
            SUMMARY_SCHEMA,
            {
                "type": "object",
                "properties": {
                    "summary": {"type": ["string", "null"]},
                    "registered_at": {"type": "string", "format": "date-time"},
                    "service": {"type": ["string", "null"]},
                    "copies": {"type": "array", "items": {"type": "string"}},
                    "documents": {"type": "array", "items": DOCUMENT_SCHEMA},
                    "links": {"type": "array", "items": {"type": "object"}},
                    "redirects": {"type": "array", "items": {"type": "object"}},
                    "history": {"type": "array", "items": {"type": "object"}},
                    "data": {"type": "object"},
                },
                "required": ["documents", "history"],
            },
        ]
    },
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def sender_json(contact: Contact | None) -> dict | None:
    """The sender as the registry shows it."""
    if contact is None:
        return None
    return {
        "id": contact.id,
        "kind": str(contact.kind),
        "name": contact.display_name,
        "email": contact.email,
        "postal_code": contact.postal_code,
        "city": contact.city,
    }


def summary_json(case: Correspondence) -> dict:
    """A registry line."""
    return {
        "id": case.id,
        "chrono": case.chrono,
        "direction": str(case.direction),
        "channel": str(case.channel),
        "type": case.case_type.code if case.case_type else None,
        "subject": case.subject,
        "status": str(case.status),
        "confidentiality": str(case.confidentiality),
        "received_at": _iso(case.received_at),
        "legal_start_at": _iso(case.legal_start_at),
        "due_at": _iso(case.due_at),
        "answered_at": _iso(case.answered_at),
        "service_group": case.service_group,
        "sender": sender_json(case.sender),
        "process_instance_id": case.process_instance_id,
        "flags": case.flags or {},
    }


def detail_json(case: Correspondence) -> dict:
    """A whole case: documents with ids, links, redirects, history."""
    body = summary_json(case)
    body.update(
        {
            "summary": case.summary,
            "registered_at": _iso(case.registered_at),
            "service": case.service.name if case.service else None,
            "copies": [c.group.name for c in case.copies],
            "documents": [
                {**document_json(link.document), "role": link.role} for link in case.attachments
            ],
            "links": [
                {
                    "kind": str(link.kind),
                    "source": link.source.chrono,
                    "target": link.target.chrono,
                }
                for link in services.links_of(case)
            ],
            "redirects": [
                {
                    "from": r.from_group,
                    "to": r.to_group,
                    "reason": r.reason,
                    "at": _iso(r.at),
                    "received_by_competent_at": _iso(r.received_by_competent_at),
                }
                for r in case.redirects
            ],
            "history": [
                {
                    "at": _iso(event.at),
                    "action": event.action,
                    "actor": event.actor_id,
                    "data": event.data,
                }
                for event in services.case_history(case)
            ],
            "data": case.data or {},
        }
    )
    return body


def parse_received_at(raw: str | None, field: str = "received_at") -> datetime | None:
    """A receipt date from ISO text (a bare date means that day, noon Paris time)."""
    if not raw:
        return None
    from app.correspondence.numbering import PARIS

    try:
        if len(raw) == 10:
            day = datetime.fromisoformat(raw).date()
            value = datetime.combine(day, time(12, 0), tzinfo=PARIS)
        else:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if value.tzinfo is None:
                value = value.replace(tzinfo=PARIS)
    except ValueError as exc:
        raise ValidationFailed(
            "Date de réception invalide.",
            errors=[{"field": field, "message": "Date invalide (AAAA-MM-JJ attendu)."}],
        ) from exc
    value = value.astimezone(UTC)
    if value > datetime.now(UTC):
        raise ValidationFailed(
            "La date de réception ne peut pas être dans le futur.",
            errors=[{"field": field, "message": "Date dans le futur."}],
        )
    return value


def _sender(details: dict | None, actor) -> Contact | None:
    if not details:
        return None
    if details.get("id"):
        contact = db.session.get(Contact, details["id"])
        if contact is None:
            raise ValidationFailed(
                "Expéditeur inconnu.",
                errors=[{"field": "sender.id", "message": "Contact introuvable."}],
            )
        contact = current_record(contact)
        if contact.status != ContactStatus.ACTIVE:
            raise ValidationFailed(
                "Expéditeur anonymisé.",
                errors=[{"field": "sender.id", "message": "Ce contact est anonymisé."}],
            )
        return contact
    return resolve_sender(data=dict(details), actor=actor).contact


def uploaded_files(field_names: list[str] | None = None) -> list[services.IncomingFile]:
    """The files of a multipart request, checked (413 too large, 415 refused type)."""
    limit = int(current_app.config.get("MISSIVE_INTAKE_MAX_FILE_MB", DEFAULT_MAX_FILE_MB))
    result = []
    for name, storage in request.files.items(multi=True):
        if name == "metadata" or (field_names and name not in field_names):
            continue
        if not storage or not storage.filename:
            continue
        data = storage.read()
        mime = filetypes.check_upload(
            data,
            storage.filename,
            allowed=filetypes.DOCUMENT_TYPES,
            max_bytes=limit * 1024 * 1024,
            field=name,
        )
        result.append(services.IncomingFile(storage.filename, mime, data, role="original"))
    return result


@api_route(
    "/correspondences",
    "POST",
    summary="Enregistrer un courrier (application métier)",
    description="Partie `metadata` (JSON) et fichiers (une ou plusieurs parties `file`). "
    "Le courrier reçoit un numéro chrono et démarre le circuit de son type.",
    tag="Courrier",
    multipart={"metadata": METADATA_SCHEMA, "files": {"file": {}}},
    responses={201: CREATED_SCHEMA, 413: None, 415: None, 422: None},
)
def create_correspondence(body, files):
    attachments = uploaded_files()
    channel = Channel(body.get("channel") or "api")
    data = dict(body.get("data") or {})
    if body.get("external_reference"):
        data["external_reference"] = body["external_reference"]
    intake = services.Intake(
        channel=channel,
        direction=Direction(body.get("direction") or "incoming"),
        subject=body["subject"],
        received_at=parse_received_at(body.get("received_at")),
        type_code=body.get("type"),
        sender=_sender(body.get("sender"), current_user),
        summary=body.get("summary"),
        confidentiality=Confidentiality(body.get("confidentiality") or "normal"),
        service_group=body.get("service_group"),
        copies=body.get("copies") or [],
        data=data,
        files=attachments,
    )
    case = services.register_case(intake, current_user)
    response = jsonify(
        {
            "id": case.id,
            "chrono": case.chrono,
            "received_at": _iso(case.received_at),
            "due_at": _iso(case.due_at),
            "process_instance_id": case.process_instance_id,
        }
    )
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/correspondences/{case.id}"
    return response


@api_route(
    "/correspondences",
    "GET",
    summary="Rechercher dans le registre",
    tag="Courrier",
    query={
        "channel": {"schema": {"type": "string", "enum": [c.value for c in Channel]}},
        "status": {"schema": {"type": "string", "enum": [s.value for s in CaseStatus]}},
        "type": {"schema": {"type": "string"}},
        "q": {"schema": {"type": "string", "maxLength": 200}},
        "cursor": {"schema": {"type": "string"}},
        "limit": {"schema": {"type": "string"}},
    },
    responses={200: page_of(SUMMARY_SCHEMA)},
)
def list_correspondences(query):
    items, next_cursor = services.search_cases(
        current_user,
        q=query.get("q"),
        channel=query.get("channel"),
        status=query.get("status"),
        type_code=query.get("type"),
        cursor=query.get("cursor"),
        limit=parse_limit(query.get("limit")),
    )
    return jsonify({"items": [summary_json(c) for c in items], "next_cursor": next_cursor})


@api_route(
    "/correspondences/<int:case_id>",
    "GET",
    summary="Un courrier du registre",
    tag="Courrier",
    responses={200: DETAIL_SCHEMA, 404: None},
)
def get_correspondence(case_id):
    return jsonify(detail_json(services.get_case(case_id, current_user)))
