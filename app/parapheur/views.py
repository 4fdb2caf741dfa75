"""Parapheur pages: folder list, folder page with PDF preview, deposit, batch signing,
delegations, certificates (admins)."""

from __future__ import annotations

from datetime import date, datetime
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from app.auth.services import find_user_by_email, get_user
from app.core.errors import MissiveError, PermissionDenied, ValidationFailed
from app.core.navigation import register_nav
from app.documents import services as documents
from app.engine import services as engine
from app.parapheur import services
from app.parapheur.models import FOLDER_STATUS_LABELS, FOLDER_TYPE_LABELS, FolderStatus
from app.parapheur.services import Upload

bp = Blueprint("parapheur", __name__, url_prefix="/parapheur", template_folder="templates")
register_nav(_l("Parapheur"), "parapheur.index", order=30)

OPENED_KEY = "parapheur_opened"
MAX_REMEMBERED = 300
CIRCUITS = {
    "par_type": (_l("Selon le type et le montant (règles)"), "parapheur_par_type"),
    "adhoc": (_l("Circuit personnalisé (étapes ci-dessous)"), "parapheur_adhoc"),
}
STEP_ROWS = 6


@bp.before_request
@login_required
def signed_in_only():
    return None


@bp.app_template_filter("iso_fr")
def iso_fr(value: str | None) -> str:
    """An ISO 8601 moment (as the API gives them) in the reader's time zone."""
    if not value:
        return ""
    return format_datetime(datetime.fromisoformat(value), "short")


def opened_documents() -> set[int]:
    """Documents this session has displayed (batch signing requires every one)."""
    return {int(i) for i in session.get(OPENED_KEY, [])}


def _remember_opened(document_id: int) -> None:
    opened = [i for i in session.get(OPENED_KEY, []) if i != document_id]
    session[OPENED_KEY] = [*opened, document_id][-MAX_REMEMBERED:]


def _files(name: str) -> list[Upload]:
    return [
        Upload(f.filename or "document.pdf", f.read())
        for f in request.files.getlist(name)
        if f and f.filename
    ]


def _flash_errors(error: MissiveError) -> None:
    flash(error.detail, "error")
    for item in error.errors:
        if item.get("message") and item["message"] != error.detail:
            flash(item["message"], "error")


# --- lists ------------------------------------------------------------------------------------


@bp.get("/")
def index():
    scope = request.args.get("vue", "todo")
    if scope not in ("todo", "mine", "all"):
        scope = "todo"
    status = request.args.get("statut") or None
    type_ = request.args.get("type") or None
    q = (request.args.get("q") or "").strip()[:200] or None
    try:
        folders, cursor = services.list_folders(
            current_user,
            scope=scope,
            status=status if status in FOLDER_STATUS_LABELS else None,
            type=type_ if type_ in FOLDER_TYPE_LABELS else None,
            q=q,
            cursor=request.args.get("curseur") or None,
            limit=50,
        )
    except ValidationFailed:
        folders, cursor = [], None
    return render_template(
        "parapheur/index.html",
        folders=folders,
        next_cursor=cursor,
        scope=scope,
        status=status,
        type=type_,
        q=q or "",
        statuses=FOLDER_STATUS_LABELS,
        types=FOLDER_TYPE_LABELS,
        queue=len(services.signature_queue(current_user)) if scope == "todo" else None,
    )


# --- deposit ----------------------------------------------------------------------------------


@bp.route("/nouveau", methods=["GET", "POST"])
def new():
    values = request.form if request.method == "POST" else {}
    if request.method == "POST":
        mode = values.get("circuit", "par_type")
        steps = []
        for index in range(STEP_ROWS):
            kind = values.get(f"step-{index}-kind")
            person, group = values.get(f"step-{index}-person"), values.get(f"step-{index}-group")
            if kind and (person or group):
                step = {"step": kind}
                step.update({"assignee": person} if person else {"group": group})
                steps.append(step)
        try:
            folder = services.create_folder(
                title=values.get("title", ""),
                type=values.get("type", ""),
                actor=current_user,
                documents=_files("documents"),
                annexes=_files("annexes"),
                circuit=steps if mode == "adhoc" else None,
                amount=values.get("amount") or None,
                seal=values.get("seal") == "1",
            )
        except MissiveError as error:
            _flash_errors(error)
        else:
            flash(_("Parapheur déposé : il part dans son circuit."), "success")
            return redirect(url_for("parapheur.folder", folder_id=folder.id))
    return render_template(
        "parapheur/new.html",
        values=values,
        types=FOLDER_TYPE_LABELS,
        circuits=CIRCUITS,
        rows=range(STEP_ROWS),
        people=services.active_people(),
        groups=services.groups(),
    )


# --- folder page ------------------------------------------------------------------------------


@bp.get("/<int:folder_id>")
def folder(folder_id: int):
    folder = services.get_folder(folder_id, current_user)
    task = services.actionable_task(folder, current_user)
    capacity = None
    if task is not None and task.form_key == "signature":
        try:
            principal, delegation = services.signing_capacity(task, folder, current_user)
            capacity = {"principal": principal, "delegation": delegation}
        except PermissionDenied as error:
            capacity = {"refused": error.detail}
    return render_template(
        "parapheur/folder.html",
        folder=folder,
        task=task,
        capacity=capacity,
        steps=services.folder_steps(folder),
        versions=services.document_versions(folder),
        opened=opened_documents(),
        can_correct=folder.status == FolderStatus.REJECTED and folder.drafter_id == current_user.id,
    )


@bp.post("/<int:folder_id>/etapes/<int:task_id>")
def act(folder_id: int, task_id: int):
    folder = services.get_folder(folder_id, current_user)
    task = engine.get_task(task_id, current_user, "complete")
    if task.instance_id != folder.process_instance_id:
        raise PermissionDenied(_("Cette étape n'appartient pas à ce parapheur."))
    data = {"decision": request.form.get("decision", "")}
    if (request.form.get("comment") or "").strip():
        data["comment"] = request.form["comment"].strip()
    elif data["decision"] == "reject":
        flash(_("Le motif du refus est obligatoire."), "error")
        return redirect(url_for("parapheur.folder", folder_id=folder_id))
    try:
        engine.complete_task(task_id, data, current_user)
    except MissiveError as error:
        _flash_errors(error)
    else:
        messages = {
            "approve": _("Visa enregistré."),
            "sign": _("Document signé."),
            "reject": _("Refus enregistré : le parapheur retourne au rédacteur."),
        }
        flash(messages.get(data["decision"], _("Étape enregistrée.")), "success")
    return redirect(url_for("parapheur.folder", folder_id=folder_id))


@bp.post("/<int:folder_id>/correction")
def resubmit(folder_id: int):
    try:
        services.resubmit_folder(
            folder_id,
            current_user,
            _files("documents"),
            _files("annexes") or None,
            request.form.get("comment"),
        )
    except MissiveError as error:
        _flash_errors(error)
    else:
        flash(_("Version corrigée déposée : le parapheur repart dans son circuit."), "success")
    return redirect(url_for("parapheur.folder", folder_id=folder_id))


@bp.post("/<int:folder_id>/abandon")
def abandon(folder_id: int):
    try:
        services.abandon_folder(folder_id, current_user, request.form.get("comment"))
    except MissiveError as error:
        _flash_errors(error)
    else:
        flash(_("Parapheur abandonné."), "success")
    return redirect(url_for("parapheur.folder", folder_id=folder_id))


@bp.get("/documents/<int:document_id>/apercu")
def preview(document_id: int):
    """The PDF itself, shown in the folder page; remembered as opened for this session."""
    document = documents.get_document(document_id, current_user)
    if document.mime_type != "application/pdf":
        raise ValidationFailed(_("Seul un PDF peut être affiché."))
    _remember_opened(document.id)
    response = Response(documents.content(document), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(document.filename)}"
    # Shown inside Missive's own page only; no sandbox (browsers refuse PDFs in one).
    response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'self'"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/documents/<int:document_id>/validation")
def validation(document_id: int):
    report = services.validation_report(document_id, current_user)
    template = (
        "parapheur/_validation.html"
        if request.headers.get("HX-Request")
        else "parapheur/validation.html"
    )
    return render_template(template, report=report)


# --- batch signing ----------------------------------------------------------------------------


@bp.get("/signature-par-lot")
def batch():
    return render_template(
        "parapheur/batch.html",
        queue=services.signature_queue(current_user),
        opened=opened_documents(),
    )


@bp.post("/signature-par-lot")
def batch_confirm():
    task_ids = [int(i) for i in request.form.getlist("task") if i.isdigit()]
    queue = {task.id: (folder, task) for folder, task in services.signature_queue(current_user)}
    chosen = [queue[i] for i in task_ids if i in queue]
    if not chosen:
        flash(_("Sélectionnez au moins un parapheur à signer."), "error")
        return redirect(url_for("parapheur.batch"))
    if request.form.get("confirm") != "1":
        return render_template(
            "parapheur/batch_confirm.html", chosen=chosen, opened=opened_documents()
        )
    results = services.sign_batch(
        [task.id for _folder, task in chosen], current_user, opened_documents()
    )
    return render_template("parapheur/batch_results.html", results=results)


# --- delegations and certificates -------------------------------------------------------------


@bp.route("/delegations", methods=["GET", "POST"])
def delegations():
    values = request.form if request.method == "POST" else {}
    if request.method == "POST":
        try:
            delegator = current_user
            if current_user.is_admin and values.get("delegator"):
                delegator = get_user(int(values["delegator"]))
            delegate = find_user_by_email(values.get("delegate", ""))
            if delegate is None:
                raise ValidationFailed(
                    _("Choisissez le délégataire."),
                    errors=[{"field": "delegate", "message": _("Agent inconnu.")}],
                )
            services.create_delegation(
                delegator=delegator,
                delegate=delegate,
                actor=current_user,
                document_types=request.form.getlist("document_types"),
                amount_ceiling=values.get("amount_ceiling") or None,
                valid_from=_date(values.get("valid_from"), "valid_from"),
                valid_until=_date(values.get("valid_until"), "valid_until"),
                mention=values.get("mention") or None,
            )
        except MissiveError as error:
            _flash_errors(error)
        else:
            flash(_("Délégation de signature enregistrée."), "success")
            return redirect(url_for("parapheur.delegations"))
    return render_template(
        "parapheur/delegations.html",
        delegations=services.delegations_of(current_user),
        people=services.active_people(),
        types=FOLDER_TYPE_LABELS,
        values=values,
        today=services.today(),
        default_mention=services.DEFAULT_MENTION,
    )


def _date(raw: str | None, field: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationFailed(
            _("Date invalide."), errors=[{"field": field, "message": _("AAAA-MM-JJ attendu.")}]
        ) from exc


@bp.post("/delegations/<int:delegation_id>/revocation")
def revoke(delegation_id: int):
    try:
        services.revoke_delegation(delegation_id, current_user)
    except MissiveError as error:
        _flash_errors(error)
    else:
        flash(_("Délégation révoquée."), "success")
    return redirect(url_for("parapheur.delegations"))


@bp.get("/certificats")
def certificates():
    if not current_user.is_admin:
        raise PermissionDenied(_("Cette page est réservée aux administrateurs."))
    return render_template(
        "parapheur/certificates.html",
        certificates=services.list_certificates(),
        level=services.pades_level(),
    )


@bp.post("/certificats/<int:certificate_id>/retrait")
def withdraw(certificate_id: int):
    services.deactivate_certificate(certificate_id, current_user)
    flash(_("Certificat retiré : il ne peut plus signer."), "success")
    return redirect(url_for("parapheur.certificates"))
