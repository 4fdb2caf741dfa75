"""API: the caller's tasks — list, read with form, claim, unclaim, complete."""

from __future__ import annotations

from flask import jsonify
from flask_login import current_user

from app.api import api_route, page_of, spec
from app.core.pagination import parse_limit
from app.engine import services as engine
from app.engine.models import HumanTask
from app.inbox import services

TASK_SCHEMA = spec.schema(
    "Task",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "string", "enum": ["open", "completed", "cancelled"]},
            "process_key": {"type": "string"},
            "process_instance_id": {"type": "integer"},
            "element_id": {"type": "string"},
            "form_key": {"type": ["string", "null"]},
            "assignee": {"type": ["string", "null"]},
            "candidate_groups": {"type": "array", "items": {"type": "string"}},
            "candidate_users": {"type": "array", "items": {"type": "string"}},
            "priority": {"type": "integer"},
            "due_at": {"type": ["string", "null"]},
            "follow_up_at": {"type": ["string", "null"]},
            "created_at": {"type": "string"},
            "completed_at": {"type": ["string", "null"]},
            "metadata": {"type": "object"},
        },
        "required": ["id", "name", "title", "status", "process_key", "process_instance_id"],
    },
)
TASK_DETAIL_SCHEMA = spec.schema(
    "TaskDetail",
    {
        "allOf": [
            TASK_SCHEMA,
            {
                "type": "object",
                "properties": {
                    "form": {"type": ["object", "null"]},
                    "data": {"type": "object"},
                    "documentation": {"type": ["string", "null"]},
                },
            },
        ],
    },
)


def task_json(task: HumanTask) -> dict:
    """Public representation of a task (no case data: see the detail)."""
    return {
        "id": task.id,
        "name": task.name,
        "title": task.title,
        "status": str(task.status),
        "process_key": task.process_key,
        "process_instance_id": task.instance_id,
        "element_id": task.element_id,
        "form_key": task.form_key,
        "assignee": task.assignee.email if task.assignee else None,
        "candidate_groups": task.candidate_groups or [],
        "candidate_users": task.candidate_users or [],
        "priority": task.priority,
        "due_at": task.due_at.isoformat() if task.due_at else None,
        "follow_up_at": task.follow_up_at.isoformat() if task.follow_up_at else None,
        "created_at": task.created_at.isoformat(),
        "completed_at": task.completed_at.isoformat() if task.completed_at else None,
        "metadata": task.metadata_ or {},
    }


@api_route(
    "/tasks",
    "GET",
    summary="Les tâches de l'appelant",
    tag="Tâches",
    query={
        "scope": {
            "schema": {"type": "string", "enum": list(services.SCOPES), "default": "mine"},
            "description": "mine : mes tâches ; candidate : corbeilles de "
            "mes groupes ; all : les deux",
        },
        "process_key": {"schema": {"type": "string"}},
        "cursor": {"schema": {"type": "string"}},
        "limit": {"schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    },
    responses={200: page_of(TASK_SCHEMA)},
)
def list_tasks(query):
    limit = parse_limit(str(query["limit"]) if query["limit"] else None)
    tasks, cursor = services.list_tasks(
        current_user,
        query["scope"],
        cursor=query["cursor"],
        limit=limit,
        process_key=query["process_key"],
    )
    return jsonify({"items": [task_json(t) for t in tasks], "next_cursor": cursor})


@api_route(
    "/tasks/<int:task_id>",
    "GET",
    summary="Une tâche avec son formulaire",
    tag="Tâches",
    responses={200: TASK_DETAIL_SCHEMA},
)
def get_task(task_id):
    task = engine.get_task(task_id, current_user)
    body = task_json(task)
    body["form"] = engine.task_form(task)
    body["data"] = engine.task_data(task) if str(task.status) == "open" else {}
    body["documentation"] = task.documentation
    return jsonify(body)


@api_route(
    "/tasks/<int:task_id>/claim",
    "POST",
    summary="Prendre une tâche",
    tag="Tâches",
    description="409 si un autre agent la détient déjà.",
    responses={200: TASK_SCHEMA},
)
def claim_task(task_id):
    return jsonify(task_json(engine.claim_task(task_id, current_user)))


@api_route(
    "/tasks/<int:task_id>/unclaim",
    "POST",
    summary="Rendre une tâche à sa corbeille",
    tag="Tâches",
    responses={200: TASK_SCHEMA},
)
def unclaim_task(task_id):
    return jsonify(task_json(engine.unclaim_task(task_id, current_user)))


@api_route(
    "/tasks/<int:task_id>/complete",
    "POST",
    summary="Terminer une tâche",
    tag="Tâches",
    description="Les données sont validées par le schéma du formulaire (422 avec les "
    "erreurs par champ).",
    body={
        "type": "object",
        "properties": {"data": {"type": "object"}},
        "additionalProperties": False,
    },
    responses={200: TASK_SCHEMA},
)
def complete_task(task_id, body):
    return jsonify(task_json(engine.complete_task(task_id, body.get("data") or {}, current_user)))
