"""API: process definitions, instances, messages and incidents."""

from __future__ import annotations

from flask import jsonify
from flask_login import current_user

from app.api import api_route, page_of, spec
from app.core.errors import PermissionDenied, ValidationFailed
from app.engine import services
from app.engine.models import HumanTask, ProcessDefinition, ProcessInstance

VERSION_SCHEMA = spec.schema(
    "ProcessVersion",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "version": {"type": "integer"},
            "version_tag": {"type": ["string", "null"]},
            "name": {"type": "string"},
            "deployed_at": {"type": "string", "format": "date-time"},
            "deployed_by": {"type": ["string", "null"]},
            "forms": {"type": "array", "items": {"type": "string"}},
            "called_versions": {"type": "object"},
        },
        "required": ["id", "version", "name"],
    },
)
DEFINITION_SCHEMA = spec.schema(
    "ProcessDefinition",
    {
        "type": "object",
        "properties": {
            "key": {"type": "string"},
            "name": {"type": "string"},
            "active": {"type": "boolean"},
            "latest_version": {"type": ["integer", "null"]},
            "versions": {"type": "array", "items": VERSION_SCHEMA},
        },
        "required": ["key", "name", "active", "versions"],
    },
)
DEPLOYED_SCHEMA = spec.schema(
    "Deployment",
    {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "key": {"type": "string"},
                        "version": {"type": "integer"},
                        "id": {"type": "integer"},
                        "created": {"type": "boolean"},
                        "kind": {"type": "string", "enum": ["process", "decision"]},
                    },
                    "required": ["key", "version", "id", "created"],
                },
            }
        },
    },
)
TASK_REF_SCHEMA = spec.schema(
    "TaskReference",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "element_id": {"type": "string"},
            "status": {"type": "string"},
            "assignee": {"type": ["string", "null"]},
            "candidate_groups": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["id", "name", "status"],
    },
)
INSTANCE_SCHEMA = spec.schema(
    "ProcessInstance",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string"},
            "process_key": {"type": "string"},
            "version": {"type": "integer"},
            "business_key": {"type": ["string", "null"]},
            "title": {"type": ["string", "null"]},
            "started_at": {"type": "string"},
            "ended_at": {"type": ["string", "null"]},
            "summary": {"type": "object"},
            "tasks": {"type": "array", "items": TASK_REF_SCHEMA},
            "current_tasks": {"type": "array", "items": TASK_REF_SCHEMA},
            "history": {"type": "array", "items": {"type": "object"}},
            "incidents": {"type": "array", "items": {"type": "object"}},
        },
        "required": ["id", "status", "process_key", "version"],
    },
)


def version_json(version) -> dict:
    """Public representation of a definition version."""
    return {
        "id": version.id,
        "version": version.version,
        "version_tag": version.version_tag,
        "name": version.name,
        "deployed_at": version.deployed_at.isoformat(),
        "deployed_by": version.deployed_by.email if version.deployed_by else None,
        "forms": sorted(version.forms),
        "called_versions": version.called_versions,
    }


def definition_json(definition: ProcessDefinition) -> dict:
    """Public representation of a definition and its versions."""
    versions = [version_json(v) for v in definition.versions]
    return {
        "key": definition.key,
        "name": definition.name,
        "active": definition.active,
        "latest_version": versions[-1]["version"] if versions else None,
        "versions": versions,
    }


def task_ref_json(task: HumanTask) -> dict:
    return {
        "id": task.id,
        "name": task.name,
        "element_id": task.element_id,
        "status": str(task.status),
        "assignee": task.assignee.email if task.assignee else None,
        "candidate_groups": task.candidate_groups or [],
    }


def instance_json(instance: ProcessInstance, detail: bool = True) -> dict:
    """Public representation of an instance (with tasks and history when ``detail``)."""
    body = {
        "id": instance.id,
        "status": str(instance.status),
        "process_key": instance.process_key,
        "version": instance.version.version,
        "business_key": instance.business_key,
        "title": instance.title,
        "started_at": instance.started_at.isoformat(),
        "ended_at": instance.ended_at.isoformat() if instance.ended_at else None,
        "summary": instance.summary or {},
    }
    if detail:
        tasks = services.instance_tasks(instance)
        body["tasks"] = [task_ref_json(t) for t in tasks]
        body["current_tasks"] = [task_ref_json(t) for t in tasks if str(t.status) == "open"]
        body["history"] = [
            {"at": e.at.isoformat(), "action": e.action, "actor": e.actor_id, "data": e.data}
            for e in services.instance_history(instance)
        ]
        body["incidents"] = [
            {
                "id": i.id,
                "kind": i.kind,
                "element_id": i.element_id,
                "message": i.message,
                "created_at": i.created_at.isoformat(),
                "resolved_at": i.resolved_at.isoformat() if i.resolved_at else None,
            }
            for i in instance_incidents(instance)
        ]
    return body


def instance_incidents(instance: ProcessInstance):
    from sqlalchemy import select

    from app.core.extensions import db
    from app.engine.models import Incident

    return list(
        db.session.execute(
            select(Incident).where(Incident.instance_id == instance.id).order_by(Incident.id)
        ).scalars()
    )


@api_route(
    "/process-definitions",
    "POST",
    summary="Déployer des fichiers BPMN/DMN",
    tag="Processus",
    description="201 si une nouvelle version est créée, 200 si le contenu est identique "
    "à une version existante, 422 avec la liste des éléments refusés.",
    multipart={"files": {"file": "fichiers .bpmn / .dmn (un ou plusieurs)"}},
    responses={201: DEPLOYED_SCHEMA, 200: DEPLOYED_SCHEMA},
)
def deploy_definitions(body, files):
    uploads = [(f.filename or "diagramme.bpmn", f.read()) for f in files.get("file", [])]
    if not uploads:
        raise ValidationFailed(
            "Aucun fichier reçu (champ « file »).",
            errors=[{"field": "file", "message": "Ce champ est obligatoire."}],
        )
    results = services.deploy(uploads, current_user)
    status = 201 if any(r.created for r in results) else 200
    return jsonify({"items": [r.as_dict() for r in results]}), status


@api_route(
    "/process-definitions",
    "GET",
    summary="Définitions et versions",
    tag="Processus",
    query={"key": {"schema": {"type": "string"}}},
    responses={200: page_of(DEFINITION_SCHEMA)},
)
def list_definitions(query):
    items = [definition_json(d) for d in services.list_definitions(query["key"])]
    return jsonify({"items": items, "next_cursor": None})


@api_route(
    "/process-definitions/<key>",
    "PATCH",
    summary="Activer ou désactiver une définition",
    tag="Processus",
    body={
        "type": "object",
        "properties": {"active": {"type": "boolean"}},
        "required": ["active"],
        "additionalProperties": False,
    },
    responses={200: DEFINITION_SCHEMA},
)
def patch_definition(key, body):
    definition = services.set_definition_active(key, body["active"], current_user)
    return jsonify(definition_json(definition))


@api_route(
    "/process-instances",
    "POST",
    summary="Démarrer une instance",
    tag="Processus",
    body={
        "type": "object",
        "properties": {
            "process_key": {"type": "string", "minLength": 1},
            "version": {"type": "integer", "minimum": 1},
            "business_key": {"type": "string", "maxLength": 200},
            "title": {"type": "string", "maxLength": 500},
            "data": {"type": "object"},
        },
        "required": ["process_key"],
        "additionalProperties": False,
    },
    responses={201: INSTANCE_SCHEMA},
)
def start_instance(body):
    instance = services.start_instance(
        body["process_key"],
        body.get("data") or {},
        current_user,
        version=body.get("version"),
        business_key=body.get("business_key"),
        title=body.get("title"),
    )
    return jsonify(instance_json(instance, detail=False)), 201


@api_route(
    "/process-instances",
    "GET",
    summary="Instances (administration)",
    tag="Processus",
    query={
        "process_key": {"schema": {"type": "string"}},
        "version": {"schema": {"type": "integer"}},
        "status": {
            "schema": {
                "type": "string",
                "enum": ["running", "suspended", "completed", "terminated"],
            }
        },
    },
    responses={200: page_of(INSTANCE_SCHEMA)},
)
def list_instances(query):
    if not current_user.is_admin:
        raise PermissionDenied("La liste des instances est réservée aux administrateurs.")
    items = services.list_instances(query["process_key"], query["version"], query["status"])
    return jsonify({"items": [instance_json(i, detail=False) for i in items], "next_cursor": None})


@api_route(
    "/process-instances/<int:instance_id>",
    "GET",
    summary="Une instance",
    tag="Processus",
    responses={200: INSTANCE_SCHEMA},
)
def get_instance(instance_id):
    return jsonify(instance_json(services.get_instance(instance_id, current_user)))


def _admin_instance_route(action: str, label: str, func):
    @api_route(
        f"/process-instances/<int:instance_id>/{action}",
        "POST",
        summary=label,
        tag="Processus",
        operation_id=f"{action}_instance",
        body={"type": "object", "properties": {"reason": {"type": "string"}}},
        responses={200: INSTANCE_SCHEMA},
    )
    def handler(instance_id, body):
        if action == "terminate":
            instance = func(instance_id, current_user, body.get("reason", ""))
        else:
            instance = func(instance_id, current_user)
        return jsonify(instance_json(instance))

    return handler


_admin_instance_route("suspend", "Suspendre une instance", services.suspend_instance)
_admin_instance_route("resume", "Reprendre une instance", services.resume_instance)
_admin_instance_route("terminate", "Arrêter une instance", services.terminate_instance)


@api_route(
    "/messages",
    "POST",
    summary="Envoyer un message aux instances qui l'attendent",
    tag="Processus",
    body={
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "correlation_key": {"type": "string"},
            "data": {"type": "object"},
        },
        "required": ["name"],
        "additionalProperties": False,
    },
    responses={
        200: {
            "type": "object",
            "properties": {"instances": {"type": "array", "items": {"type": "integer"}}},
        }
    },
)
def send_message(body):
    ids = services.send_message(
        body["name"], body.get("correlation_key"), body.get("data") or {}, current_user
    )
    return jsonify({"instances": ids})


INCIDENT_SCHEMA = spec.schema(
    "Incident",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "instance_id": {"type": "integer"},
            "kind": {"type": "string"},
            "element_id": {"type": ["string", "null"]},
            "message": {"type": "string"},
            "created_at": {"type": "string"},
            "resolved_at": {"type": ["string", "null"]},
        },
        "required": ["id", "instance_id", "kind", "message"],
    },
)


def incident_json(incident) -> dict:
    return {
        "id": incident.id,
        "instance_id": incident.instance_id,
        "kind": incident.kind,
        "element_id": incident.element_id,
        "message": incident.message,
        "created_at": incident.created_at.isoformat(),
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
    }


@api_route(
    "/incidents",
    "GET",
    summary="Incidents ouverts",
    tag="Processus",
    responses={200: page_of(INCIDENT_SCHEMA)},
)
def list_incidents():
    if not current_user.has_role("analyst"):
        raise PermissionDenied("Les incidents sont réservés aux analystes et administrateurs.")
    return jsonify(
        {"items": [incident_json(i) for i in services.list_incidents()], "next_cursor": None}
    )


@api_route(
    "/incidents/<int:incident_id>/retry",
    "POST",
    summary="Relancer un incident",
    tag="Processus",
    responses={200: INCIDENT_SCHEMA},
)
def retry_incident(incident_id):
    return jsonify(incident_json(services.retry_incident(incident_id, current_user)))
