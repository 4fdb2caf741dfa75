"""Admin pages for users, groups and organisation units (admins only).

The circuit studio (``/admin/processes``) is open to analysts too: it has its own
blueprint (``app.admin.process_views``), registered alongside this one.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, or_, select

from app.admin.process_views import bp as processes_bp
from app.api import services as token_services
from app.auth import services
from app.auth.forms import GroupForm, OrgUnitForm, UserForm, options
from app.auth.models import Group, OrgUnit, User
from app.core.errors import ValidationFailed
from app.core.extensions import db
from app.core.permissions import role_required

bp = Blueprint("admin", __name__, url_prefix="/admin")
PAGE_SIZE = 50
# Registered on the application with this blueprint, outside its admins-only hook.
bp.record_once(lambda state: state.app.register_blueprint(processes_bp))


@bp.before_request
@role_required("admin")
def admins_only():
    return None


def _show_errors(form, error: ValidationFailed) -> None:
    """Attach service validation errors to the matching form fields."""
    for item in error.errors:
        field = getattr(form, item.get("field") or "", None)
        if field is not None:
            field.errors = [*field.errors, item["message"]]
        else:
            flash(item["message"], "error")
    flash(error.detail, "error")


def _unit_choices(empty_label: str) -> list[tuple[int, str]]:
    return options(
        [(0, empty_label)]
        + [(unit.id, "\u2003" * depth + unit.name) for depth, unit in services.org_tree()]
    )


def _user_choices(empty_label: str) -> list[tuple[int, str]]:
    users = db.session.execute(select(User).where(User.active).order_by(User.name)).scalars()
    return options([(0, empty_label)] + [(u.id, f"{u.name} ({u.email})") for u in users])


def _unit_or_none(unit_id: int | None) -> OrgUnit | None:
    return db.session.get(OrgUnit, unit_id) if unit_id else None


@bp.get("/")
def index():
    counts = {
        "users": db.session.scalar(select(func.count()).select_from(User)),
        "groups": db.session.scalar(select(func.count()).select_from(Group)),
        "units": db.session.scalar(select(func.count()).select_from(OrgUnit)),
    }
    return render_template("admin/index.html", counts=counts)


@bp.get("/users")
def users():
    q = (request.args.get("q") or "").strip()
    page = max(request.args.get("page", 1, type=int), 1)
    stmt = select(User).order_by(User.name)
    if q:
        like = f"%{q.lower()}%"
        stmt = stmt.where(or_(func.lower(User.name).like(like), User.email.like(like)))
    rows = list(
        db.session.execute(stmt.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).scalars()
    )
    return render_template(
        "admin/users.html", users=rows[:PAGE_SIZE], q=q, page=page, has_next=len(rows) > PAGE_SIZE
    )


def _fill_user_form(form: UserForm) -> None:
    form.org_unit_id.choices = _unit_choices(_("— aucune —"))
    form.groups.choices = options(
        (g.name, f"{g.label} ({g.name})")
        for g in db.session.execute(select(Group).order_by(Group.label)).scalars()
    )


@bp.route("/users/new", methods=["GET", "POST"])
def user_new():
    form = UserForm()
    _fill_user_form(form)
    if form.validate_on_submit():
        try:
            user = services.create_user(
                email=form.email.data,
                name=form.name.data,
                password=form.password.data or None,
                role=form.role.data,
                title=form.title.data or None,
                org_unit=_unit_or_none(form.org_unit_id.data),
                groups=form.groups.data,
                actor=current_user,
            )
        except ValidationFailed as error:
            _show_errors(form, error)
        else:
            flash(_("Compte créé pour %(name)s.", name=user.name), "success")
            return redirect(url_for("admin.user_edit", user_id=user.id))
    return render_template("admin/user_form.html", form=form, user=None)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def user_edit(user_id: int):
    user = services.get_user(user_id)
    form = UserForm(obj=user) if request.method == "GET" else UserForm()
    _fill_user_form(form)
    if request.method == "GET":
        form.org_unit_id.data = user.org_unit_id or 0
        form.groups.data = user.group_names
        form.role.data = str(user.role)
    if form.validate_on_submit():
        try:
            services.update_user(
                user,
                actor=current_user,
                name=form.name.data,
                email=form.email.data,
                role=form.role.data,
                title=form.title.data or None,
                org_unit=_unit_or_none(form.org_unit_id.data),
                groups=form.groups.data,
                active=form.active.data,
                password=form.password.data or None,
            )
        except ValidationFailed as error:
            db.session.rollback()
            _show_errors(form, error)
        else:
            flash(_("Compte mis à jour."), "success")
            return redirect(url_for("admin.user_edit", user_id=user.id))
    return render_template(
        "admin/user_form.html", form=form, user=user, tokens=token_services.tokens_of(user)
    )


@bp.post("/users/<int:user_id>/tokens")
def token_create(user_id: int):
    user = services.get_user(user_id)
    name = (request.form.get("name") or "").strip()[:120] or _("jeton")
    _token, clear = token_services.create_token(user, name=name, actor=current_user)
    flash(
        _("Nouveau jeton (copiez-le maintenant, il ne sera plus affiché) : %(t)s", t=clear),
        "success",
    )
    return redirect(url_for("admin.user_edit", user_id=user.id))


@bp.post("/tokens/<int:token_id>/revoke")
def token_revoke(token_id: int):
    token = token_services.revoke_token(token_id, actor=current_user)
    flash(_("Jeton révoqué."), "success")
    return redirect(url_for("admin.user_edit", user_id=token.user_id))


@bp.get("/groups")
def groups():
    rows = db.session.execute(select(Group).order_by(Group.label)).scalars()
    return render_template("admin/groups.html", groups=rows)


def _fill_group_form(form: GroupForm) -> None:
    form.org_unit_id.choices = _unit_choices(_("— aucune —"))
    form.member_ids.choices = _user_choices("")[1:]


@bp.route("/groups/new", methods=["GET", "POST"])
def group_new():
    form = GroupForm()
    _fill_group_form(form)
    if form.validate_on_submit():
        try:
            group = services.create_group(
                name=form.name.data,
                label=form.label.data,
                description=form.description.data or None,
                org_unit=_unit_or_none(form.org_unit_id.data),
                actor=current_user,
            )
        except ValidationFailed as error:
            _show_errors(form, error)
        else:
            flash(_("Groupe créé."), "success")
            return redirect(url_for("admin.group_edit", group_id=group.id))
    return render_template("admin/group_form.html", form=form, group=None)


@bp.route("/groups/<int:group_id>", methods=["GET", "POST"])
def group_edit(group_id: int):
    group = db.session.get(Group, group_id) or abort(404)
    form = GroupForm(obj=group) if request.method == "GET" else GroupForm()
    _fill_group_form(form)
    form.name.data = group.name
    if request.method == "GET":
        form.org_unit_id.data = group.org_unit_id or 0
        form.member_ids.data = [u.id for u in group.members]
    if form.validate_on_submit():
        try:
            services.update_group(
                group,
                label=form.label.data,
                description=form.description.data or None,
                org_unit=_unit_or_none(form.org_unit_id.data),
                member_ids=form.member_ids.data,
                actor=current_user,
            )
        except ValidationFailed as error:
            db.session.rollback()
            _show_errors(form, error)
        else:
            flash(_("Groupe mis à jour."), "success")
            return redirect(url_for("admin.group_edit", group_id=group.id))
    return render_template("admin/group_form.html", form=form, group=group)


@bp.get("/org-units")
def org_units():
    return render_template("admin/org_units.html", tree=services.org_tree())


def _fill_unit_form(form: OrgUnitForm) -> None:
    form.parent_id.choices = _unit_choices(_("— racine —"))
    form.head_id.choices = _user_choices(_("— aucun —"))


_CONTACT_FIELDS = ("address_lines", "postal_code", "city", "email", "phone")


@bp.route("/org-units/new", methods=["GET", "POST"])
def org_unit_new():
    form = OrgUnitForm()
    _fill_unit_form(form)
    if request.method == "GET" and request.args.get("parent", type=int):
        form.parent_id.data = request.args.get("parent", type=int)
    if form.validate_on_submit():
        try:
            unit = services.create_org_unit(
                code=form.code.data,
                name=form.name.data,
                kind=form.kind.data,
                parent=_unit_or_none(form.parent_id.data),
                actor=current_user,
                **{f: getattr(form, f).data or None for f in _CONTACT_FIELDS},
            )
        except ValidationFailed as error:
            _show_errors(form, error)
        else:
            flash(_("Unité créée."), "success")
            return redirect(url_for("admin.org_unit_edit", unit_id=unit.id))
    return render_template("admin/org_unit_form.html", form=form, unit=None)


@bp.route("/org-units/<int:unit_id>", methods=["GET", "POST"])
def org_unit_edit(unit_id: int):
    unit = db.session.get(OrgUnit, unit_id) or abort(404)
    form = OrgUnitForm(obj=unit) if request.method == "GET" else OrgUnitForm()
    _fill_unit_form(form)
    form.code.data, form.kind.data = unit.code, str(unit.kind)
    if request.method == "GET":
        form.parent_id.data = unit.parent_id or 0
        form.head_id.data = unit.head_id or 0
    if form.validate_on_submit():
        try:
            services.update_org_unit(
                unit,
                name=form.name.data,
                parent=_unit_or_none(form.parent_id.data),
                head=db.session.get(User, form.head_id.data) if form.head_id.data else None,
                actor=current_user,
                **{f: getattr(form, f).data for f in _CONTACT_FIELDS},
            )
        except ValidationFailed as error:
            db.session.rollback()
            _show_errors(form, error)
        else:
            flash(_("Unité mise à jour."), "success")
            return redirect(url_for("admin.org_unit_edit", unit_id=unit.id))
    members = db.session.execute(
        select(User).where(User.org_unit_id == unit.id).order_by(User.name)
    ).scalars()
    return render_template("admin/org_unit_form.html", form=form, unit=unit, members=list(members))
