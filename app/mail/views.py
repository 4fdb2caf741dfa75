"""Admin page of the functional mailboxes: list, add, edit, poll now."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.core.errors import MissiveError
from app.core.extensions import db
from app.core.jsonforms import errors_by_field
from app.core.navigation import register_nav
from app.core.permissions import role_required
from app.correspondence.services import list_case_types
from app.mail import services

bp = Blueprint("mail", __name__, url_prefix="/admin/mailboxes", template_folder="templates")
register_nav(_l("Boîtes fonctionnelles"), "mail.mailboxes", role="admin", order=85)


@bp.before_request
@role_required("admin")
def admins_only():
    return None


def _form_values(form) -> dict:
    return {
        "name": (form.get("name") or "").strip(),
        "host": (form.get("host") or "").strip(),
        "port": form.get("port", type=int) or 0,
        "username": (form.get("username") or "").strip(),
        "password": form.get("password") or "",
        "folder": (form.get("folder") or "INBOX").strip(),
        "processed_folder": (form.get("processed_folder") or "Traités").strip(),
        "use_tls": form.get("use_tls") == "on",
        "group_name": form.get("group_name") or None,
        "type_code": form.get("type_code") or None,
    }


def _render(template: str, **context):
    from app.auth.models import Group

    groups = db.session.query(Group).order_by(Group.label).all()
    return render_template(template, groups=groups, types=list_case_types(), **context)


@bp.get("/")
def mailboxes():
    boxes = services.list_mailboxes()
    return _render(
        "mail/mailboxes.html",
        boxes=boxes,
        activity={box.id: services.mailbox_activity(box) for box in boxes},
        errors={},
        values={},
    )


@bp.post("/")
def mailbox_create():
    values = _form_values(request.form)
    try:
        box = services.add_mailbox(**values, actor=current_user)
    except MissiveError as error:
        db.session.rollback()
        flash(error.detail, "error")
        boxes = services.list_mailboxes()
        return _render(
            "mail/mailboxes.html",
            boxes=boxes,
            activity={b.id: services.mailbox_activity(b) for b in boxes},
            errors=errors_by_field(error.errors),
            values=values,
        ), 422
    flash(_("Boîte « %(name)s » ajoutée.", name=box.name), "success")
    return redirect(url_for("mail.mailboxes"))


@bp.route("/<int:mailbox_id>", methods=["GET", "POST"])
def mailbox_edit(mailbox_id: int):
    box = services.get_mailbox(mailbox_id)
    errors: dict = {}
    if request.method == "POST":
        values = _form_values(request.form)
        values["active"] = request.form.get("active") == "on"
        try:
            services.update_mailbox(box, current_user, **values)
        except MissiveError as error:
            db.session.rollback()
            errors = errors_by_field(error.errors)
            flash(error.detail, "error")
        else:
            flash(_("Boîte mise à jour."), "success")
            return redirect(url_for("mail.mailboxes"))
    return _render("mail/mailbox_edit.html", box=box, errors=errors), (422 if errors else 200)


@bp.post("/<int:mailbox_id>/fetch")
def mailbox_fetch(mailbox_id: int):
    report = services.fetch_mailbox(services.get_mailbox(mailbox_id))
    if report.error:
        flash(_("Relève incomplète : %(error)s", error=report.error), "error")
    else:
        flash(
            _(
                "Relève faite : %(n)d courriel(s) enregistré(s), %(t)d rattaché(s), "
                "%(d)d doublon(s).",
                n=report.registered,
                t=report.threaded,
                d=report.duplicates,
            ),
            "success",
        )
    return redirect(url_for("mail.mailboxes"))
