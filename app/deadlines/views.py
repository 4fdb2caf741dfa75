"""Pages: the deadlines of a case (clocks, missing documents, acknowledgement), the paper
acknowledgements to print, the admin page (rules, closures, letterhead) and the public
status page reached by the QR code."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from app.core.db import utcnow
from app.core.errors import MissiveError, ValidationFailed
from app.core.navigation import register_nav
from app.core.permissions import can, require, role_required
from app.correspondence import services as intake
from app.correspondence.models import CHANNEL_LABELS, Channel
from app.deadlines import services
from app.deadlines.calendar import local_day, working_calendar
from app.deadlines.models import (
    ACK_STATUS_LABELS,
    IMPLICIT_DECISION_LABELS,
    ImplicitDecision,
)
from app.deadlines.receipts import french_date
from app.documents.services import content, get_document

bp = Blueprint("deadlines", __name__, template_folder="templates")
register_nav(_l("Accusés de réception"), "deadlines.acknowledgements", order=25)
bp.add_app_template_filter(local_day, "local_day")


@bp.app_context_processor
def labels():
    return {
        "ACK_STATUS_LABELS": ACK_STATUS_LABELS,
        "IMPLICIT_DECISION_LABELS": IMPLICIT_DECISION_LABELS,
        "french_date": french_date,
    }


def _pdf(document, download_name: str | None = None) -> Response:
    response = Response(content(document), mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f"inline; filename*=UTF-8''{quote(download_name or document.filename)}"
    )
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _parse_day(raw: str | None, field: str) -> date:
    try:
        return date.fromisoformat(raw or "")
    except ValueError as exc:
        raise ValidationFailed(
            _("Date invalide."), errors=[{"field": field, "message": _("Date invalide.")}]
        ) from exc


# --- a case ---------------------------------------------------------------------------------


@bp.get("/correspondences/<int:case_id>/delais")
@login_required
def case(case_id: int):
    item = intake.get_case(case_id, current_user)
    clock = services.clock_of(item)
    calendar = working_calendar()
    today = local_day(utcnow())
    due = local_day(item.due_at)
    remaining = calendar.working_days_between(today, due) if due >= today else None
    late = -calendar.working_days_between(due, today) if due < today else None
    return render_template(
        "deadlines/case.html",
        case=item,
        clock=clock,
        due=due,
        remaining=remaining,
        late=late,
        today=today,
        can_manage=can(current_user, "manage", "correspondence", item),
        D=ImplicitDecision,
        tracking_url=services.tracking_url(item),
        tracking_code=services.format_code(clock.tracking_code),
    )


@bp.post("/correspondences/<int:case_id>/delais/accuse")
@login_required
def issue(case_id: int):
    item = intake.get_case(case_id, current_user)
    try:
        services.acknowledge_case(item, current_user)
    except MissiveError as error:
        flash(error.detail, "error")
    else:
        flash(_("Accusé de réception établi."), "success")
    return redirect(url_for("deadlines.case", case_id=case_id))


@bp.post("/correspondences/<int:case_id>/delais/pieces")
@login_required
def request_documents(case_id: int):
    item = intake.get_case(case_id, current_user)
    items = (request.form.get("missing_documents") or "").splitlines()
    try:
        due_on = _parse_day(request.form.get("documents_due_on"), "documents_due_on")
        services.request_missing_documents(item, items, due_on, current_user)
    except MissiveError as error:
        messages = [e["message"] for e in getattr(error, "errors", None) or []]
        flash(" ".join([error.detail, *messages]), "error")
    else:
        flash(_("Pièces demandées : le délai légal est suspendu."), "success")
    return redirect(url_for("deadlines.case", case_id=case_id))


@bp.post("/correspondences/<int:case_id>/delais/pieces-recues")
@login_required
def documents_received(case_id: int):
    item = intake.get_case(case_id, current_user)
    try:
        services.record_documents_received(item, current_user)
    except MissiveError as error:
        flash(error.detail, "error")
    else:
        flash(_("Pièces reçues : le délai légal reprend."), "success")
    return redirect(url_for("deadlines.case", case_id=case_id))


# --- paper acknowledgements (mail office) ----------------------------------------------------


@bp.get("/accuses-reception")
@login_required
def acknowledgements():
    require(current_user, "print", "acknowledgement")
    return render_template(
        "deadlines/print.html",
        waiting=services.pending_paper_acknowledgements(current_user),
        batches=services.print_batches(),
    )


@bp.post("/accuses-reception/imprimer")
@login_required
def print_batch():
    batch = services.print_acknowledgements(current_user)
    if batch is None:
        flash(_("Aucun accusé de réception papier n'attend l'impression."), "info")
        return redirect(url_for("deadlines.acknowledgements"))
    flash(_("Lot prêt : %(n)s", n=batch.description), "success")
    return redirect(url_for("deadlines.batch", document_id=batch.id))


@bp.get("/accuses-reception/lots/<int:document_id>")
@login_required
def batch(document_id: int):
    document = get_document(document_id, current_user)
    if document.kind != services.BATCH_KIND:
        abort(404)
    return _pdf(document)


# --- administration ---------------------------------------------------------------------------


def _admin_page(status: int = 200, errors: dict | None = None):
    from app.correspondence.services import list_case_types

    return (
        render_template(
            "deadlines/admin.html",
            rules=services.list_rules(),
            closures=services.list_closures(),
            settings=services.receipt_settings(),
            case_types=list_case_types(),
            channels=[(c.value, CHANNEL_LABELS[c]) for c in Channel],
            decisions=IMPLICIT_DECISION_LABELS,
            errors=errors or {},
            form=request.form,
        ),
        status,
    )


@bp.get("/admin/delais")
@login_required
@role_required("admin")
def admin():
    return _admin_page()


def _form_errors(error: MissiveError) -> dict:
    flash(error.detail, "error")
    return {e.get("field"): e["message"] for e in getattr(error, "errors", None) or []}


@bp.post("/admin/delais/regles")
@login_required
@role_required("admin")
def save_rule():
    form = request.form
    try:
        services.save_rule(
            current_user,
            type_code=form.get("type_code") or None,
            channel=form.get("channel") or None,
            target_days=form.get("target_days"),
            ack_days=form.get("ack_days"),
            acknowledge={"yes": True, "no": False}.get(form.get("acknowledge") or ""),
            reminder_days=form.get("reminder_days"),
            silence_months=form.get("silence_months"),
            implicit_decision=form.get("implicit_decision") or None,
        )
    except MissiveError as error:
        return _admin_page(422, _form_errors(error))
    flash(_("Règle enregistrée."), "success")
    return redirect(url_for("deadlines.admin"))


@bp.post("/admin/delais/regles/<int:rule_id>/supprimer")
@login_required
@role_required("admin")
def delete_rule(rule_id: int):
    services.delete_rule(rule_id, current_user)
    flash(_("Règle supprimée."), "success")
    return redirect(url_for("deadlines.admin"))


@bp.post("/admin/delais/fermetures")
@login_required
@role_required("admin")
def add_closure():
    try:
        day = _parse_day(request.form.get("day"), "day")
        services.add_closure(day, request.form.get("label") or "", current_user)
    except MissiveError as error:
        return _admin_page(422, _form_errors(error))
    flash(_("Fermeture enregistrée."), "success")
    return redirect(url_for("deadlines.admin"))


@bp.post("/admin/delais/fermetures/<int:closure_id>/supprimer")
@login_required
@role_required("admin")
def remove_closure(closure_id: int):
    services.remove_closure(closure_id, current_user)
    flash(_("Fermeture retirée."), "success")
    return redirect(url_for("deadlines.admin"))


@bp.post("/admin/delais/en-tete")
@login_required
@role_required("admin")
def save_settings():
    services.save_receipt_settings(
        current_user, **{name: request.form.get(name) for name in services.SETTINGS_FIELDS}
    )
    flash(_("En-tête et mentions enregistrés."), "success")
    return redirect(url_for("deadlines.admin"))


# --- public ---------------------------------------------------------------------------------


@bp.get("/suivi")
def track_form():
    chrono = (request.args.get("chrono") or "").strip()
    if chrono:
        return redirect(url_for("deadlines.track", chrono=chrono, code=request.args.get("code")))
    return render_template("deadlines/public_status.html", status=None, chrono=None)


@bp.get("/suivi/<chrono>")
def track(chrono: str):
    status = services.public_status(chrono[:30], (request.args.get("code") or "")[:20])
    response = render_template(
        "deadlines/public_status.html",
        status=status,
        chrono=chrono[:30],
        not_found=status is None,
    )
    return response, (200 if status else 404), {"Cache-Control": "no-store"}
