"""Pages of the contact base: search, contact page, edit form, duplicates queue, GDPR."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from app.contacts import search, services
from app.contacts.duplicates import REASON_LABELS
from app.contacts.forms import (
    ERROR_FIELDS,
    ConfirmForm,
    ContactForm,
    LinkForm,
    RetentionRuleForm,
)
from app.contacts.identifiers import display_phone
from app.contacts.models import ContactLink, ContactStatus
from app.contacts.timeline import timeline_for
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.extensions import db
from app.core.navigation import register_nav
from app.core.permissions import can, require

bp = Blueprint("contacts", __name__, url_prefix="/contacts", template_folder="templates")
register_nav(_l("Contacts"), "contacts.index", order=30)
PAGE_SIZE = 25


@bp.before_request
@login_required
def signed_in_only():
    return None


@bp.app_template_filter("phone_fr")
def phone_fr(number: str | None) -> str:
    return display_phone(number)


@bp.app_template_filter("reason_label")
def reason_label(reason: str) -> str:
    return str(REASON_LABELS.get(reason, reason))


@bp.app_context_processor
def contact_permissions():
    def may(action: str, contact=None) -> bool:
        return can(current_user, action, "contact", contact)

    return {"contact_may": may}


def _show_errors(form: ContactForm, error: ValidationFailed) -> None:
    for item in error.errors:
        name = ERROR_FIELDS.get(item.get("field") or "", item.get("field") or "")
        field = getattr(form, name, None) if name else None
        if field is not None and hasattr(field, "errors"):
            field.errors = [*field.errors, item["message"]]
        else:
            flash(item["message"], "error")
    flash(error.detail, "error")


@bp.get("/")
def index():
    q = (request.args.get("q") or "").strip()[:200]
    kind = (
        request.args.get("kind") if request.args.get("kind") in ("person", "organisation") else None
    )
    page = search.search_contacts(
        q, kind=kind, limit=PAGE_SIZE, cursor=request.args.get("cursor") or None
    )
    template = (
        "contacts/_results.html" if request.headers.get("HX-Request") else ("contacts/index.html")
    )
    return render_template(template, page=page, q=q, kind=kind)


@bp.get("/autocomplete")
def autocomplete():
    """Suggestions for the contact picker (htmx fragment, or JSON with Accept: json)."""
    target = request.args.get("target", "contact")
    q = (request.args.get("q") or request.args.get(f"{target}_search") or "").strip()[:200]
    kind = (
        request.args.get("kind") if request.args.get("kind") in ("person", "organisation") else None
    )
    items = search.search_contacts(q, kind=kind, limit=8).items if len(q) >= 2 else []
    if request.accept_mimetypes.best == "application/json":
        return jsonify(
            [
                {
                    "id": c.id,
                    "display_name": c.display_name,
                    "postal_code": c.postal_code,
                    "city": c.city,
                }
                for c in items
            ]
        )
    return render_template("contacts/_options.html", items=items, q=q, target=target, kind=kind)


@bp.route("/new", methods=["GET", "POST"])
def new():
    require(current_user, "create", "contact")
    form = ContactForm()
    duplicates = []
    if request.method == "GET":
        for name in (
            "last_name",
            "first_name",
            "organisation_name",
            "email",
            "postal_code",
            "city",
        ):
            if request.args.get(name):
                getattr(form, name).data = request.args[name]
        if request.args.get("kind") in ("person", "organisation"):
            form.kind.data = request.args["kind"]
    if form.validate_on_submit():
        try:
            contact, _found = services.create_contact(
                form.to_data(), current_user, allow_duplicate=form.allow_duplicate.data
            )
        except services.DuplicateFound as error:
            duplicates = error.extra.get("duplicates", [])
            flash(
                _(
                    "Doublon probable : vérifiez les fiches existantes ci-dessous avant de "
                    "créer ce contact."
                ),
                "warning",
            )
        except ValidationFailed as error:
            _show_errors(form, error)
        else:
            flash(_("Contact enregistré."), "success")
            return redirect(url_for("contacts.show", contact_id=contact.id))
    return render_template("contacts/form.html", form=form, contact=None, duplicates=duplicates)


@bp.get("/<int:contact_id>")
def show(contact_id: int):
    contact = services.get_contact(contact_id, current_user)
    if contact.status == ContactStatus.MERGED:
        flash(
            _("Cette fiche a été fusionnée dans la fiche n° %(id)s.", id=contact.merged_into_id),
            "info",
        )
        return redirect(url_for("contacts.show", contact_id=contact.merged_into_id))
    return render_template(
        "contacts/show.html",
        contact=contact,
        links=services.links_of(contact),
        timeline=timeline_for(contact, current_user),
        merges=services.merges_of(contact),
        link_form=LinkForm(),
        confirm=ConfirmForm(),
    )


@bp.route("/<int:contact_id>/edit", methods=["GET", "POST"])
def edit(contact_id: int):
    contact = services.get_contact(contact_id, current_user)
    require(current_user, "update", "contact", contact)
    form = ContactForm()
    if request.method == "GET":
        form.fill_from(contact)
    elif form.validate_on_submit():
        try:
            version = int(form.version.data or 0) or None
            services.update_contact(contact, form.to_data(), current_user, expected_version=version)
        except ValidationFailed as error:
            db.session.rollback()
            _show_errors(form, error)
        except Conflict as error:
            db.session.rollback()
            flash(error.detail, "error")
        else:
            flash(_("Modifications enregistrées."), "success")
            return redirect(url_for("contacts.show", contact_id=contact.id))
    return render_template("contacts/form.html", form=form, contact=contact, duplicates=[])


@bp.post("/<int:contact_id>/links")
def add_link(contact_id: int):
    person = services.get_contact(contact_id, current_user)
    form = LinkForm()
    if not form.validate_on_submit():
        flash(_("Choisissez une organisation dans la liste."), "error")
        return redirect(url_for("contacts.show", contact_id=person.id))
    organisation = services.get_contact(form.organisation_id.data, current_user)
    try:
        services.link_person(person, organisation, form.role.data, current_user)
    except ValidationFailed as error:
        flash(error.detail, "error")
    else:
        flash(_("Lien enregistré."), "success")
    return redirect(url_for("contacts.show", contact_id=person.id))


@bp.post("/links/<int:link_id>/delete")
def delete_link(link_id: int):
    link = db.session.get(ContactLink, link_id)
    if link is None:
        raise NotFound(_("Lien introuvable."))
    back = request.form.get("back", type=int) or link.person_id
    if not ConfirmForm().validate_on_submit():
        abort(400)
    services.unlink(link, current_user)
    flash(_("Lien supprimé."), "success")
    return redirect(url_for("contacts.show", contact_id=back))


@bp.get("/duplicates")
def duplicates():
    require(current_user, "review_duplicates", "contact")
    page = max(request.args.get("page", 1, type=int), 1)
    pairs = services.open_duplicates(
        current_user, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    return render_template(
        "contacts/duplicates.html",
        pairs=pairs[:PAGE_SIZE],
        page=page,
        has_next=len(pairs) > PAGE_SIZE,
    )


COMPARED = [
    ("display_name", _l("Nom")),
    ("birth_name", _l("Nom de naissance")),
    ("siret", _l("SIRET")),
    ("rna", _l("RNA")),
    ("email", _l("Courriel")),
    ("phone", _l("Téléphone")),
    ("address_lines", _l("Adresse")),
    ("postal_code", _l("Code postal")),
    ("city", _l("Localité")),
    ("preferred_channel", _l("Canal préféré")),
    ("notes", _l("Observations")),
]
CHOOSABLE = {
    "civility": _l("Civilité"),
    "first_name": _l("Prénom"),
    "last_name": _l("Nom"),
    "birth_name": _l("Nom de naissance"),
    "organisation_name": _l("Raison sociale"),
    "siret": _l("SIRET"),
    "rna": _l("RNA"),
    "preferred_channel": _l("Canal préféré"),
    "notes": _l("Observations"),
}


@bp.route("/duplicates/<int:pair_id>", methods=["GET", "POST"])
def duplicate_pair(pair_id: int):
    pair = services.get_duplicate(pair_id, current_user)
    form = ConfirmForm()
    if request.method == "POST" and form.validate_on_submit():
        if request.form.get("action") == "dismiss":
            services.dismiss_duplicate(pair, current_user)
            flash(_("Paire écartée : ces fiches ne seront plus proposées."), "success")
            return redirect(url_for("contacts.duplicates"))
        survivor_id = request.form.get("survivor_id", type=int)
        if survivor_id not in (pair.first_id, pair.second_id):
            flash(_("Choisissez la fiche à conserver."), "error")
        else:
            survivor = pair.first if survivor_id == pair.first_id else pair.second
            merged = pair.second if survivor is pair.first else pair.first
            choices = {
                name: "merged" for name in CHOOSABLE if request.form.get(f"take_{name}") == "merged"
            }
            try:
                merge = services.merge_contacts(survivor, merged, current_user, choices=choices)
            except (Conflict, ValidationFailed) as error:
                db.session.rollback()
                flash(error.detail, "error")
            else:
                flash(
                    _("Fiches fusionnées. L'opération peut être annulée depuis la fiche."),
                    "success",
                )
                return redirect(url_for("contacts.show", contact_id=merge.survivor_id))
    return render_template(
        "contacts/compare.html", pair=pair, form=form, compared=COMPARED, choosable=CHOOSABLE
    )


@bp.post("/merges/<int:merge_id>/undo")
def undo_merge(merge_id: int):
    merge = services.get_merge(merge_id, current_user)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        merged = services.undo_merge(merge, current_user)
    except Conflict as error:
        flash(error.detail, "error")
        return redirect(url_for("contacts.show", contact_id=merge.survivor_id))
    flash(
        _("Fusion annulée : la fiche n° %(id)s a retrouvé ses échanges.", id=merged.id), "success"
    )
    return redirect(url_for("contacts.show", contact_id=merged.id))


@bp.get("/<int:contact_id>/export.json")
def export_json(contact_id: int):
    contact = services.get_contact(contact_id, current_user)
    response = jsonify(services.export_contact_data(contact, current_user))
    response.headers["Content-Disposition"] = (
        f'attachment; filename="contact-{contact.id}-donnees.json"'
    )
    return response


@bp.get("/<int:contact_id>/export.pdf")
def export_pdf(contact_id: int):
    contact = services.get_contact(contact_id, current_user)
    pdf = services.export_contact_pdf(contact, current_user)
    return Response(
        pdf,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="contact-{contact.id}-donnees.pdf"'},
    )


@bp.route("/<int:contact_id>/anonymise", methods=["GET", "POST"])
def anonymise(contact_id: int):
    contact = services.get_contact(contact_id, current_user)
    require(current_user, "anonymise", "contact", contact)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            services.anonymise_contact(contact, current_user)
        except Conflict as error:
            flash(error.detail, "error")
        else:
            flash(_("Contact anonymisé."), "success")
        return redirect(url_for("contacts.show", contact_id=contact.id))
    return render_template("contacts/anonymise.html", contact=contact, form=form)


@bp.route("/retention", methods=["GET", "POST"])
def retention():
    require(current_user, "retention", "contact")
    form = RetentionRuleForm()
    if form.validate_on_submit():
        try:
            services.set_retention_rule(
                form.case_type.data.strip(),
                form.months.data,
                current_user,
                label=form.label.data,
                action=form.action.data,
            )
        except ValidationFailed as error:
            for item in error.errors:
                field = getattr(form, item["field"], None)
                if field is not None:
                    field.errors = [*field.errors, item["message"]]
            flash(error.detail, "error")
        else:
            flash(_("Règle de conservation enregistrée."), "success")
            return redirect(url_for("contacts.retention"))
    return render_template("contacts/retention.html", form=form, rules=services.retention_rules())
