"""API: the caller's tasks."""

from __future__ import annotations

from flask import jsonify

from app.api import api_route, page_of, spec

TASK_SCHEMA = spec.schema(
    "TaskSummary",
    {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
        "required": ["id", "name"],
    },
)


@api_route(
    "/tasks",
    "GET",
    summary="Les tâches de l'appelant",
    tag="Tâches",
    query={
        "scope": {
            "schema": {"type": "string", "enum": ["mine", "candidate", "all"], "default": "mine"}
        },
        "cursor": {"schema": {"type": "string"}},
    },
    responses={200: page_of(TASK_SCHEMA)},
)
def list_tasks(query):
    return jsonify({"items": [], "next_cursor": None})
