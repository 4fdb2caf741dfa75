"""Pages of the registry: search and list, a case, paper and internal-note registration,
separator sheets, and the public web forms (``/demarches``)."""

from __future__ import annotations

from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from app.auth.models import Group, User
from app.core.errors import Conflict, MissiveError, ValidationFailed
from app.core.extensions import db
from app.core.jsonforms import errors_by_field, form_fields
from app.core.navigation import register_nav
from app.core.permissions import can, require
from app.correspondence import paper, replies, services, webforms
from app.correspondence.api import parse_received_at
from app.correspondence.models import (
    CHANNEL_LABELS,
    CONFIDENTIALITY_LABELS,
    DIRECTION_LABELS,
    DOCUMENT_ROLE_LABELS,
    EVENT_LABELS,
    LINK_LABELS,
    STATUS_LABELS,
    CaseStatus,
    Channel,
    Confidentiality,
    Direction,
    LinkKind,
)
from app.correspondence.permissions import is_mail_office
from app.documents.services import content, get_document

bp = Blueprint("correspondence", __name__, template_folder="templates")
register_nav(_l("Registre"), "correspondence.index", order=20)
RECEIPT_MAX_AGE = 3600
INLINE_TYPES = {"application/pdf", "image/png", "image/jpeg", "text/plain"}


@bp.app_context_processor
def labels():
    return {
        "CHANNEL_LABELS": CHANNEL_LABELS,
        "STATUS_LABELS": STATUS_LABELS,
        "DIRECTION_LABELS": DIRECTION_LABELS,
        "CONFIDENTIALITY_LABELS": CONFIDENTIALITY_LABELS,
        "LINK_LABELS": LINK_LABELS,
        "DOCUMENT_ROLE_LABELS": DOCUMENT_ROLE_LABELS,
        "EVENT_LABELS": EVENT_LABELS,
    }


def _groups() -> list[Group]:
    return list(db.session.execute(select(Group).order_by(Group.label)).scalars())


# --- registry ----------------------------------------------------------------------------


@bp.get("/correspondences")
@login_required
def index():
    q = (request.args.get("q") or "").strip()[:200]
    channel = request.args.get("channel") or None
    status = request.args.get("status") or None
    type_code = request.args.get("type") or None
    if channel not in {c.value for c in Channel} | {None}:
        channel = None
    if status not in {s.value for s in CaseStatus} | {None}:
        status = None
    items, next_cursor = services.search_cases(
        current_user,
        q=q or None,
        channel=channel,
        status=status,
        type_code=type_code,
        cursor=request.args.get("cursor") or None,
        limit=50,
    )
    return render_template(
        "correspondence/index.html",
        items=items,
        next_cursor=next_cursor,
        q=q,
        channel=channel,
        status=status,
        type_code=type_code,
        types=services.list_case_types(),
        can_register_paper=can(current_user, "register", "correspondence", Channel.PAPER),
    )


@bp.get("/correspondences/<int:case_id>")
@login_required
def show(case_id: int):
    from app.mail.services import message_of

    case = services.get_case(case_id, current_user)
    form_key = (case.data or {}).get("form_key")
    schema = webforms.public_forms().get(form_key) if form_key else None
    titles = {
        name: prop.get("title", name)
        for name, prop in ((schema or {}).get("properties") or {}).items()
    }
    return render_template(
        "correspondence/show.html",
        case=case,
        form_titles=titles,
        links=services.links_of(case),
        history=services.case_history(case),
        messages=message_of(case),
        groups=_groups(),
        can_manage=can(current_user, "manage", "correspondence", case),
        can_grant=can(current_user, "grant", "correspondence", case),
        link_kinds=list(LinkKind),
        reply_folder=replies.reply_folder(case),
        answer=replies.answer_of(case),
    )


@bp.get("/correspondences/<int:case_id>/documents/<int:document_id>")
@login_required
def document(case_id: int, document_id: int):
    case = services.get_case(case_id, current_user)
    if document_id not in {link.document_id for link in case.attachments}:
        abort(404)
    doc = get_document(document_id, current_user)
    quarantined = bool((doc.flags or {}).get("quarantined"))
    inline = doc.mime_type in INLINE_TYPES and not quarantined
    response = Response(
        content(doc), mimetype=doc.mime_type if inline else "application/octet-stream"
    )
    response.headers["Content-Disposition"] = (
        f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quote(doc.filename)}"
    )
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@bp.post("/correspondences/<int:case_id>/copies")
@login_required
def add_copy(case_id: int):
    case = services.get_case(case_id, current_user)
    require(current_user, "manage", "correspondence", case)
    group = request.form.get("group") or ""
    if services.add_copy(case, group, current_user) is None:
        flash(_("Service inconnu ou déjà chargé du courrier."), "error")
    else:
        db.session.commit()
        flash(_("Copie transmise."), "success")
    return redirect(url_for("correspondence.show", case_id=case.id))


@bp.post("/correspondences/<int:case_id>/sender")
@login_required
def set_sender(case_id: int):
    case = services.get_case(case_id, current_user)
    try:
        contact = _picked_contact(request.form, "sender_id")
        if contact is None:
            raise ValidationFailed(
                "Choisissez un contact.",
                errors=[{"field": "sender_id", "message": "Choisissez un contact."}],
            )
        services.set_sender(case, contact, current_user)
    except (ValidationFailed, Conflict) as error:
        db.session.rollback()
        flash(error.detail, "error")
    else:
        flash(_("Expéditeur enregistré : %(name)s.", name=contact.display_name), "success")
    return redirect(url_for("correspondence.show", case_id=case.id))


@bp.post("/correspondences/<int:case_id>/links")
@login_required
def add_link(case_id: int):
    case = services.get_case(case_id, current_user)
    target = services.find_by_chrono((request.form.get("chrono") or "").strip())
    if target is None:
        flash(_("Aucun courrier ne porte ce numéro."), "error")
        return redirect(url_for("correspondence.show", case_id=case.id))
    try:
        services.link_cases(case, target, request.form.get("kind") or "", current_user)
    except (ValueError, ValidationFailed) as error:
        flash(getattr(error, "detail", _("Lien invalide.")), "error")
    else:
        flash(_("Lien ajouté."), "success")
    return redirect(url_for("correspondence.show", case_id=case.id))


@bp.post("/correspondences/<int:case_id>/access")
@login_required
def grant(case_id: int):
    case = services.get_case(case_id, current_user)
    email = (request.form.get("email") or "").strip().lower()
    user = db.session.execute(select(User).where(User.email == email)).scalar()
    if user is None:
        flash(_("Aucun compte pour cette adresse."), "error")
    else:
        services.grant_access(case, user, current_user)
        flash(_("Accès donné à %(name)s.", name=user.name), "success")
    return redirect(url_for("correspondence.show", case_id=case.id))


# --- registration pages ----------------------------------------------------------------


def _sender_from_form(form) -> dict:
    return {
        "last_name": form.get("sender_last_name"),
        "first_name": form.get("sender_first_name"),
        "organisation_name": form.get("sender_organisation"),
        "email": form.get("sender_email"),
        "address_lines": form.get("sender_address"),
        "postal_code": form.get("sender_postal_code"),
        "city": form.get("sender_city"),
    }


def _picked_contact(form, name: str):
    """The contact chosen with the picker ``name`` (None when nothing was chosen)."""
    raw = (form.get(name) or "").strip()
    if not raw.isdigit():
        return None
    return services.chosen_contact(int(raw), current_user, field=name)


@bp.route("/correspondences/paper/new", methods=["GET", "POST"])
@login_required
def paper_new():
    require(current_user, "register", "correspondence", Channel.PAPER)
    errors: dict = {}
    values = request.form
    if request.method == "POST":
        scans = [(f.filename, f.read()) for f in request.files.getlist("files") if f and f.filename]
        try:
            received = parse_received_at(request.form.get("received_at"))
            if received is None:
                raise ValidationFailed(
                    _("La date de réception est obligatoire."),
                    errors=[{"field": "received_at", "message": _("Ce champ est obligatoire.")}],
                )
            batch = request.form.get("mode") == "batch"
            sender = None
            if not batch:
                sender = _picked_contact(request.form, "sender_id") or services.sender_from_details(
                    _sender_from_form(request.form), current_user
                )
            cases = services.register_paper(
                scans,
                current_user,
                batch=batch,
                received_at=received,
                type_code=request.form.get("type") or None,
                subject=(request.form.get("subject") or "").strip() or None,
                sender=sender,
                confidentiality=Confidentiality(request.form.get("confidentiality") or "normal"),
            )
        except MissiveError as error:
            db.session.rollback()
            errors = errors_by_field(error.errors)
            flash(error.detail, "error")
        else:
            numbers = ", ".join(c.chrono for c in cases)
            flash(_("Enregistré : %(numbers)s.", numbers=numbers), "success")
            if len(cases) == 1:
                return redirect(url_for("correspondence.show", case_id=cases[0].id))
            return redirect(url_for("correspondence.index", channel="paper"))
    return render_template(
        "correspondence/paper_new.html",
        types=services.list_case_types(),
        errors=errors,
        values=values,
        sender=_picked_for_display(values, "sender_id"),
    ), (422 if errors else 200)


def _picked_for_display(form, name: str):
    """The contact a form being shown again had chosen (so the picker keeps it)."""
    try:
        return _picked_contact(form, name)
    except MissiveError:
        return None


@bp.get("/correspondences/separator-sheets")
@login_required
def separator_sheets():
    if not (is_mail_office(current_user) or current_user.is_admin):
        abort(403)
    code = request.args.get("type") or None
    case_type = services.get_case_type(code) if code else None
    count = request.args.get("count", 10, type=int)
    pdf = paper.separator_sheets(case_type, count)
    response = Response(pdf, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f"inline; filename=separateurs-{code or 'sans-type'}.pdf"
    )
    return response


@bp.route("/correspondences/notes/new", methods=["GET", "POST"])
@login_required
def note_new():
    errors: dict = {}
    if request.method == "POST":
        from app.correspondence.api import uploaded_files

        subject = (request.form.get("subject") or "").strip()
        group = request.form.get("service_group") or ""
        try:
            problems = []
            if not subject:
                problems.append({"field": "subject", "message": _("Ce champ est obligatoire.")})
            if not db.session.execute(select(Group.id).where(Group.name == group)).scalar():
                problems.append({"field": "service_group", "message": _("Choisissez un service.")})
            if problems:
                raise ValidationFailed(_("La note est incomplète."), errors=problems)
            case = services.register_case(
                services.Intake(
                    channel=Channel.INTERNAL,
                    direction=Direction.INTERNAL,
                    subject=subject,
                    summary=(request.form.get("body") or "").strip() or None,
                    service_group=group,
                    confidentiality=Confidentiality(
                        request.form.get("confidentiality") or "normal"
                    ),
                    data={"author": current_user.email},
                    sender=_picked_contact(request.form, "contact_id"),
                    files=uploaded_files(["files"]),
                ),
                current_user,
            )
        except MissiveError as error:
            db.session.rollback()
            errors = errors_by_field(error.errors)
            flash(error.detail, "error")
        else:
            flash(_("Note enregistrée sous le n° %(chrono)s.", chrono=case.chrono), "success")
            return redirect(url_for("correspondence.show", case_id=case.id))
    return render_template(
        "correspondence/note_new.html",
        groups=_groups(),
        errors=errors,
        values=request.form,
        contact=_picked_for_display(request.form, "contact_id"),
    ), (422 if errors else 200)


# --- public web forms ---------------------------------------------------------------------


def _receipts() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="webform-receipt")


@bp.get("/demarches")
def public_index():
    return render_template("correspondence/public_index.html", forms=webforms.public_forms())


@bp.route("/demarches/<key>", methods=["GET", "POST"])
def public_form(key: str):
    schema = webforms.get_public_form(key)
    errors: dict = {}
    values: dict = {}
    status = 200
    if request.method == "POST":
        values = request.form.to_dict()
        try:
            case = webforms.submit(key, request.form, request.files, request.remote_addr)
        except webforms.TooManySubmissions as error:
            flash(error.detail, "error")
            status = 429
        except MissiveError as error:
            db.session.rollback()
            errors = errors_by_field(error.errors)
            flash(error.detail, "error")
            status = error.status if error.status in (413, 415) else 422
        else:
            token = _receipts().dumps(case.id)
            return redirect(url_for("correspondence.public_receipt", key=key, token=token))
    return render_template(
        "correspondence/public_form.html",
        key=key,
        schema=schema,
        fields=form_fields(schema),
        values=values,
        errors=errors,
        honeypot=webforms.HONEYPOT_FIELD,
    ), status


@bp.get("/demarches/<key>/recu/<token>")
def public_receipt(key: str, token: str):
    try:
        case_id = _receipts().loads(token, max_age=RECEIPT_MAX_AGE)
    except (BadSignature, SignatureExpired):
        abort(404)
    case = services.get_case(case_id)
    return render_template(
        "correspondence/public_receipt.html",
        case=case,
        schema=webforms.get_public_form(key),
        email=(case.data or {}).get("form", {}).get("email"),
    )


# --- signed paper answers: the mail office's print batch ----------------------------------------


@bp.get("/reponses-a-imprimer")
@login_required
def answers_to_print():
    return render_template(
        "correspondence/answers_print.html",
        waiting=replies.answers_to_print(current_user),
        batches=replies.print_batches(current_user),
    )


@bp.post("/reponses-a-imprimer/lot")
@login_required
def print_answers():
    batch = replies.print_answers(current_user)
    if batch is None:
        flash(_("Aucune réponse papier n'attend l'impression."), "info")
        return redirect(url_for("correspondence.answers_to_print"))
    flash(_("Lot prêt : %(n)s", n=batch.description), "success")
    return redirect(url_for("correspondence.answers_batch", document_id=batch.id))


@bp.get("/reponses-a-imprimer/lots/<int:document_id>")
@login_required
def answers_batch(document_id: int):
    doc = get_document(document_id, current_user)
    if doc.kind != replies.PRINT_BATCH_KIND:
        abort(404)
    response = Response(content(doc), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(doc.filename)}"
    return response
