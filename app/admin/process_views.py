"""The circuit studio pages under /admin/processes (analysts and admins).

Drawing, validating, publishing and comparing circuits is open to analysts; watching
single instances, suspending, terminating and migrating them is for admins. The
modeler talks to the JSON endpoints under ``/admin/processes/drafts/…`` (session and
CSRF header, problem+json errors).
"""

from __future__ import annotations

from functools import wraps

from flask import (
    Blueprint,
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from lxml import etree

from app.admin import bpmn_diff
from app.admin import services as studio
from app.admin.models import DraftKind
from app.core.errors import MissiveError, ValidationFailed, problem
from app.core.navigation import register_nav
from app.core.permissions import role_required
from app.engine import operations
from app.engine import services as engine
from app.engine.handlers import handler_names

bp = Blueprint("processes", __name__, url_prefix="/admin/processes")
register_nav(_l("Circuits"), "processes.index", role="analyst", order=80)

STATUS_LABELS = {
    "running": _l("en cours"),
    "suspended": _l("suspendue"),
    "completed": _l("terminée"),
    "terminated": _l("arrêtée"),
}


@bp.before_request
@role_required("analyst")
def analysts_and_admins():
    return None


@bp.app_template_filter("instance_status")
def instance_status_label(value) -> str:
    return str(STATUS_LABELS.get(str(value), value))


def json_errors(view):
    """Answer the modeler's calls with problem+json instead of HTML error pages."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except MissiveError as error:
            return problem(
                error.status, error.detail, kind=error.kind, errors=error.errors, **error.extra
            )

    return wrapped


def _flash_error(error: MissiveError) -> None:
    flash(error.detail, "error")
    for item in error.errors[:20]:
        where = item.get("element_id") or item.get("file") or item.get("field")
        flash(f"{where} : {item['message']}" if where else item["message"], "error")


# --- list, creation, import --------------------------------------------------------------


@bp.get("/")
def index():
    definitions = engine.list_definitions()
    counts = {d.key: operations.instance_counts(d.key) for d in definitions}
    drafts = {(str(d.kind), d.key): d for d in studio.list_drafts()}
    unpublished = [
        d
        for (kind, key), d in drafts.items()
        if kind == "bpmn" and key not in {x.key for x in definitions}
    ]
    decisions = studio.list_decisions()
    dmn_drafts = [d for (kind, _key), d in drafts.items() if kind == "dmn"]
    return render_template(
        "admin/processes/index.html",
        definitions=definitions,
        counts=counts,
        drafts=drafts,
        unpublished=unpublished,
        decisions=decisions,
        dmn_drafts=dmn_drafts,
    )


@bp.post("/new")
def new():
    try:
        draft = studio.new_circuit(
            request.form.get("key", ""), request.form.get("name", ""), current_user
        )
    except ValidationFailed as error:
        _flash_error(error)
        return redirect(url_for("processes.index"))
    flash(_("Circuit « %(key)s » créé : dessinez-le puis publiez-le.", key=draft.key), "success")
    return redirect(url_for("processes.edit", key=draft.key))


def _upload() -> tuple[str, bytes]:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationFailed(
            _("Choisissez un fichier."),
            errors=[{"field": "file", "message": _("Ce champ est obligatoire.")}],
        )
    return upload.filename, upload.read()


@bp.post("/import")
def import_diagram():
    try:
        filename, raw = _upload()
        draft = studio.import_diagram(filename, raw, current_user)
    except MissiveError as error:
        _flash_error(error)
        return redirect(url_for("processes.index"))
    flash(
        _(
            "Diagramme « %(file)s » importé dans le brouillon de « %(key)s ».",
            file=draft.filename,
            key=draft.key,
        ),
        "success",
    )
    if draft.kind == DraftKind.DMN:
        return redirect(url_for("processes.edit_decision", key=draft.key))
    return redirect(url_for("processes.edit", key=draft.key))


@bp.post("/packages/import")
def import_package():
    try:
        _filename, raw = _upload()
        result = studio.import_package(raw, current_user)
    except MissiveError as error:
        _flash_error(error)
        return redirect(url_for("processes.index"))
    for item in result["deployed"]:
        kind = _("décision") if item["kind"] == "decision" else _("circuit")
        state = _("nouvelle version") if item["created"] else _("déjà à jour")
        flash(
            _(
                "%(kind)s « %(key)s » : version %(version)s (%(state)s)",
                kind=kind,
                key=item["key"],
                version=item["version"],
                state=state,
            ),
            "success",
        )
    if result["new_forms"]:
        flash(_("Formulaires installés : %(f)s", f=", ".join(result["new_forms"])), "success")
    return redirect(url_for("processes.index"))


# --- modeler pages -----------------------------------------------------------------------


def _modeler_config(draft) -> dict:
    urls = {
        "load": url_for("processes.draft_load", draft_id=draft.id),
        "save": url_for("processes.draft_save", draft_id=draft.id),
        "validate": url_for("processes.draft_validate", draft_id=draft.id),
        "publish": url_for("processes.draft_publish", draft_id=draft.id),
    }
    from app.auth.models import Group
    from app.core.extensions import db

    groups = [
        {"name": g.name, "label": g.label}
        for g in db.session.execute(db.select(Group).order_by(Group.label)).scalars()
    ]
    return {
        "draftId": draft.id,
        "key": draft.key,
        "revision": draft.revision,
        "filename": draft.filename,
        "urls": urls,
        "options": {
            "formKeys": engine.form_registry().keys(),
            "handlers": handler_names(),
            "groups": groups,
        },
    }


@bp.get("/<key>/edit")
def edit(key: str):
    draft = studio.open_draft(key, current_user)
    latest = engine.latest_version(key)
    return render_template(
        "admin/processes/edit.html",
        draft=draft,
        latest=latest,
        config=_modeler_config(draft),
    )


@bp.get("/decisions/<key>/edit")
def edit_decision(key: str):
    draft = studio.open_draft(key, current_user, kind="dmn")
    return render_template(
        "admin/processes/edit_decision.html", draft=draft, config=_modeler_config(draft)
    )


@bp.get("/drafts/<int:draft_id>")
@json_errors
def draft_load(draft_id: int):
    draft = studio.get_draft(draft_id, current_user)
    return jsonify(_draft_json(draft, warnings=studio.draft_warnings(draft)))


def _draft_json(draft, warnings: list | None = None) -> dict:
    return {
        "id": draft.id,
        "key": draft.key,
        "kind": str(draft.kind),
        "revision": draft.revision,
        "source": draft.source,
        "problems": draft.problems or [],
        "warnings": warnings or [],
        "base_version": draft.base_version,
        "updated_at": draft.updated_at.isoformat(),
        "updated_by": draft.updated_by.name if draft.updated_by else None,
    }


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed(
            _("Un objet JSON est attendu."),
            errors=[{"field": "body", "message": _("Corps JSON invalide.")}],
        )
    return body


def _revision(body: dict) -> int | None:
    value = body.get("revision")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationFailed(
            _("Révision invalide."),
            errors=[{"field": "revision", "message": _("Un entier est attendu.")}],
        )
    return value


@bp.put("/drafts/<int:draft_id>")
@json_errors
def draft_save(draft_id: int):
    body = _body()
    revision = _revision(body)
    if revision is None or not isinstance(body.get("source"), str):
        raise ValidationFailed(
            _("Le brouillon n'a pas été enregistré."),
            errors=[{"field": "source", "message": _("« source » et « revision » sont requis.")}],
        )
    draft, warnings = studio.save_draft(draft_id, body["source"], revision, current_user)
    payload = _draft_json(draft, warnings=warnings)
    payload.pop("source")
    return jsonify(payload)


@bp.post("/drafts/<int:draft_id>/validate")
@json_errors
def draft_validate(draft_id: int):
    body = request.get_json(silent=True) or {}
    return jsonify(studio.validate_draft(draft_id, current_user, _revision(body)))


@bp.post("/drafts/<int:draft_id>/publish")
@json_errors
def draft_publish(draft_id: int):
    body = _body()
    tag = body.get("version_tag")
    if tag is not None and not isinstance(tag, str):
        raise ValidationFailed(
            _("Étiquette invalide."),
            errors=[{"field": "version_tag", "message": _("Texte attendu.")}],
        )
    result = studio.publish_draft(draft_id, current_user, _revision(body), tag)
    return jsonify(result), (201 if result["created"] else 200)


@bp.post("/drafts/<int:draft_id>/discard")
def draft_discard(draft_id: int):
    draft = studio.get_draft(draft_id, current_user)
    try:
        studio.discard_draft(draft_id, current_user)
    except MissiveError as error:
        _flash_error(error)
    else:
        flash(_("Brouillon remis sur la dernière version publiée."), "success")
    if draft.kind == DraftKind.DMN:
        return redirect(url_for("processes.edit_decision", key=draft.key))
    return redirect(url_for("processes.edit", key=draft.key))


@bp.get("/drafts/<int:draft_id>/download")
def draft_download(draft_id: int):
    draft = studio.get_draft(draft_id, current_user)
    return _xml_attachment(draft.source, f"{draft.key}-brouillon.{draft.kind}")


# --- versions ----------------------------------------------------------------------------


def _xml_attachment(text: str, filename: str) -> Response:
    return Response(
        text,
        mimetype="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/<key>/versions/<int:version>/download")
def download(key: str, version: int):
    row = studio.get_version(key, version)
    return _xml_attachment(row.source, f"{key}-v{version}.bpmn")


@bp.get("/decisions/<key>/versions/<int:version>/download")
def download_decision(key: str, version: int):
    row = studio.get_decision_version(key, version)
    return _xml_attachment(row.source, f"{key}-v{version}.dmn")


@bp.get("/<key>/package")
def export_package(key: str):
    filename, data = studio.export_package(key, request.args.get("version", type=int), current_user)
    return Response(
        data,
        mimetype="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.post("/<key>/activate")
def activate(key: str):
    active = request.form.get("active") == "1"
    engine.set_definition_active(key, active, current_user)
    flash(
        _("Circuit activé : de nouvelles instances peuvent démarrer.")
        if active
        else _("Circuit désactivé : aucune nouvelle instance ; celles en cours continuent."),
        "success",
    )
    return redirect(url_for("processes.index"))


@bp.post("/<key>/versions/<int:version>/rollback")
def rollback(key: str, version: int):
    try:
        result = studio.rollback(key, version, current_user)
    except MissiveError as error:
        _flash_error(error)
    else:
        flash(
            _(
                "La version %(old)s est republiée comme version %(new)s.",
                old=result["from_version"],
                new=result["version"],
            ),
            "success",
        )
    return redirect(url_for("processes.index"))


@bp.get("/<key>/diff")
def diff(key: str):
    definition = engine.get_definition(key)
    numbers = [v.version for v in definition.versions]
    has_draft = studio.find_draft("bpmn", key) is not None
    default_new = numbers[-1] if numbers else "draft"
    default_old = numbers[-2] if len(numbers) > 1 else (numbers[0] if numbers else "draft")
    old = request.args.get("from") or str(default_old)
    new = request.args.get("to") or str(default_new)
    for value in (old, new):
        if value != "draft" and not value.isdigit():
            raise ValidationFailed(
                _("Version invalide."), errors=[{"field": "from", "message": value}]
            )
    result = studio.compare(key, old, new, current_user)
    return render_template(
        "admin/processes/diff.html",
        definition=definition,
        numbers=numbers,
        has_draft=has_draft,
        old=old,
        new=new,
        diff=result["diff"],
        config=result,
    )


# --- operations --------------------------------------------------------------------------


def _flow_ids(source: str, pairs: list[tuple[str, str]]) -> list[str]:
    """Sequence flows of a diagram that join the given (source, target) element pairs."""
    wanted = set(pairs)
    root = bpmn_diff.parse(source)
    return [
        flow.get("id")
        for flow in root.iter("{" + bpmn_diff.BPMN_NS + "}sequenceFlow")
        if (flow.get("sourceRef"), flow.get("targetRef")) in wanted
    ]


def _element_names(source: str) -> dict[str, str]:
    root = bpmn_diff.parse(source)
    return {
        node.get("id"): node.get("name") or node.get("id")
        for node in root.iter()
        if isinstance(node.tag, str)
        and node.get("id")
        and etree.QName(node).namespace == bpmn_diff.BPMN_NS
    }


@bp.get("/<key>/operations")
def operations_page(key: str):
    definition = engine.get_definition(key)
    numbers = [v.version for v in definition.versions]
    chosen = request.args.get("version", type=int)
    shown = studio.get_version(key, chosen or numbers[-1])
    loads = operations.waiting_by_element(key, chosen)
    names = _element_names(shown.source)
    instances = engine.list_instances(process_key=key, limit=200)
    incidents = [i for i in engine.list_incidents() if i.instance.process_key == key]
    candidates = operations.migration_candidates(key, numbers[-1]) if current_user.is_admin else []
    return render_template(
        "admin/processes/operations.html",
        definition=definition,
        numbers=numbers,
        chosen=chosen,
        shown=shown,
        loads=sorted(loads.values(), key=lambda load: -load.waiting),
        names=names,
        instances=instances,
        incidents=incidents,
        candidates=candidates,
        config={"source": shown.source, "loads": {k: v.as_dict() for k, v in loads.items()}},
    )


@bp.get("/instances/<int:instance_id>")
@role_required("admin")
def instance(instance_id: int):
    row = engine.get_instance(instance_id, current_user)
    path = operations.instance_path(row)
    incidents = [i for i in engine.list_incidents(open_only=False) if i.instance_id == row.id]
    numbers = [v.version for v in row.version.definition.versions]
    return render_template(
        "admin/processes/instance.html",
        instance=row,
        tasks=engine.instance_tasks(row),
        history=engine.instance_history(row),
        incidents=incidents,
        newer=[n for n in numbers if n > row.version.version],
        names=_element_names(row.version.source),
        config={
            "source": row.version.source,
            "path": path.as_dict(),
            "flow_ids": _flow_ids(row.version.source, path.flows),
            "incident_elements": [
                i.element_id for i in incidents if i.resolved_at is None and i.element_id
            ],
        },
    )


def _instance_action(instance_id: int, action):
    try:
        action()
    except MissiveError as error:
        _flash_error(error)
    return redirect(url_for("processes.instance", instance_id=instance_id))


@bp.post("/instances/<int:instance_id>/suspend")
@role_required("admin")
def suspend(instance_id: int):
    def act():
        engine.suspend_instance(instance_id, current_user)
        flash(_("Instance suspendue."), "success")

    return _instance_action(instance_id, act)


@bp.post("/instances/<int:instance_id>/resume")
@role_required("admin")
def resume(instance_id: int):
    def act():
        engine.resume_instance(instance_id, current_user)
        flash(_("Instance reprise."), "success")

    return _instance_action(instance_id, act)


@bp.post("/instances/<int:instance_id>/terminate")
@role_required("admin")
def terminate(instance_id: int):
    def act():
        reason = (request.form.get("reason") or "").strip()
        if not reason:
            raise ValidationFailed(
                _("Indiquez le motif de l'arrêt."),
                errors=[{"field": "reason", "message": _("Motif requis.")}],
            )
        engine.terminate_instance(instance_id, current_user, reason[:500])
        flash(_("Instance arrêtée."), "success")

    return _instance_action(instance_id, act)


@bp.post("/instances/<int:instance_id>/migrate")
@role_required("admin")
def migrate_instance(instance_id: int):
    to_version = request.form.get("to_version", type=int)
    dry_run = request.form.get("dry_run") == "1"
    if not to_version:
        flash(_("Choisissez la version cible."), "error")
        return redirect(url_for("processes.instance", instance_id=instance_id))
    report = operations.migrate_instance(instance_id, to_version, current_user, dry_run=dry_run)
    _flash_report(report)
    return redirect(url_for("processes.instance", instance_id=instance_id))


def _flash_report(report: operations.MigrationReport) -> None:
    if report.status == "possible":
        flash(
            _(
                "Essai : l'instance %(id)s peut passer en version %(v)s (étapes reprises : "
                "%(reset)s).",
                id=report.instance_id,
                v=report.to_version,
                reset=", ".join(report.reset_elements) or "—",
            ),
            "success",
        )
    elif report.status == "migrated":
        flash(
            _(
                "Instance %(id)s migrée en version %(v)s.",
                id=report.instance_id,
                v=report.to_version,
            ),
            "success",
        )
    else:
        flash(_("Migration refusée pour l'instance %(id)s :", id=report.instance_id), "error")
        for reason in report.reasons:
            flash(reason, "error")


@bp.post("/<key>/migrate")
@role_required("admin")
def migrate_batch(key: str):
    to_version = request.form.get("to_version", type=int)
    dry_run = request.form.get("dry_run") == "1"
    ids = [int(i) for i in request.form.getlist("instance_ids") if i.isdigit()]
    if not to_version:
        flash(_("Choisissez la version cible."), "error")
        return redirect(url_for("processes.operations_page", key=key))
    try:
        reports = operations.migrate_instances(
            key, to_version, current_user, instance_ids=ids, dry_run=dry_run
        )
    except MissiveError as error:
        _flash_error(error)
        return redirect(url_for("processes.operations_page", key=key))
    return render_template(
        "admin/processes/migration_report.html",
        key=key,
        to_version=to_version,
        dry_run=dry_run,
        reports=reports,
    )


@bp.get("/incidents")
def incidents():
    return render_template(
        "admin/processes/incidents.html", incidents=engine.list_incidents(open_only=False)[:200]
    )


@bp.post("/incidents/<int:incident_id>/retry")
def retry_incident(incident_id: int):
    try:
        incident = engine.retry_incident(incident_id, current_user)
    except MissiveError as error:
        _flash_error(error)
    else:
        if incident.resolved_at:
            flash(_("Incident résolu."), "success")
        else:
            flash(
                _("Nouvelle tentative faite : l'incident reste ouvert (voir le message)."), "error"
            )
    target = request.form.get("next") or ""
    if not target.startswith("/admin/processes/") or target.startswith("//"):
        target = url_for("processes.incidents")
    return redirect(target)


@bp.get("/log")
def log():
    before = request.args.get("before", type=int)
    events = studio.studio_log(current_user, before=before, limit=50)
    from app.auth.models import User
    from app.core.extensions import db

    actor_ids = {e.actor_id for e in events if e.actor_id}
    actors = (
        {
            u.id: u
            for u in db.session.execute(db.select(User).where(User.id.in_(actor_ids))).scalars()
        }
        if actor_ids
        else {}
    )
    return render_template(
        "admin/processes/log.html",
        events=events,
        actors=actors,
        next_before=events[-1].id if len(events) == 50 else None,
    )
