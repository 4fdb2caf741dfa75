"""The agent's inbox pages: the task list (views, filters, columns, bulk actions), the
task page (form, documents, history, circuit, comments), absences and notifications."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_required
from sqlalchemy import select

from app.auth.models import Group, User
from app.core.errors import MissiveError, ValidationFailed
from app.core.extensions import db
from app.core.jsonforms import errors_by_field, form_fields, parse_submission
from app.core.navigation import register_nav
from app.core.pagination import parse_limit
from app.core.permissions import can
from app.documents import services as documents
from app.documents.api import INLINE_TYPES
from app.engine import services as engine
from app.engine.models import HumanTask, ProcessDefinition, TaskStatus
from app.engine.permissions import acts_for, principals
from app.inbox import queries, services

bp = Blueprint("inbox", __name__)

register_nav(
    _l("Notifications"),
    "inbox.notifications",
    order=80,
    badge=lambda user: services.unread_count(user),
)

HISTORY_LABELS = {
    "instance.start": _l("Dossier ouvert"),
    "task.claim": _l("Tâche prise"),
    "task.unclaim": _l("Tâche rendue à sa corbeille"),
    "task.assign": _l("Tâche réattribuée"),
    "task.complete": _l("Étape terminée"),
    "task.complete_on_behalf": _l("Étape terminée pour le compte d'un agent absent"),
    "task.delegate": _l("Tâche déléguée"),
    "task.resolve": _l("Tâche rendue par le délégataire"),
    "task.comment": _l("Commentaire"),
    "task.follow_up": _l("Date de relance"),
    "task.priority": _l("Priorité modifiée"),
    "timer.fire": _l("Échéance atteinte"),
    "message.receive": _l("Message reçu"),
    "job.done": _l("Traitement automatique"),
    "incident.open": _l("Incident"),
    "instance.suspend": _l("Dossier suspendu"),
    "instance.resume": _l("Dossier repris"),
    "instance.terminate": _l("Dossier arrêté"),
}
PRIORITY_LEVELS = [(20, _l("Basse")), (50, _l("Normale")), (70, _l("Haute")), (90, _l("Urgente"))]


def _back(default: str | None = None):
    target = request.form.get("next") or default or url_for("inbox.index")
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("inbox.index")
    return redirect(target)


def _flash_error(error: MissiveError) -> None:
    details = " ".join(e["message"] for e in error.errors) if error.errors else ""
    flash(f"{error.detail} {details}".strip(), "error")


# --- the list ---------------------------------------------------------------------------------


def _list_params() -> tuple[str, dict, str | None, int | None]:
    args = request.args
    params = {k: args.get(k) for k in queries.FILTER_KEYS if args.get(k)}
    view = args.get("vue") or "mine"
    sort = args.get("tri") or None
    saved_id = args.get("filtre", type=int)
    if saved_id:
        saved = services.get_filter(saved_id, current_user)
        params = {**saved.params, **params}
        view = args.get("vue") or saved.view
        sort = sort or saved.params.get("sort")
    if view not in queries.VIEWS or (view == "all" and not current_user.is_admin):
        abort(404)
    return view, params, sort, saved_id


@bp.get("/")
@login_required
def index():
    view, params, sort, saved_id = _list_params()
    columns, default_sort = services.view_settings(current_user, view)
    sort = sort or default_sort
    errors: dict[str, list[str]] = {}
    try:
        filters = queries.parse_filters(params, current_user)
        page = queries.list_tasks(
            current_user,
            view,
            filters=filters,
            sort=sort,
            cursor=request.args.get("apres") or None,
            limit=parse_limit(request.args.get("limit")),
        )
    except ValidationFailed as error:
        errors = errors_by_field(error.errors)
        page = queries.list_tasks(current_user, view, sort=queries.DEFAULT_SORT.get(view, "due"))
    rows = []
    for task in page.tasks:
        absent_id = queries.on_behalf_of(task, page.viewer)
        rows.append(
            {
                "task": task,
                "cells": [queries.column_value(task, c) for c in columns],
                "overdue": queries.is_overdue(task, page.viewer.now),
                "on_behalf": task.assignee if absent_id else None,
                "claimable": queries.may_claim(task, page.viewer),
                "held": task.status == TaskStatus.OPEN and task.assignee_id in page.viewer.ids,
            }
        )
    query_args = {k: v for k, v in request.args.items() if k != "apres"}
    return render_template(
        "inbox/index.html",
        view=view,
        views=queries.VIEW_LABELS,
        counts=queries.view_counts(current_user),
        rows=rows,
        columns=columns,
        column_labels=queries.COLUMNS,
        sort=sort,
        sorts=queries.SORTS,
        params=params,
        errors=errors,
        next_url=url_for("inbox.index", **query_args, apres=page.next_cursor)
        if page.next_cursor
        else None,
        first_url=url_for("inbox.index", **query_args) if request.args.get("apres") else None,
        saved_filters=services.visible_filters(current_user),
        saved_id=saved_id,
        processes=db.session.execute(
            select(ProcessDefinition.key, ProcessDefinition.name).order_by(ProcessDefinition.name)
        ).all(),
        groups=db.session.execute(select(Group.name, Group.label).order_by(Group.label)).all(),
        visibilities=services.VISIBILITIES,
        priority_levels=PRIORITY_LEVELS,
        absences=services.active_absences_for(current_user),
        bulk_actions=services.BULK_ACTIONS,
    )


@bp.post("/vues/<view>/reglages")
@login_required
def save_view_settings(view):
    try:
        services.set_view_settings(
            current_user, view, request.form.getlist("columns"), request.form.get("sort") or None
        )
        flash(_("Colonnes et tri enregistrés pour cette vue."), "success")
    except ValidationFailed as error:
        _flash_error(error)
    return redirect(url_for("inbox.index", vue=view))


@bp.post("/filtres")
@login_required
def save_filter():
    form = request.form
    params = {k: form.get(k) for k in queries.FILTER_KEYS if form.get(k)}
    if form.get("sort"):
        params["sort"] = form.get("sort")
    try:
        saved = services.save_filter(
            current_user,
            form.get("name", ""),
            form.get("view", "mine"),
            params,
            form.get("visibility", "private"),
            form.get("group") or None,
        )
        flash(_("Filtre « %(name)s » enregistré.", name=saved.name), "success")
        return redirect(url_for("inbox.index", filtre=saved.id))
    except ValidationFailed as error:
        _flash_error(error)
        return redirect(url_for("inbox.index", vue=form.get("view", "mine"), **params))


@bp.post("/filtres/<int:filter_id>/supprimer")
@login_required
def delete_filter(filter_id):
    services.delete_filter(filter_id, current_user)
    flash(_("Filtre supprimé."), "success")
    return redirect(url_for("inbox.index"))


@bp.post("/taches/lot")
@login_required
def bulk():
    form = request.form
    ids = [int(i) for i in form.getlist("task_ids") if i.isdigit()]
    action = form.get("action", "")
    try:
        results = services.bulk(
            action,
            ids,
            current_user,
            assignee=form.get("assignee"),
            reason=form.get("reason"),
            data={"decision": form["decision"]} if form.get("decision") else {},
        )
    except ValidationFailed as error:
        _flash_error(error)
        return _back()
    done = [r for r in results if r.ok]
    if done:
        # French keeps its « (s) » wording in both forms; English gets a real plural.
        message = ngettext(
            "%(num)d tâche(s) traitée(s).", "%(num)d tâche(s) traitée(s).", len(done)
        )
        flash(message, "success")
    for result in results:
        if not result.ok:
            flash(_("Tâche n° %(id)s : %(detail)s", id=result.id, detail=result.detail), "error")
    return _back()


# --- one task ---------------------------------------------------------------------------------


def _task_page(task: HumanTask, *, values=None, errors=None, status: int = 200):
    schema = engine.task_form(task)
    is_open = task.status == TaskStatus.OPEN
    holder = is_open and (task.assignee_id in principals(current_user) or current_user.is_admin)
    may_take = is_open and task.assignee_id is None and can(current_user, "claim", "task", task)
    draft = services.draft_for(task, current_user)
    if values is None:
        case_data = engine.task_data(task) if is_open else {}
        values = {**case_data, **(draft.data if draft else {})}
    absent_id = acts_for(current_user, task) if is_open else None
    docs = services.task_documents(task, current_user)
    history = services.case_history(task)
    candidates = services.reassign_candidates(task) if is_open else []
    return (
        render_template(
            "inbox/task.html",
            task=task,
            is_open=is_open,
            holder=holder,
            may_take=may_take,
            delegated_to_me=is_open
            and task.delegation_state == "pending"
            and task.assignee_id in principals(current_user),
            fields=form_fields(schema) if schema else [],
            values=values,
            errors=errors or {},
            draft=draft,
            on_behalf=db.session.get(User, absent_id) if absent_id else None,
            documents=docs,
            history=history,
            history_labels={
                **{k: _(v) for k, v in services.history_labels().items()},
                **HISTORY_LABELS,
            },
            comments=services.task_comments(task),
            following=services.is_following(current_user, task.instance_id),
            overdue=queries.is_overdue(task, queries.Viewer.of(current_user).now),
            candidates=candidates,
            priority_levels=PRIORITY_LEVELS,
            metadata_labels={k: queries.COLUMNS[k] for k in queries.METADATA_COLUMNS},
            metadata_values={
                k: queries.column_value(task, k)
                for k in queries.METADATA_COLUMNS
                if queries.column_value(task, k) is not None
            },
        ),
        status,
    )


@bp.get("/taches/<int:task_id>")
@login_required
def task(task_id):
    return _task_page(engine.get_task(task_id, current_user))


@bp.post("/taches/<int:task_id>/terminer")
@login_required
def complete(task_id):
    task = engine.get_task(task_id, current_user)
    schema = engine.task_form(task) or {}
    data, _uploads = parse_submission(schema, request.form, request.files)
    if request.form.get("save_draft"):
        try:
            services.save_draft(task_id, current_user, data)
            flash(_("Brouillon enregistré."), "success")
        except MissiveError as error:
            _flash_error(error)
        return redirect(url_for("inbox.task", task_id=task_id))
    try:
        services.complete(task_id, data, current_user)
    except ValidationFailed as error:
        db.session.rollback()
        task = engine.get_task(task_id, current_user)
        flash(_("Le formulaire contient des erreurs : corrigez les champs signalés."), "error")
        return _task_page(task, values=data, errors=errors_by_field(error.errors), status=422)
    except MissiveError as error:
        db.session.rollback()
        _flash_error(error)
        return redirect(url_for("inbox.task", task_id=task_id))
    flash(_("Tâche terminée."), "success")
    return redirect(url_for("inbox.index"))


def _act(task_id: int, run, success):
    try:
        run()
        flash(str(success), "success")
    except MissiveError as error:
        db.session.rollback()
        _flash_error(error)
    return _back(url_for("inbox.task", task_id=task_id))


@bp.post("/taches/<int:task_id>/prendre")
@login_required
def claim(task_id):
    return _act(task_id, lambda: services.claim(task_id, current_user), _l("Tâche prise."))


@bp.post("/taches/<int:task_id>/rendre")
@login_required
def unclaim(task_id):
    return _act(
        task_id, lambda: services.unclaim(task_id, current_user), _l("Tâche rendue à sa corbeille.")
    )


@bp.post("/taches/<int:task_id>/reattribuer")
@login_required
def reassign(task_id):
    form = request.form
    return _act(
        task_id,
        lambda: services.reassign(
            task_id, form.get("assignee", ""), current_user, form.get("reason", "")
        ),
        _l("Tâche réattribuée."),
    )


@bp.post("/taches/<int:task_id>/deleguer")
@login_required
def delegate(task_id):
    form = request.form
    return _act(
        task_id,
        lambda: services.delegate(
            task_id, form.get("delegate", ""), current_user, form.get("reason", "")
        ),
        _l("Tâche déléguée : elle vous reviendra quand votre collègue l'aura rendue."),
    )


@bp.post("/taches/<int:task_id>/rendre-au-proprietaire")
@login_required
def resolve(task_id):
    task = engine.get_task(task_id, current_user)
    schema = engine.task_form(task) or {}
    data, _errors = (
        parse_submission(schema, request.form) if request.form.get("with_form") else ({}, {})
    )
    return _act(
        task_id,
        lambda: services.resolve(task_id, current_user, request.form.get("comment", ""), data),
        _l("Tâche rendue à son propriétaire."),
    )


@bp.post("/taches/<int:task_id>/relance")
@login_required
def follow_up(task_id):
    raw = request.form.get("date", "")

    def run():
        try:
            until = date.fromisoformat(raw) if raw else None
        except ValueError as exc:
            raise ValidationFailed(
                "Date invalide.",
                errors=[{"field": "date", "message": "Date JJ/MM/AAAA attendue."}],
            ) from exc
        services.snooze(task_id, current_user, until)

    return _act(task_id, run, _l("Date de relance enregistrée.") if raw else _l("Relance retirée."))


@bp.post("/taches/<int:task_id>/priorite")
@login_required
def priority(task_id):
    raw = request.form.get("priority", "")
    value = int(raw) if raw.isdigit() else -1
    return _act(
        task_id,
        lambda: services.set_priority(task_id, current_user, value),
        _l("Priorité modifiée."),
    )


@bp.post("/taches/<int:task_id>/commentaires")
@login_required
def comment(task_id):
    return _act(
        task_id,
        lambda: services.add_comment(task_id, current_user, request.form.get("body", "")),
        _l("Commentaire publié."),
    )


@bp.post("/taches/<int:task_id>/suivre")
@login_required
def follow(task_id):
    task = engine.get_task(task_id, current_user)
    wanted = request.form.get("follow") == "1"
    return _act(
        task_id,
        lambda: services.follow_case(task.instance_id, current_user, wanted),
        _l("Dossier suivi.") if wanted else _l("Vous ne suivez plus ce dossier."),
    )


@bp.get("/taches/<int:task_id>/circuit.bpmn")
@login_required
def diagram(task_id):
    task = engine.get_task(task_id, current_user)
    return Response(task.instance.version.source, mimetype="application/xml")


@bp.get("/taches/<int:task_id>/documents/<int:document_id>")
@login_required
def document(task_id, document_id):
    task = engine.get_task(task_id, current_user)
    doc = services.task_document(task, current_user, document_id)
    quarantined = bool((doc.flags or {}).get("quarantined"))
    inline = doc.mime_type in INLINE_TYPES and not quarantined
    response = Response(
        documents.content(doc), mimetype=doc.mime_type if inline else "application/octet-stream"
    )
    disposition = "inline" if inline else "attachment"
    response.headers["Content-Disposition"] = (
        f"{disposition}; filename*=UTF-8''{quote(doc.filename)}"
    )
    # No sandbox here: Chromium's PDF viewer does not run in a sandboxed frame.
    response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'self'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


# --- absences and notifications ----------------------------------------------------------------


@bp.route("/absences", methods=["GET", "POST"])
@login_required
def absences():
    errors: dict = {}
    form = request.form
    if request.method == "POST":
        try:
            starts = date.fromisoformat(form["starts_on"]) if form.get("starts_on") else None
            ends = date.fromisoformat(form["ends_on"]) if form.get("ends_on") else None
            services.declare_absence(
                current_user,
                form.get("substitute", ""),
                starts,
                ends,
                current_user,
                form.get("reason", ""),
            )
            flash(_("Absence enregistrée : votre remplaçant voit vos tâches."), "success")
            return redirect(url_for("inbox.absences"))
        except ValueError:
            errors = {"starts_on": ["Date invalide."]}
        except ValidationFailed as error:
            errors = errors_by_field(error.errors)
    return render_template(
        "inbox/absences.html",
        absences=services.absences_of(current_user),
        errors=errors,
        values=form,
    ), (422 if errors else 200)


@bp.post("/absences/<int:absence_id>/retirer")
@login_required
def cancel_absence(absence_id):
    services.cancel_absence(absence_id, current_user)
    flash(_("Absence retirée."), "success")
    return redirect(url_for("inbox.absences"))


@bp.get("/notifications")
@login_required
def notifications():
    return render_template("inbox/notifications.html", notes=services.notifications(current_user))


@bp.post("/notifications/lues")
@login_required
def read_notifications():
    ids = [int(i) for i in request.form.getlist("ids") if i.isdigit()] or None
    services.mark_read(current_user, ids)
    return _back(url_for("inbox.notifications"))


@bp.route("/notifications/preferences", methods=["GET", "POST"])
@login_required
def preferences():
    if request.method == "POST":
        services.set_preferences(
            current_user,
            email_on_assignment="email_on_assignment" in request.form,
            email_on_mention="email_on_mention" in request.form,
            daily_digest="daily_digest" in request.form,
            locale=request.form.get("locale") or None,
        )
        session.pop("lang", None)  # the account's language now wins over the footer link
        flash(_("Préférences enregistrées."), "success")
        return redirect(url_for("inbox.preferences"))
    return render_template("inbox/preferences.html", prefs=services.preferences(current_user))
