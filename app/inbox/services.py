"""Business actions of the inbox: take, give, delegate, snooze, comment, absences,
saved filters, notifications. Each public action is one transaction (it commits);
claiming, completing and assigning go through the engine's services."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from app.auth.models import Group, User, group_membership
from app.auth.services import find_user_by_email
from app.core import audit
from app.core.db import utcnow
from app.core.errors import Conflict, MissiveError, NotFound, PermissionDenied, ValidationFailed
from app.core.extensions import db
from app.core.i18n import N_, SUPPORTED_LOCALES
from app.core.permissions import can, require
from app.core.validation import schema_errors
from app.documents.models import Document
from app.engine import services as engine
from app.engine.models import HumanTask, TaskStatus
from app.engine.permissions import acts_for, is_candidate, principals
from app.inbox import queries
from app.inbox.mails import digest_mail, notification_mail
from app.inbox.models import (
    CaseFollow,
    Notification,
    NotificationPreference,
    SavedFilter,
    Substitution,
    TaskComment,
    TaskDraft,
    ViewSettings,
)
from app.mail.outgoing import MailError, send_mail

MAX_BULK = 200
MAX_COMMENT = 5000
VISIBILITIES = {
    "private": N_("Moi seul"),
    "group": N_("Mon groupe"),
    "public": N_("Tout le monde"),
}


def _field_error(field: str, message: str, detail: str | None = None) -> ValidationFailed:
    return ValidationFailed(detail or message, errors=[{"field": field, "message": message}])


def find_colleague(email: str | None, field: str = "assignee") -> User:
    """An active colleague by e-mail (ValidationFailed on ``field`` otherwise)."""
    user = find_user_by_email(email or "")
    if user is None:
        raise _field_error(field, f"Agent inconnu : {email or '(vide)'}.")
    if not user.active:
        raise _field_error(field, f"Le compte de {user.name} est désactivé.")
    return user


def _holder_check(task: HumanTask, actor: User) -> None:
    """Only the holder (or someone acting for them) or an admin acts on a held task."""
    if actor.is_admin:
        return
    if task.assignee_id is None or task.assignee_id not in principals(actor):
        raise Conflict(
            "Seul l'agent qui détient cette tâche peut faire cela : prenez-la d'abord."
            if task.assignee_id is None
            else f"Cette tâche est prise par {task.assignee.name}."
        )


def _on_behalf(task: HumanTask, actor: User) -> dict:
    absent = acts_for(actor, task)
    return {"on_behalf_of": absent} if absent else {}


# --- taking and giving ------------------------------------------------------------------


def claim(task_id: int, actor: User) -> HumanTask:
    """Take a task from a basket (409 when a colleague was faster)."""
    return engine.claim_task(task_id, actor)


def unclaim(task_id: int, actor: User) -> HumanTask:
    """Put a task one holds back in its baskets."""
    return engine.unclaim_task(task_id, actor)


def reassign(task_id: int, assignee_email: str, actor: User, reason: str) -> HumanTask:
    """Give a task to a colleague who may take it, with the reason kept in the history."""
    reason = (reason or "").strip()
    if not reason:
        raise _field_error("reason", "Indiquez le motif de la réattribution.")
    task = engine.get_task(task_id, actor, "assign")
    if task.assignee_id is not None:
        _holder_check(task, actor)
    assignee = find_colleague(assignee_email)
    if assignee.id == task.assignee_id:
        raise _field_error("assignee", f"{assignee.name} détient déjà cette tâche.")
    if not actor.is_admin and not is_candidate(assignee, task):
        raise _field_error(
            "assignee",
            f"{assignee.name} ne fait partie d'aucune corbeille de cette tâche.",
        )
    _notify(assignee.id, "assigned", task, actor, f"{actor.name} vous a attribué « {task.title} »")
    return engine.assign_task(task_id, assignee, actor, reason[:500])


def delegate(task_id: int, delegate_email: str, actor: User, reason: str = "") -> HumanTask:
    """Ask a colleague to contribute: they hold the task until they give it back."""
    task = engine.get_task(task_id, actor, "assign")
    _holder_check(task, actor)
    if task.delegation_state == "pending":
        raise Conflict("Cette tâche est déjà déléguée.")
    helper = find_colleague(delegate_email, "delegate")
    if helper.id == task.assignee_id:
        raise _field_error("delegate", "Choisissez un autre agent que le détenteur.")
    owner_id = task.assignee_id
    engine.set_assignee(task, helper.id)
    task.owner_id, task.delegation_state = owner_id, "pending"
    audit.record(
        "task.delegate",
        actor=actor,
        object_type="human_task",
        object_id=task.id,
        data={
            "instance": task.instance_id,
            "owner": owner_id,
            "delegate": helper.id,
            "reason": (reason or "")[:500],
            **_on_behalf(task, actor),
        },
    )
    _notify(
        helper.id,
        "delegated",
        task,
        actor,
        f"{actor.name} vous demande de contribuer à « {task.title} »",
    )
    db.session.commit()
    return task


def resolve(task_id: int, actor: User, comment: str = "", data: dict | None = None) -> HumanTask:
    """Give a delegated task back to its owner, with the contribution (comment, form data)."""
    task = engine.get_task(task_id, actor, "view")
    if task.status != TaskStatus.OPEN:
        raise Conflict("Cette tâche est déjà terminée.")
    if task.delegation_state != "pending":
        raise Conflict("Cette tâche n'est pas déléguée.")
    if task.assignee_id not in principals(actor) and not actor.is_admin:
        raise PermissionDenied("Seul le délégataire peut rendre cette tâche.")
    owner_id = task.owner_id
    if data:
        _store_draft(task, owner_id, data)
    if comment.strip():
        _add_comment(task, actor, comment)
    engine.set_assignee(task, owner_id)
    task.delegation_state = "resolved"
    audit.record(
        "task.resolve",
        actor=actor,
        object_type="human_task",
        object_id=task.id,
        data={"instance": task.instance_id, "owner": owner_id, "fields": sorted(data or {})},
    )
    if owner_id:
        _notify(owner_id, "resolved", task, actor, f"{actor.name} vous a rendu « {task.title} »")
    db.session.commit()
    return task


def complete(task_id: int, data: dict | None, actor: User) -> HumanTask:
    """Complete a task with its form data; drafts of the task are dropped."""
    task = engine.get_task(task_id, actor, "complete")
    behalf = _on_behalf(task, actor)
    task = engine.complete_task(task_id, data, actor)
    db.session.execute(delete(TaskDraft).where(TaskDraft.task_id == task_id))
    if behalf:
        audit.record(
            "task.complete_on_behalf",
            actor=actor,
            object_type="human_task",
            object_id=task_id,
            data={"instance": task.instance_id, **behalf},
        )
    db.session.commit()
    return task


def snooze(task_id: int, actor: User, until: date | None) -> HumanTask:
    """Set (or clear) a follow-up date: the task leaves « À traiter » until that day."""
    task = engine.get_task(task_id, actor, "view")
    if task.status != TaskStatus.OPEN:
        raise Conflict("Cette tâche est déjà terminée.")
    _holder_check(task, actor)
    if until is not None and until <= queries.today():
        raise _field_error("follow_up", "La date de relance doit être dans le futur.")
    task.follow_up_at = queries._paris_midnight(until) if until else None
    audit.record(
        "task.follow_up",
        actor=actor,
        object_type="human_task",
        object_id=task.id,
        data={"instance": task.instance_id, "until": until.isoformat() if until else None},
    )
    db.session.commit()
    return task


def set_priority(task_id: int, actor: User, priority: int) -> HumanTask:
    """Change a task's priority (0 to 100) as its holder."""
    task = engine.get_task(task_id, actor, "view")
    if task.status != TaskStatus.OPEN:
        raise Conflict("Cette tâche est déjà terminée.")
    if task.assignee_id is not None or not can(actor, "claim", "task", task):
        _holder_check(task, actor)
    if not isinstance(priority, int) or not 0 <= priority <= 100:
        raise _field_error("priority", "Nombre entier entre 0 et 100 attendu.")
    previous, task.priority = task.priority, priority
    audit.record(
        "task.priority",
        actor=actor,
        object_type="human_task",
        object_id=task.id,
        data={"instance": task.instance_id, "from": previous, "to": priority},
    )
    db.session.commit()
    return task


# --- bulk -------------------------------------------------------------------------------


@dataclass
class ItemResult:
    id: int
    ok: bool
    status: int
    detail: str

    def as_dict(self) -> dict:
        return {"id": self.id, "ok": self.ok, "status": self.status, "detail": self.detail}


BULK_ACTIONS = ("claim", "unclaim", "reassign", "complete")


def bulk(action: str, task_ids: Iterable[int], actor: User, **params: Any) -> list[ItemResult]:
    """Run one action on many tasks, each in its own transaction; one result per task."""
    ids = list(dict.fromkeys(int(i) for i in task_ids))
    if action not in BULK_ACTIONS:
        raise _field_error("action", "Action inconnue ; choix : " + ", ".join(BULK_ACTIONS))
    if not ids:
        raise _field_error("task_ids", "Choisissez au moins une tâche.")
    if len(ids) > MAX_BULK:
        raise _field_error("task_ids", f"Au plus {MAX_BULK} tâches à la fois.")
    if action == "reassign":
        find_colleague(params.get("assignee"))
        if not (params.get("reason") or "").strip():
            raise _field_error("reason", "Indiquez le motif de la réattribution.")
    run: Callable[[int], Any] = {
        "claim": lambda i: claim(i, actor),
        "unclaim": lambda i: unclaim(i, actor),
        "reassign": lambda i: reassign(i, params.get("assignee"), actor, params.get("reason")),
        "complete": lambda i: complete(i, params.get("data") or {}, actor),
    }[action]
    results = []
    for task_id in ids:
        try:
            run(task_id)
            results.append(ItemResult(task_id, True, 200, "OK"))
        except MissiveError as error:
            db.session.rollback()
            detail = error.detail
            if error.errors:
                detail += " " + " ".join(f"{e.get('field')} : {e['message']}" for e in error.errors)
            results.append(ItemResult(task_id, False, error.status, detail))
    return results


# --- comments, follows, drafts ------------------------------------------------------------

_MENTION_RE = re.compile(r"(?<![\w.])@([A-Za-z0-9._%+-]+(?:@[A-Za-z0-9.-]+\.[A-Za-z]{2,})?)")


def mentioned_users(body: str) -> list[User]:
    """The colleagues a comment names: ``@prenom.nom`` (start of the e-mail) or an e-mail."""
    found: dict[int, User] = {}
    unknown = []
    for handle in _MENTION_RE.findall(body):
        handle = handle.rstrip(".").lower()
        if "@" in handle:
            user = find_user_by_email(handle)
        else:
            matches = list(
                db.session.execute(select(User).where(User.email.like(f"{handle}@%"))).scalars()
            )
            user = matches[0] if len(matches) == 1 else None
        if user is None:
            unknown.append("@" + handle)
        else:
            found[user.id] = user
    if unknown:
        raise _field_error(
            "body", "Personne inconnue ou ambiguë : " + ", ".join(unknown) + " (utilisez l'e-mail)."
        )
    return list(found.values())


def _add_comment(task: HumanTask, actor: User, body: str) -> TaskComment:
    body = (body or "").strip()
    if not body:
        raise _field_error("body", "Le commentaire est vide.")
    if len(body) > MAX_COMMENT:
        raise _field_error("body", f"Au plus {MAX_COMMENT} caractères.")
    mentions = [u for u in mentioned_users(body) if u.id != actor.id]
    blind = [u.name for u in mentions if not can(u, "view", "task", task)]
    if blind:
        raise _field_error(
            "body", "Ces agents n'ont pas accès à cette tâche : " + ", ".join(blind) + "."
        )
    comment = TaskComment(
        task_id=task.id, author_id=actor.id, body=body, mentions=[u.id for u in mentions]
    )
    db.session.add(comment)
    db.session.flush()
    audit.record(
        "task.comment",
        actor=actor,
        object_type="human_task",
        object_id=task.id,
        data={"instance": task.instance_id, "comment": comment.id, "mentions": comment.mentions},
    )
    for user in mentions:
        _notify(user.id, "mention", task, actor, f"{actor.name} vous cite dans « {task.title} »")
    return comment


def add_comment(task_id: int, actor: User, body: str) -> TaskComment:
    """Comment on a task; the @mentioned colleagues are notified."""
    task = engine.get_task(task_id, actor, "view")
    comment = _add_comment(task, actor, body)
    db.session.commit()
    return comment


def task_comments(task: HumanTask) -> list[TaskComment]:
    """Comments of a task, oldest first."""
    return list(
        db.session.execute(
            select(TaskComment).where(TaskComment.task_id == task.id).order_by(TaskComment.id)
        ).scalars()
    )


def follow_case(instance_id: int, actor: User, follow: bool = True) -> bool:
    """Follow (or stop following) a case: its open tasks show in « Suivis »."""
    engine.get_instance(instance_id, actor)
    existing = db.session.get(CaseFollow, (actor.id, instance_id))
    if follow and existing is None:
        db.session.add(CaseFollow(user_id=actor.id, instance_id=instance_id))
    elif not follow and existing is not None:
        db.session.delete(existing)
    db.session.commit()
    return follow


def is_following(user: User, instance_id: int) -> bool:
    """True when the user follows the case."""
    return db.session.get(CaseFollow, (user.id, instance_id)) is not None


def _store_draft(task: HumanTask, user_id: int | None, data: dict) -> None:
    if user_id is None:
        return
    draft = db.session.get(TaskDraft, (task.id, user_id))
    if draft is None:
        draft = TaskDraft(task_id=task.id, user_id=user_id, data={})
        db.session.add(draft)
    draft.data = {**(draft.data or {}), **data}
    draft.saved_at = utcnow()


def save_draft(task_id: int, actor: User, data: dict) -> TaskDraft:
    """Keep form data without completing the task (no validation: it is a draft)."""
    task = engine.get_task(task_id, actor, "view")
    if task.status != TaskStatus.OPEN:
        raise Conflict("Cette tâche est déjà terminée.")
    if not (actor.is_admin or task.assignee_id in principals(actor) or is_candidate(actor, task)):
        raise PermissionDenied("Vous ne pouvez pas travailler sur cette tâche.")
    if not isinstance(data, dict):
        raise _field_error("data", "Un objet JSON est attendu.")
    draft = db.session.get(TaskDraft, (task.id, actor.id))
    if draft is None:
        draft = TaskDraft(task_id=task.id, user_id=actor.id)
        db.session.add(draft)
    draft.data, draft.saved_at = data, utcnow()
    db.session.commit()
    return draft


def draft_for(task: HumanTask, user: User) -> TaskDraft | None:
    """The user's saved draft of a task, if any."""
    return db.session.get(TaskDraft, (task.id, user.id))


# --- the case around a task -------------------------------------------------------------

TaskDocuments = Callable[[HumanTask, User], Iterable[Document]]
_document_providers: list[TaskDocuments] = []


def register_task_documents(provider: TaskDocuments) -> TaskDocuments:
    """Let a domain list the documents of a task's case: ``provider(task, viewer)``."""
    _document_providers.append(provider)
    return provider


# A domain names the audited objects behind a task's case (e.g. its registry entry):
# ``provider(task) -> [(object_type, object_id)]``; their events join the task's history.
TaskHistory = Callable[[HumanTask], Iterable[tuple[str, int | str]]]
_history_providers: list[TaskHistory] = []
_history_labels: dict[str, str] = {}


def register_task_history(
    provider: TaskHistory, labels: dict[str, str] | None = None
) -> TaskHistory:
    """Add the events of the case's own objects to a task's history, with their labels."""
    _history_providers.append(provider)
    _history_labels.update(labels or {})
    return provider


def history_labels() -> dict[str, str]:
    """Labels of the events the domains add to task histories."""
    return dict(_history_labels)


def reassign_candidates(task: HumanTask, limit: int = 300) -> list[User]:
    """Active colleagues a task may be given to: members of its groups, named candidates."""
    groups = task.candidate_groups or []
    named = [c.user_id for c in task.candidates if c.user_id]
    conditions = []
    if groups:
        members = (
            select(group_membership.c.user_id)
            .join(Group, Group.id == group_membership.c.group_id)
            .where(Group.name.in_(groups))
        )
        conditions.append(User.id.in_(members))
    if named:
        conditions.append(User.id.in_(named))
    if not conditions:
        return []
    stmt = select(User).where(User.active.is_(True), or_(*conditions)).order_by(User.name)
    return list(db.session.execute(stmt.limit(limit)).scalars())


def task_documents(task: HumanTask, viewer: User) -> list[Document]:
    """Every document the providers attach to the task's case, once each."""
    seen: dict[int, Document] = {}
    for provider in _document_providers:
        for document in provider(task, viewer) or []:
            seen.setdefault(document.id, document)
    return list(seen.values())


def task_document(task: HumanTask, viewer: User, document_id: int) -> Document:
    """One document of the task's case (NotFound for any other document)."""
    for document in task_documents(task, viewer):
        if document.id == document_id:
            return document
    raise NotFound("Ce document n'est pas rattaché à ce dossier.")


def case_history(task: HumanTask) -> list[audit.AuditEvent]:
    """What happened to the case and its tasks, oldest first."""
    task_ids = [
        str(i)
        for i in db.session.execute(
            select(HumanTask.id).where(HumanTask.instance_id == task.instance_id)
        ).scalars()
    ]
    conditions = [
        (audit.AuditEvent.object_type == "process_instance")
        & (audit.AuditEvent.object_id == str(task.instance_id)),
        (audit.AuditEvent.object_type == "human_task") & audit.AuditEvent.object_id.in_(task_ids),
    ]
    for provider in _history_providers:
        for object_type, object_id in provider(task) or []:
            conditions.append(
                (audit.AuditEvent.object_type == object_type)
                & (audit.AuditEvent.object_id == str(object_id))
            )
    stmt = select(audit.AuditEvent).where(or_(*conditions)).order_by(audit.AuditEvent.id).limit(500)
    return list(db.session.execute(stmt).scalars())


# --- absences (out-of-office substitution) ----------------------------------------------


def active_absences_for(substitute: User, on: date | None = None) -> list[Substitution]:
    """The absences during which ``substitute`` acts for a colleague today."""
    day = on or queries.today()
    condition = queries.active_absence(substitute.id, day)
    return list(db.session.execute(select(Substitution).where(condition)).scalars())


def absent_ids_for(substitute: User, on: date | None = None) -> list[int]:
    """Ids of the colleagues ``substitute`` acts for today (one light query)."""
    day = on or queries.today()
    condition = queries.active_absence(substitute.id, day)
    return list(db.session.execute(select(Substitution.absent_id).where(condition)).scalars())


def declare_absence(
    absent: User,
    substitute_email: str,
    starts_on: date | None,
    ends_on: date | None,
    actor: User,
    reason: str = "",
) -> Substitution:
    """Name who acts for an absent agent between two dates (inclusive)."""
    if actor.id != absent.id and not actor.is_admin:
        raise PermissionDenied("Vous ne pouvez déclarer que vos propres absences.")
    errors = []
    substitute = find_user_by_email(substitute_email or "")
    if substitute is None or not substitute.active:
        errors.append({"field": "substitute", "message": "Agent inconnu ou désactivé."})
    elif substitute.id == absent.id:
        errors.append({"field": "substitute", "message": "Choisissez un autre agent."})
    if starts_on is None:
        errors.append({"field": "starts_on", "message": "Ce champ est obligatoire."})
    if ends_on is None:
        errors.append({"field": "ends_on", "message": "Ce champ est obligatoire."})
    if starts_on and ends_on and ends_on < starts_on:
        errors.append({"field": "ends_on", "message": "La fin précède le début."})
    if ends_on and ends_on < queries.today():
        errors.append({"field": "ends_on", "message": "Cette absence est déjà passée."})
    if errors:
        raise ValidationFailed("L'absence ne peut pas être enregistrée.", errors=errors)
    absence = Substitution(
        absent_id=absent.id,
        substitute_id=substitute.id,
        starts_on=starts_on,
        ends_on=ends_on,
        reason=(reason or "").strip()[:300] or None,
        created_by_id=actor.id,
    )
    db.session.add(absence)
    db.session.flush()
    audit.record(
        "absence.declare",
        actor=actor,
        object_type="user",
        object_id=absent.id,
        data={
            "substitute": substitute.id,
            "from": starts_on.isoformat(),
            "to": ends_on.isoformat(),
        },
    )
    db.session.commit()
    return absence


def cancel_absence(absence_id: int, actor: User) -> None:
    """Withdraw a declared absence."""
    absence = db.session.get(Substitution, absence_id)
    if absence is None:
        raise NotFound("Absence introuvable.")
    if absence.absent_id != actor.id and not actor.is_admin:
        raise PermissionDenied("Vous ne pouvez retirer que vos propres absences.")
    audit.record(
        "absence.cancel",
        actor=actor,
        object_type="user",
        object_id=absence.absent_id,
        data={"absence": absence.id, "substitute": absence.substitute_id},
    )
    db.session.delete(absence)
    db.session.commit()


def absences_of(user: User) -> list[Substitution]:
    """Absences the user declared or covers, current and future, soonest first."""
    return list(
        db.session.execute(
            select(Substitution)
            .where(
                or_(Substitution.absent_id == user.id, Substitution.substitute_id == user.id),
                Substitution.ends_on >= queries.today(),
            )
            .order_by(Substitution.starts_on)
        ).scalars()
    )


# --- saved filters and view settings ------------------------------------------------------


def visible_filters(user: User) -> list[SavedFilter]:
    """Saved filters shared with the user: their own, their groups', everyone's."""
    group_ids = [g.id for g in user.groups]
    stmt = (
        select(SavedFilter)
        .where(
            or_(
                SavedFilter.owner_id == user.id,
                SavedFilter.visibility == "public",
                (SavedFilter.visibility == "group") & SavedFilter.group_id.in_(group_ids)
                if group_ids
                else False,
            )
        )
        .order_by(SavedFilter.name, SavedFilter.id)
    )
    return list(db.session.execute(stmt).scalars())


def get_filter(filter_id: int, user: User) -> SavedFilter:
    """A saved filter shared with the user."""
    saved = db.session.get(SavedFilter, filter_id)
    if saved is None:
        raise NotFound("Filtre introuvable.")
    require(user, "use", "saved_filter", saved)
    return saved


def save_filter(
    actor: User,
    name: str,
    view: str,
    params: dict,
    visibility: str = "private",
    group_name: str | None = None,
) -> SavedFilter:
    """Keep a named search on the server, shared with its owner, a group or everyone."""
    errors = []
    name = (name or "").strip()
    if not name:
        errors.append({"field": "name", "message": "Donnez un nom au filtre."})
    if view not in queries.VIEWS:
        errors.append({"field": "view", "message": "Vue inconnue."})
    if visibility not in VISIBILITIES:
        errors.append({"field": "visibility", "message": "Partage inconnu."})
    params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
    errors += [
        {"field": "params." + e["field"], "message": e["message"]}
        for e in schema_errors(params, queries.FILTER_PARAMS_SCHEMA)
    ]
    group = None
    if visibility == "group":
        group = db.session.execute(select(Group).where(Group.name == (group_name or ""))).scalar()
        if group is None:
            errors.append({"field": "group", "message": "Choisissez un groupe."})
        elif group.name not in actor.group_names and not actor.is_admin:
            errors.append({"field": "group", "message": "Vous n'êtes pas membre de ce groupe."})
    if errors:
        raise ValidationFailed("Le filtre ne peut pas être enregistré.", errors=errors)
    queries.parse_filters(params, actor)  # symbolic values must resolve
    saved = SavedFilter(
        name=name[:120],
        owner_id=actor.id,
        visibility=visibility,
        group_id=group.id if group else None,
        view=view,
        params=params,
    )
    db.session.add(saved)
    db.session.flush()
    audit.record(
        "inbox.filter.save",
        actor=actor,
        object_type="saved_filter",
        object_id=saved.id,
        data={"name": saved.name, "visibility": visibility, "view": view},
    )
    db.session.commit()
    return saved


def delete_filter(filter_id: int, actor: User) -> None:
    """Remove a saved filter (its owner or an admin)."""
    saved = db.session.get(SavedFilter, filter_id)
    if saved is None:
        raise NotFound("Filtre introuvable.")
    require(actor, "manage", "saved_filter", saved)
    audit.record(
        "inbox.filter.delete",
        actor=actor,
        object_type="saved_filter",
        object_id=saved.id,
        data={"name": saved.name},
    )
    db.session.delete(saved)
    db.session.commit()


def view_settings(user: User, view: str) -> tuple[list[str], str]:
    """The columns and sort an agent chose for a view (defaults otherwise)."""
    row = db.session.get(ViewSettings, (user.id, view))
    columns = [c for c in (row.columns if row else []) if c in queries.COLUMNS]
    sort = row.sort if row and row.sort in queries.SORTS else None
    return (
        columns or list(queries.DEFAULT_COLUMNS[view]),
        sort or queries.DEFAULT_SORT.get(view, "due"),
    )


def set_view_settings(user: User, view: str, columns: list[str], sort: str | None) -> None:
    """Remember the columns and sort order of one view for an agent."""
    errors = []
    if view not in queries.VIEWS:
        errors.append({"field": "view", "message": "Vue inconnue."})
    unknown = [c for c in columns if c not in queries.COLUMNS]
    if unknown or not columns:
        errors.append({"field": "columns", "message": "Choisissez des colonnes de la liste."})
    if sort is not None and sort not in queries.SORTS:
        errors.append({"field": "sort", "message": "Tri inconnu."})
    if errors:
        raise ValidationFailed("Réglages invalides.", errors=errors)
    row = db.session.get(ViewSettings, (user.id, view))
    if row is None:
        row = ViewSettings(user_id=user.id, view=view)
        db.session.add(row)
    row.columns, row.sort = list(dict.fromkeys(columns)), sort
    db.session.commit()


# --- notifications ------------------------------------------------------------------------


def preferences(user: User) -> NotificationPreference:
    """The user's notification preferences (defaults until they change them)."""
    prefs = db.session.get(NotificationPreference, user.id)
    if prefs is None:
        prefs = NotificationPreference(
            user_id=user.id, email_on_assignment=True, email_on_mention=True, daily_digest=True
        )
    return prefs


def set_preferences(
    user: User,
    *,
    email_on_assignment: bool,
    email_on_mention: bool,
    daily_digest: bool,
    locale: str | None = None,
) -> NotificationPreference:
    """Choose which e-mails to receive (and, when given, the language of pages and e-mails)."""
    if locale is not None:
        if locale not in SUPPORTED_LOCALES:
            raise ValidationFailed(
                "Préférences invalides.",
                errors=[{"field": "locale", "message": "Langue inconnue."}],
            )
        user.locale = locale
    prefs = db.session.get(NotificationPreference, user.id)
    if prefs is None:
        prefs = NotificationPreference(user_id=user.id)
        db.session.add(prefs)
    prefs.email_on_assignment = bool(email_on_assignment)
    prefs.email_on_mention = bool(email_on_mention)
    prefs.daily_digest = bool(daily_digest)
    db.session.commit()
    return prefs


def _notify(user_id: int, kind: str, task: HumanTask | None, actor: User | None, message: str):
    if actor is not None and user_id == actor.id:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return None
    prefs = preferences(user)
    wants_mail = {
        "assigned": prefs.email_on_assignment,
        "delegated": prefs.email_on_assignment,
        "resolved": prefs.email_on_assignment,
        "mention": prefs.email_on_mention,
    }.get(kind, False)
    note = Notification(
        user_id=user_id,
        kind=kind,
        task_id=task.id if task is not None else None,
        actor_id=getattr(actor, "id", None),
        message=message[:500],
        email_state="pending" if wants_mail else "none",
    )
    db.session.add(note)
    return note


def notify_new_task(task: HumanTask, actor: User | None) -> None:
    """Engine listener: a new task given directly to someone notifies them."""
    if task.assignee_id is not None:
        _notify(task.assignee_id, "assigned", task, actor, f"Nouvelle tâche : « {task.title} »")


def unread_count(user: User) -> int:
    """How many notifications the user has not read."""
    return (
        db.session.execute(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        ).scalar()
        or 0
    )


def notifications(user: User, limit: int = 100) -> list[Notification]:
    """The user's latest notifications, newest first."""
    return list(
        db.session.execute(
            select(Notification)
            .where(Notification.user_id == user.id)
            .order_by(Notification.id.desc())
            .limit(limit)
        ).scalars()
    )


def mark_read(user: User, ids: Iterable[int] | None = None) -> int:
    """Mark the user's notifications (all, or the given ones) as read."""
    stmt = update(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)
    )
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(list(ids)))
    count = db.session.execute(stmt.values(read_at=utcnow())).rowcount
    db.session.commit()
    return count


def deliver_pending_emails(limit: int = 200) -> int:
    """Send the pending assignment and mention e-mails (the worker calls this)."""
    pending = list(
        db.session.execute(
            select(Notification)
            .where(Notification.email_state == "pending")
            .order_by(Notification.id)
            .limit(limit)
        ).scalars()
    )
    sent = 0
    for note in pending:
        subject, body = notification_mail(note)
        try:
            send_mail([note.user.email], subject, body)
        except MailError:
            db.session.rollback()
            break  # the server is unreachable: retry on the next run
        note.email_state = "sent"
        db.session.commit()
        sent += 1
    return sent


def send_daily_digests(now: datetime | None = None) -> int:
    """E-mail each agent who wants it a summary of their inbox, once a day."""
    day = (now or utcnow()).astimezone(queries.PARIS).date()
    users = list(
        db.session.execute(select(User).where(User.active.is_(True)).order_by(User.id)).scalars()
    )
    sent = 0
    for user in users:
        prefs = preferences(user)
        if not prefs.daily_digest or prefs.last_digest_on == day:
            continue
        counts = queries.view_counts(user)
        unread = unread_count(user)
        if not (counts["mine"] or counts["candidate"] or unread):
            continue
        overdue = queries.list_tasks(user, "overdue", limit=10).tasks
        subject, body = digest_mail(user, counts, unread, overdue, day)
        try:
            send_mail([user.email], subject, body)
        except MailError:
            db.session.rollback()
            break
        if db.session.get(NotificationPreference, user.id) is None:
            db.session.add(prefs)
        prefs.last_digest_on = day
        db.session.commit()
        sent += 1
    return sent
