"""API: parapheur folders (create with an ad-hoc circuit, read steps and versions),
resubmission, validation reports and delegations of signature."""

from __future__ import annotations

from datetime import date

from flask import jsonify, request, url_for
from flask_login import current_user

from app.api import api_route, page_of, spec
from app.auth.services import find_user_by_email
from app.core.errors import ValidationFailed
from app.core.pagination import parse_limit
from app.parapheur import services
from app.parapheur.models import Delegation, Folder, FolderStatus, FolderType
from app.parapheur.services import Upload

TYPES = [t.value for t in FolderType]
STEP_SCHEMA = {
    "type": "object",
    "required": ["step"],
    "additionalProperties": False,
    "properties": {
        "step": {"type": "string", "enum": ["visa", "signature"]},
        "assignee": {"type": "string", "format": "email", "description": "un agent"},
        "group": {"type": "string", "description": "ou un groupe : un seul de ses membres"},
    },
}
CREATE_SCHEMA = {
    "type": "object",
    "required": ["title", "type"],
    "additionalProperties": False,
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 300},
        "type": {"type": "string", "enum": TYPES},
        "amount": {"type": ["number", "null"], "minimum": 0},
        "seal": {"type": "boolean", "description": "cachet serveur en fin de circuit"},
        "circuit": {"type": "array", "minItems": 1, "maxItems": 20, "items": STEP_SCHEMA},
        "process_key": {"type": "string", "description": "un circuit déployé (sans circuit)"},
        "variables": {"type": "object", "description": "ses variables (visas, signer…)"},
    },
}
STEP_OUT = {
    "type": "object",
    "properties": {
        "kind": {"type": "string"},
        "name": {"type": "string"},
        "status": {"type": "string", "enum": ["done", "pending"]},
        "decision": {"type": ["string", "null"]},
        "comment": {"type": ["string", "null"]},
        "by": {"type": ["string", "null"]},
        "on_behalf_of": {"type": ["string", "null"]},
        "at": {"type": "string"},
        "folder_version": {"type": "integer"},
        "task_id": {"type": ["integer", "null"]},
    },
    "required": ["kind", "name", "status", "decision", "comment", "by", "at"],
}
VERSION_OUT = {
    "type": "object",
    "properties": {
        "document_id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["original", "signature", "seal"]},
        "sha256": {"type": "string"},
        "created_at": {"type": "string"},
        "level": {"type": "string"},
        "signed_by": {"type": ["string", "null"]},
        "on_behalf_of": {"type": ["string", "null"]},
    },
    "required": ["document_id", "kind", "sha256"],
}
FOLDER_SCHEMA = spec.schema(
    "ParapheurFolder",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "type": {"type": "string", "enum": TYPES},
            "amount": {"type": ["number", "null"]},
            "status": {"type": "string", "enum": [s.value for s in FolderStatus]},
            "version": {"type": "integer"},
            "process_key": {"type": "string"},
            "process_instance_id": {"type": ["integer", "null"]},
            "drafter": {"type": "string"},
            "rejection": {"type": ["object", "null"]},
            "steps": {"type": "array", "items": STEP_OUT},
            "documents": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "role": {"type": "string", "enum": ["main", "annex"]},
                        "folder_version": {"type": "integer"},
                        "current": {"type": "boolean"},
                        "filename": {"type": "string"},
                        "current_document_id": {"type": "integer"},
                        "versions": {"type": "array", "items": VERSION_OUT},
                    },
                },
            },
        },
        "required": ["id", "title", "type", "status", "version", "steps", "documents"],
    },
)
CREATED_SCHEMA = spec.schema(
    "ParapheurFolderCreated",
    {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "process_instance_id": {"type": "integer"}},
        "required": ["id", "process_instance_id"],
    },
)
REPORT_SCHEMA = spec.schema(
    "SignatureValidationReport",
    {
        "type": "object",
        "properties": {
            "document_id": {"type": "integer"},
            "sha256": {"type": "string"},
            "readable": {"type": "boolean"},
            "signatures": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["document_id", "readable", "signatures"],
    },
)
DELEGATION_SCHEMA = spec.schema(
    "SignatureDelegation",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "delegator": {"type": "string"},
            "delegate": {"type": "string"},
            "document_types": {"type": "array", "items": {"type": "string"}},
            "amount_ceiling": {"type": ["number", "null"]},
            "valid_from": {"type": "string", "format": "date"},
            "valid_until": {"type": ["string", "null"], "format": "date"},
            "mention": {"type": "string"},
            "revoked_at": {"type": ["string", "null"]},
        },
        "required": ["id", "delegator", "delegate", "valid_from", "mention"],
    },
)
DELEGATION_IN = {
    "type": "object",
    "required": ["delegate"],
    "additionalProperties": False,
    "properties": {
        "delegator": {"type": "string", "format": "email"},
        "delegate": {"type": "string", "format": "email"},
        "document_types": {"type": "array", "items": {"type": "string", "enum": TYPES}},
        "amount_ceiling": {"type": ["number", "null"], "minimum": 0},
        "valid_from": {"type": "string", "format": "date"},
        "valid_until": {"type": ["string", "null"], "format": "date"},
        "mention": {"type": "string", "maxLength": 300},
    },
}


def folder_json(folder: Folder) -> dict:
    """Public representation of a folder: status, steps and every document version."""
    rejection = None
    if folder.rejection_reason:
        rejection = {
            "reason": folder.rejection_reason,
            "by": folder.rejected_by.email if folder.rejected_by else None,
            "at": folder.rejected_at.isoformat() if folder.rejected_at else None,
            "version": folder.rejected_version,
        }
    return {
        "id": folder.id,
        "title": folder.title,
        "type": folder.type.value,
        "type_label": folder.type_label,
        "amount": folder.amount,
        "status": folder.status.value,
        "status_label": folder.status_label,
        "version": folder.version,
        "process_key": folder.process_key,
        "process_instance_id": folder.process_instance_id,
        "drafter": folder.drafter.email,
        "seal": folder.seal,
        "circuit": folder.circuit or [],
        "created_at": folder.created_at.isoformat(),
        "updated_at": folder.updated_at.isoformat(),
        "completed_at": folder.completed_at.isoformat() if folder.completed_at else None,
        "rejection": rejection,
        "steps": services.folder_steps(folder),
        "documents": services.document_versions(folder),
    }


def _uploads(names: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()) -> list[Upload]:
    files = []
    for name in request.files:
        if (names is None and name not in exclude) or (names and name in names):
            files.extend(
                Upload(f.filename or "document.pdf", f.read())
                for f in request.files.getlist(name)
                if f.filename or f.content_length
            )
    return files


@api_route(
    "/parapheur/folders",
    "POST",
    summary="Déposer un parapheur",
    tag="Parapheur",
    description="Parties multipart : `metadata` (JSON) et les PDF (`documents`, plusieurs "
    "possibles ; toute autre partie fichier est aussi un document principal), `annexes`. "
    "Sans `circuit` ni `process_key`, le circuit est choisi par la table de décision selon "
    "le type et le montant.",
    multipart={
        "metadata": CREATE_SCHEMA,
        "files": {"documents": "PDF à viser et signer", "annexes": "PDF joints"},
    },
    responses={201: CREATED_SCHEMA},
)
def create_folder(body, files):
    folder = services.create_folder(
        title=body["title"],
        type=body["type"],
        actor=current_user,
        documents=_uploads(exclude=("annexes", "metadata")),
        annexes=_uploads(names=("annexes",)),
        circuit=body.get("circuit"),
        process_key=body.get("process_key"),
        variables=body.get("variables"),
        amount=body.get("amount"),
        seal=bool(body.get("seal")),
    )
    response = jsonify({"id": folder.id, "process_instance_id": folder.process_instance_id})
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_folder", folder_id=folder.id)
    return response


@api_route(
    "/parapheur/folders",
    "GET",
    summary="Parapheurs",
    tag="Parapheur",
    query={
        "scope": {"schema": {"type": "string", "enum": ["todo", "mine", "all"], "default": "all"}},
        "status": {"schema": {"type": "string", "enum": [s.value for s in FolderStatus]}},
        "type": {"schema": {"type": "string", "enum": TYPES}},
        "q": {"schema": {"type": "string", "maxLength": 200}},
        "cursor": {"schema": {"type": "string"}},
        "limit": {"schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    },
    responses={200: page_of(FOLDER_SCHEMA)},
)
def list_folders(query):
    folders, cursor = services.list_folders(
        current_user,
        scope=query["scope"] or "all",
        status=query["status"],
        type=query["type"],
        q=query["q"],
        cursor=query["cursor"],
        limit=parse_limit(str(query["limit"]) if query["limit"] else None),
    )
    return jsonify({"items": [folder_json(f) for f in folders], "next_cursor": cursor})


@api_route(
    "/parapheur/folders/<int:folder_id>",
    "GET",
    summary="Un parapheur : étapes et versions des documents",
    tag="Parapheur",
    responses={200: FOLDER_SCHEMA},
)
def get_folder(folder_id):
    return jsonify(folder_json(services.get_folder(folder_id, current_user)))


@api_route(
    "/parapheur/folders/<int:folder_id>/resubmit",
    "POST",
    summary="Déposer la version corrigée et renvoyer le parapheur dans son circuit",
    tag="Parapheur",
    multipart={
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"comment": {"type": "string", "maxLength": 2000}},
        },
        "files": {"documents": "PDF corrigés", "annexes": "PDF joints (sinon inchangés)"},
    },
    responses={200: FOLDER_SCHEMA},
)
def resubmit_folder(folder_id, body, files):
    annexes = _uploads(names=("annexes",))
    folder = services.resubmit_folder(
        folder_id,
        current_user,
        _uploads(exclude=("annexes", "metadata")),
        annexes or None,
        (body or {}).get("comment"),
    )
    return jsonify(folder_json(folder))


@api_route(
    "/parapheur/documents/<int:document_id>/validation",
    "GET",
    summary="Rapport de validation des signatures d'un PDF",
    tag="Parapheur",
    responses={200: REPORT_SCHEMA},
)
def validation_report(document_id):
    return jsonify(services.validation_report(document_id, current_user))


def delegation_json(delegation: Delegation) -> dict:
    return {
        "id": delegation.id,
        "delegator": delegation.delegator.email,
        "delegate": delegation.delegate.email,
        "document_types": delegation.document_types or [],
        "amount_ceiling": delegation.amount_ceiling,
        "valid_from": delegation.valid_from.isoformat(),
        "valid_until": delegation.valid_until.isoformat() if delegation.valid_until else None,
        "mention": delegation.mention,
        "revoked_at": delegation.revoked_at.isoformat() if delegation.revoked_at else None,
    }


@api_route(
    "/parapheur/delegations",
    "GET",
    summary="Délégations de signature données ou reçues",
    tag="Parapheur",
    responses={200: {"type": "object", "properties": {"items": {"type": "array"}}}},
)
def list_delegations():
    return jsonify({"items": [delegation_json(d) for d in services.delegations_of(current_user)]})


def _person(email: str, field: str):
    user = find_user_by_email(email)
    if user is None:
        raise ValidationFailed(
            "Agent inconnu.", errors=[{"field": field, "message": f"Aucun agent : {email}."}]
        )
    return user


@api_route(
    "/parapheur/delegations",
    "POST",
    summary="Déléguer sa signature",
    tag="Parapheur",
    body=DELEGATION_IN,
    responses={201: DELEGATION_SCHEMA},
)
def create_delegation(body):
    delegation = services.create_delegation(
        delegator=_person(body["delegator"], "delegator")
        if body.get("delegator")
        else current_user,
        delegate=_person(body["delegate"], "delegate"),
        actor=current_user,
        document_types=body.get("document_types"),
        amount_ceiling=body.get("amount_ceiling"),
        valid_from=date.fromisoformat(body["valid_from"]) if body.get("valid_from") else None,
        valid_until=date.fromisoformat(body["valid_until"]) if body.get("valid_until") else None,
        mention=body.get("mention"),
    )
    response = jsonify(delegation_json(delegation))
    response.status_code = 201
    return response


@api_route(
    "/parapheur/delegations/<int:delegation_id>/revoke",
    "POST",
    summary="Révoquer une délégation de signature",
    tag="Parapheur",
    responses={200: DELEGATION_SCHEMA},
)
def revoke_delegation(delegation_id):
    return jsonify(delegation_json(services.revoke_delegation(delegation_id, current_user)))
