"""API: the caller's inbox — lists and counts, a task with its form, and every action
(claim, unclaim, complete, reassign, delegate, resolve, follow-up, priority, comments,
drafts, bulk), saved filters, absences and notification preferences."""

from __future__ import annotations

from datetime import date

from flask import jsonify
from flask_login import current_user

from app.api import api_route, page_of, spec
from app.auth.models import User
from app.core.errors import ValidationFailed
from app.core.extensions import db
from app.core.pagination import parse_limit
from app.engine import services as engine
from app.engine.models import HumanTask, TaskStatus
from app.engine.permissions import acts_for
from app.inbox import queries, services
from app.inbox.models import Notification, SavedFilter, Substitution, TaskComment

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
            "owner": {"type": ["string", "null"]},
            "delegation_state": {"type": ["string", "null"], "enum": [None, "pending", "resolved"]},
            "on_behalf_of": {
                "type": ["string", "null"],
                "description": "Agent absent pour le compte duquel l'appelant agit.",
            },
            "candidate_groups": {"type": "array", "items": {"type": "string"}},
            "candidate_users": {"type": "array", "items": {"type": "string"}},
            "priority": {"type": "integer"},
            "due_at": {"type": ["string", "null"]},
            "follow_up_at": {"type": ["string", "null"]},
            "received_at": {"type": "string"},
            "created_at": {"type": "string"},
            "completed_at": {"type": ["string", "null"]},
            "metadata": {"type": "object"},
        },
        "required": ["id", "name", "title", "status", "process_key", "process_instance_id"],
    },
)
DOCUMENT_REF_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "filename": {"type": "string"},
        "mime_type": {"type": "string"},
        "size": {"type": "integer"},
    },
}
COMMENT_SCHEMA = spec.schema(
    "TaskComment",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "author": {"type": ["string", "null"]},
            "body": {"type": "string"},
            "mentions": {"type": "array", "items": {"type": "string"}},
            "created_at": {"type": "string"},
        },
        "required": ["id", "body", "created_at"],
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
                    "draft": {"type": ["object", "null"]},
                    "documentation": {"type": ["string", "null"]},
                    "documents": {"type": "array", "items": DOCUMENT_REF_SCHEMA},
                    "comments": {"type": "array", "items": COMMENT_SCHEMA},
                },
            },
        ],
    },
)
RESULTS_SCHEMA = spec.schema(
    "BulkResults",
    {
        "type": "object",
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "ok": {"type": "boolean"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                    "required": ["id", "ok", "status", "detail"],
                },
            }
        },
    },
)
SAVED_FILTER_SCHEMA = spec.schema(
    "SavedFilter",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "owner": {"type": "string"},
            "visibility": {"type": "string", "enum": list(services.VISIBILITIES)},
            "group": {"type": ["string", "null"]},
            "view": {"type": "string", "enum": list(queries.VIEWS)},
            "params": queries.FILTER_PARAMS_SCHEMA,
        },
        "required": ["name", "view", "params"],
    },
)
SUBSTITUTION_SCHEMA = spec.schema(
    "Substitution",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "absent": {"type": "string"},
            "substitute": {"type": "string"},
            "starts_on": {"type": "string", "format": "date"},
            "ends_on": {"type": "string", "format": "date"},
            "reason": {"type": ["string", "null"]},
        },
        "required": ["substitute", "starts_on", "ends_on"],
    },
)
PREFERENCES_SCHEMA = spec.schema(
    "NotificationPreferences",
    {
        "type": "object",
        "properties": {
            "email_on_assignment": {"type": "boolean"},
            "email_on_mention": {"type": "boolean"},
            "daily_digest": {"type": "boolean"},
        },
        "required": ["email_on_assignment", "email_on_mention", "daily_digest"],
        "additionalProperties": False,
    },
)
NOTIFICATION_SCHEMA = spec.schema(
    "Notification",
    {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string"},
            "message": {"type": "string"},
            "task_id": {"type": ["integer", "null"]},
            "created_at": {"type": "string"},
            "read": {"type": "boolean"},
        },
    },
)


def _iso(value):
    return value.isoformat() if value else None


def task_json(task: HumanTask | queries.TaskRow, viewer: queries.Viewer | None = None) -> dict:
    """Public representation of a task (no case data: see the detail).

    ``viewer`` (a list page's) answers « pour le compte de » from the row alone.
    """
    if viewer is not None:
        behalf = queries.on_behalf_of(task, viewer)
    else:
        behalf = acts_for(current_user, task) if task.status == TaskStatus.OPEN else None
    absent = db.session.get(User, behalf) if behalf else None
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
        "owner": task.owner.email if task.owner else None,
        "delegation_state": task.delegation_state,
        "on_behalf_of": absent.email if absent else None,
        "candidate_groups": task.candidate_groups or [],
        "candidate_users": task.candidate_users or [],
        "priority": task.priority,
        "due_at": _iso(task.due_at),
        "follow_up_at": _iso(task.follow_up_at),
        "received_at": _iso(task.received_at),
        "created_at": task.created_at.isoformat(),
        "completed_at": _iso(task.completed_at),
        "metadata": task.metadata_ or {},
    }


def comment_json(comment: TaskComment) -> dict:
    mentioned = [db.session.get(User, i) for i in comment.mentions or []]
    return {
        "id": comment.id,
        "author": comment.author.email if comment.author else None,
        "body": comment.body,
        "mentions": [u.email for u in mentioned if u is not None],
        "created_at": comment.created_at.isoformat(),
    }


LIST_QUERY = {
    "scope": {
        "schema": {"type": "string", "enum": list(queries.VIEWS)},
        "description": "mine : à traiter ; candidate : corbeilles de mes groupes ; followed : "
        "suivis ; overdue : en retard ; completed : terminées ; all : à traiter et corbeilles "
        "(toutes les tâches ouvertes pour un administrateur)",
    },
    "q": {"schema": {"type": "string"}, "description": "objet, chrono, expéditeur, métadonnées"},
    "process_key": {"schema": {"type": "string"}},
    "service": {"schema": {"type": "string"}},
    "delegation": {"schema": {"type": "string"}},
    "channel": {"schema": {"type": "string"}},
    "due_from": {
        "schema": {"type": "string"},
        "description": "AAAA-MM-JJ ou « aujourd'hui », « aujourd'hui+7 »",
    },
    "due_to": {"schema": {"type": "string"}},
    "priority_min": {"schema": {"type": "integer", "minimum": 0, "maximum": 100}},
    "priority_max": {"schema": {"type": "integer", "minimum": 0, "maximum": 100}},
    "group": {"schema": {"type": "string"}, "description": "un groupe ou « mes groupes »"},
    "assignee": {"schema": {"type": "string"}, "description": "une adresse ou « me »"},
    "sort": {"schema": {"type": "string", "enum": list(queries.SORTS)}},
    "filter": {"schema": {"type": "integer"}, "description": "un filtre enregistré"},
    "cursor": {"schema": {"type": "string"}},
    "limit": {"schema": {"type": "integer", "minimum": 1, "maximum": 200}},
}


@api_route(
    "/tasks",
    "GET",
    summary="Les tâches de l'appelant",
    tag="Tâches",
    query=LIST_QUERY,
    responses={200: page_of(TASK_SCHEMA)},
)
def list_tasks(query):
    limit = parse_limit(str(query["limit"]) if query["limit"] else None)
    params = {k: query[k] for k in queries.FILTER_KEYS if query.get(k) not in (None, "")}
    view, sort = query["scope"], query["sort"]
    if query["filter"]:
        saved = services.get_filter(query["filter"], current_user)
        params = {**saved.params, **params}
        view = view or saved.view
        sort = sort or saved.params.get("sort")
    view = view or "mine"
    filters = queries.parse_filters(params, current_user)
    page = queries.list_tasks(
        current_user, view, filters=filters, sort=sort, cursor=query["cursor"], limit=limit
    )
    items = [task_json(t, page.viewer) for t in page.tasks]
    return jsonify({"items": items, "next_cursor": page.next_cursor})


@api_route(
    "/tasks/counts",
    "GET",
    summary="Nombre de tâches par vue",
    tag="Tâches",
    responses={200: {"type": "object", "additionalProperties": {"type": "integer"}}},
)
def task_counts():
    return jsonify(queries.view_counts(current_user))


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
    draft = services.draft_for(task, current_user)
    body["draft"] = draft.data if draft else None
    body["documentation"] = task.documentation
    body["documents"] = [
        {"id": d.id, "filename": d.filename, "mime_type": d.mime_type, "size": d.size}
        for d in services.task_documents(task, current_user)
    ]
    body["comments"] = [comment_json(c) for c in services.task_comments(task)]
    return jsonify(body)


def _action(rule: str, summary: str, func, body=None, description=None):
    """Declare a POST action on one task answering the task."""

    def view(task_id, body=None):
        return jsonify(task_json(func(task_id, body or {})))

    view.__name__ = rule.replace("-", "_") + "_task"
    api_route(
        f"/tasks/<int:task_id>/{rule}",
        "POST",
        summary=summary,
        tag="Tâches",
        description=description,
        body=body,
        responses={200: TASK_SCHEMA},
    )(view)


_action(
    "claim",
    "Prendre une tâche",
    lambda i, b: services.claim(i, current_user),
    description="409 si un autre agent la détient déjà.",
)
_action(
    "unclaim", "Rendre une tâche à sa corbeille", lambda i, b: services.unclaim(i, current_user)
)
_action(
    "complete",
    "Terminer une tâche",
    lambda i, b: services.complete(i, b.get("data") or {}, current_user),
    body={
        "type": "object",
        "properties": {"data": {"type": "object"}},
        "additionalProperties": False,
    },
    description="Les données sont validées par le schéma du formulaire (422 avec les "
    "erreurs par champ).",
)
_action(
    "reassign",
    "Réattribuer une tâche à un collègue",
    lambda i, b: services.reassign(i, b["assignee"], current_user, b.get("reason", "")),
    body={
        "type": "object",
        "properties": {
            "assignee": {"type": "string", "format": "email"},
            "reason": {"type": "string", "maxLength": 500},
        },
        "required": ["assignee", "reason"],
        "additionalProperties": False,
    },
    description="Le collègue doit pouvoir prendre la tâche (membre d'une de ses corbeilles).",
)
_action(
    "delegate",
    "Déléguer une tâche (le délégataire la rendra)",
    lambda i, b: services.delegate(i, b["delegate"], current_user, b.get("reason", "")),
    body={
        "type": "object",
        "properties": {
            "delegate": {"type": "string", "format": "email"},
            "reason": {"type": "string", "maxLength": 500},
        },
        "required": ["delegate"],
        "additionalProperties": False,
    },
)
_action(
    "resolve",
    "Rendre une tâche déléguée à son propriétaire",
    lambda i, b: services.resolve(i, current_user, b.get("comment", ""), b.get("data")),
    body={
        "type": "object",
        "properties": {
            "comment": {"type": "string", "maxLength": 5000},
            "data": {"type": "object"},
        },
        "additionalProperties": False,
    },
)


def _follow_up(task_id, body):
    raw = body.get("date")
    try:
        until = date.fromisoformat(raw) if raw else None
    except ValueError as exc:
        raise ValidationFailed(
            "Date invalide.", errors=[{"field": "date", "message": "Date AAAA-MM-JJ attendue."}]
        ) from exc
    return services.snooze(task_id, current_user, until)


_action(
    "follow-up",
    "Relancer plus tard (date de suivi)",
    _follow_up,
    body={
        "type": "object",
        "properties": {"date": {"type": ["string", "null"], "format": "date"}},
        "required": ["date"],
        "additionalProperties": False,
    },
    description="La tâche quitte « À traiter » jusqu'à cette date (null : tout de suite).",
)
_action(
    "priority",
    "Changer la priorité",
    lambda i, b: services.set_priority(i, current_user, b["priority"]),
    body={
        "type": "object",
        "properties": {"priority": {"type": "integer", "minimum": 0, "maximum": 100}},
        "required": ["priority"],
        "additionalProperties": False,
    },
)


@api_route(
    "/tasks/<int:task_id>/comments",
    "GET",
    summary="Commentaires d'une tâche",
    tag="Tâches",
    responses={200: {"type": "object", "properties": {"items": {"type": "array"}}}},
)
def list_comments(task_id):
    task = engine.get_task(task_id, current_user)
    return jsonify({"items": [comment_json(c) for c in services.task_comments(task)]})


@api_route(
    "/tasks/<int:task_id>/comments",
    "POST",
    summary="Commenter une tâche (@mentions notifiées)",
    tag="Tâches",
    body={
        "type": "object",
        "properties": {"body": {"type": "string", "minLength": 1, "maxLength": 5000}},
        "required": ["body"],
        "additionalProperties": False,
    },
    responses={201: COMMENT_SCHEMA},
)
def add_comment(task_id, body):
    return jsonify(comment_json(services.add_comment(task_id, current_user, body["body"]))), 201


@api_route(
    "/tasks/<int:task_id>/draft",
    "PUT",
    summary="Enregistrer un brouillon du formulaire",
    tag="Tâches",
    body={
        "type": "object",
        "properties": {"data": {"type": "object"}},
        "required": ["data"],
        "additionalProperties": False,
    },
    responses={200: {"type": "object"}},
)
def save_draft(task_id, body):
    draft = services.save_draft(task_id, current_user, body["data"])
    return jsonify({"data": draft.data, "saved_at": draft.saved_at.isoformat()})


@api_route(
    "/tasks/bulk",
    "POST",
    summary="Action groupée (prendre, rendre, réattribuer, terminer)",
    tag="Tâches",
    description="Chaque tâche est traitée à part : un résultat par tâche.",
    body={
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": list(services.BULK_ACTIONS)},
            "task_ids": {
                "type": "array",
                "items": {"type": "integer"},
                "minItems": 1,
                "maxItems": services.MAX_BULK,
            },
            "assignee": {"type": "string"},
            "reason": {"type": "string", "maxLength": 500},
            "data": {"type": "object"},
        },
        "required": ["action", "task_ids"],
        "additionalProperties": False,
    },
    responses={200: RESULTS_SCHEMA},
)
def bulk_action(body):
    results = services.bulk(
        body["action"],
        body["task_ids"],
        current_user,
        assignee=body.get("assignee"),
        reason=body.get("reason"),
        data=body.get("data"),
    )
    return jsonify({"results": [r.as_dict() for r in results]})


# --- saved filters -------------------------------------------------------------------------


def saved_filter_json(saved: SavedFilter) -> dict:
    return {
        "id": saved.id,
        "name": saved.name,
        "owner": saved.owner.email,
        "visibility": saved.visibility,
        "group": saved.group.name if saved.group else None,
        "view": saved.view,
        "params": saved.params,
    }


@api_route(
    "/saved-filters",
    "GET",
    summary="Filtres enregistrés partagés avec moi",
    tag="Tâches",
    responses={200: {"type": "object", "properties": {"items": {"type": "array"}}}},
)
def list_saved_filters():
    items = [saved_filter_json(f) for f in services.visible_filters(current_user)]
    return jsonify({"items": items})


@api_route(
    "/saved-filters",
    "POST",
    summary="Enregistrer un filtre",
    tag="Tâches",
    description="Paramètres seulement ; « me », « mes groupes », « aujourd'hui » sont "
    "résolus à chaque lecture.",
    body=SAVED_FILTER_SCHEMA,
    responses={201: SAVED_FILTER_SCHEMA},
)
def create_saved_filter(body):
    saved = services.save_filter(
        current_user,
        body["name"],
        body["view"],
        body["params"],
        body.get("visibility", "private"),
        body.get("group"),
    )
    return jsonify(saved_filter_json(saved)), 201


@api_route(
    "/saved-filters/<int:filter_id>",
    "DELETE",
    summary="Supprimer un filtre enregistré",
    tag="Tâches",
    responses={204: None},
)
def delete_saved_filter(filter_id):
    services.delete_filter(filter_id, current_user)
    return "", 204


# --- absences --------------------------------------------------------------------------------


def substitution_json(absence: Substitution) -> dict:
    return {
        "id": absence.id,
        "absent": absence.absent.email,
        "substitute": absence.substitute.email,
        "starts_on": absence.starts_on.isoformat(),
        "ends_on": absence.ends_on.isoformat(),
        "reason": absence.reason,
    }


@api_route(
    "/substitutions",
    "GET",
    summary="Mes absences et celles que je remplace",
    tag="Absences",
    responses={200: {"type": "object", "properties": {"items": {"type": "array"}}}},
)
def list_substitutions():
    return jsonify({"items": [substitution_json(a) for a in services.absences_of(current_user)]})


@api_route(
    "/substitutions",
    "POST",
    summary="Déclarer une absence et son remplaçant",
    tag="Absences",
    body=SUBSTITUTION_SCHEMA,
    responses={201: SUBSTITUTION_SCHEMA},
)
def create_substitution(body):
    absent = current_user
    if body.get("absent"):
        absent = services.find_colleague(body["absent"], "absent")
    absence = services.declare_absence(
        absent,
        body["substitute"],
        date.fromisoformat(body["starts_on"]),
        date.fromisoformat(body["ends_on"]),
        current_user,
        body.get("reason") or "",
    )
    return jsonify(substitution_json(absence)), 201


@api_route(
    "/substitutions/<int:absence_id>",
    "DELETE",
    summary="Retirer une absence",
    tag="Absences",
    responses={204: None},
)
def delete_substitution(absence_id):
    services.cancel_absence(absence_id, current_user)
    return "", 204


# --- notifications ---------------------------------------------------------------------------


def notification_json(note: Notification) -> dict:
    return {
        "id": note.id,
        "kind": note.kind,
        "message": note.message,
        "task_id": note.task_id,
        "created_at": note.created_at.isoformat(),
        "read": note.read_at is not None,
    }


@api_route(
    "/notifications",
    "GET",
    summary="Mes notifications",
    tag="Notifications",
    responses={200: {"type": "object"}},
)
def list_notifications():
    return jsonify(
        {
            "unread": services.unread_count(current_user),
            "items": [notification_json(n) for n in services.notifications(current_user)],
        }
    )


@api_route(
    "/notifications/read",
    "POST",
    summary="Marquer des notifications comme lues",
    tag="Notifications",
    body={
        "type": "object",
        "properties": {"ids": {"type": "array", "items": {"type": "integer"}}},
        "additionalProperties": False,
    },
    responses={200: {"type": "object"}},
)
def read_notifications(body):
    count = services.mark_read(current_user, body.get("ids"))
    return jsonify({"marked": count})


@api_route(
    "/notification-preferences",
    "GET",
    summary="Mes préférences de notification",
    tag="Notifications",
    responses={200: PREFERENCES_SCHEMA},
)
def get_preferences():
    prefs = services.preferences(current_user)
    return jsonify(
        {
            "email_on_assignment": prefs.email_on_assignment,
            "email_on_mention": prefs.email_on_mention,
            "daily_digest": prefs.daily_digest,
        }
    )


@api_route(
    "/notification-preferences",
    "PUT",
    summary="Choisir les e-mails reçus",
    tag="Notifications",
    body=PREFERENCES_SCHEMA,
    responses={200: PREFERENCES_SCHEMA},
)
def put_preferences(body):
    services.set_preferences(current_user, **body)
    return get_preferences()
