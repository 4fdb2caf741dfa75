"""Business actions on accounts, groups and organisation units."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, inspect, select
from sqlalchemy.orm import joinedload

from app.auth.models import Group, LoginAttempt, OrgUnit, OrgUnitKind, Role, User
from app.core import audit
from app.core.db import utcnow
from app.core.errors import NotFound, ValidationFailed
from app.core.extensions import db
from app.core.security import hash_password, password_needs_rehash, verify_password

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
MIN_PASSWORD_LENGTH = 10


class LoginThrottled(Exception):
    """Too many recent failures for this account or this address."""


def normalise_email(email: str) -> str:
    """Return the canonical form under which e-mails are stored and compared."""
    return (email or "").strip().lower()


def get_user(user_id: int) -> User:
    """Return a user or raise NotFound."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("Utilisateur introuvable.")
    return user


def signed_in_user(user_id: int) -> User | None:
    """Load the user a request runs for with their groups, in one query (nearly every
    page and every permission check reads the groups)."""
    return db.session.get(User, user_id, options=[joinedload(User.groups)])


def refresh_with_groups(user: User) -> User:
    """Reload a user whose row a commit expired together with their groups, in one query.

    A user kept across transactions (a worker, a script, a test) is otherwise reloaded in
    two queries by the first permission check: the row, then the groups.
    """
    state = inspect(user)
    if state.session is db.session() and state.expired and "groups" not in state.dict:
        db.session.execute(
            select(User)
            .where(User.id == state.identity[0])
            .options(joinedload(User.groups))
            .execution_options(populate_existing=True)
        ).unique().scalar_one_or_none()
    return user


def find_user_by_email(email: str) -> User | None:
    """Return the user with that e-mail, whatever its case, or None."""
    return db.session.execute(
        select(User).where(User.email == normalise_email(email))
    ).scalar_one_or_none()


def get_group_by_name(name: str) -> Group | None:
    """Return the functional group with that name, or None."""
    return db.session.execute(select(Group).where(Group.name == name)).scalar_one_or_none()


def _check_user_fields(
    email: str, name: str, role: str, password: str | None, exclude_id: int | None = None
) -> list[dict]:
    errors = []
    if not EMAIL_RE.match(email):
        errors.append({"field": "email", "message": "Adresse électronique invalide."})
    else:
        other = find_user_by_email(email)
        if other is not None and other.id != exclude_id:
            errors.append({"field": "email", "message": "Cette adresse est déjà utilisée."})
    if not name.strip():
        errors.append({"field": "name", "message": "Le nom est obligatoire."})
    if role not in {r.value for r in Role}:
        errors.append({"field": "role", "message": "Rôle inconnu."})
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        errors.append(
            {
                "field": "password",
                "message": f"Le mot de passe doit compter au moins "
                f"{MIN_PASSWORD_LENGTH} caractères.",
            }
        )
    return errors


def _resolve_groups(names: list[str]) -> list[Group]:
    groups, missing = [], []
    for name in names:
        group = get_group_by_name(name)
        (groups.append(group) if group else missing.append(name))
    if missing:
        raise ValidationFailed(
            "Groupe inconnu : " + ", ".join(missing),
            errors=[{"field": "groups", "message": f"Groupe inconnu : {n}"} for n in missing],
        )
    return groups


def create_user(
    *,
    email: str,
    name: str,
    password: str | None,
    role: str = Role.AGENT,
    title: str | None = None,
    org_unit: OrgUnit | None = None,
    groups: list[str] | None = None,
    actor: User | None = None,
) -> User:
    """Create an account; the password is stored as an argon2 hash."""
    email = normalise_email(email)
    errors = _check_user_fields(email, name or "", str(role), password)
    if errors:
        raise ValidationFailed("Le compte ne peut pas être créé.", errors=errors)
    member_of = _resolve_groups(groups or [])
    user = User(
        email=email,
        name=name.strip(),
        title=title,
        role=Role(role),
        org_unit=org_unit,
        password_hash=hash_password(password) if password else None,
        groups=member_of,
    )
    db.session.add(user)
    db.session.flush()
    audit.record(
        "user.create",
        actor=actor,
        object_type="user",
        object_id=user.id,
        data={"email": email, "role": str(role), "groups": groups or []},
    )
    db.session.commit()
    return user


def update_user(
    user: User,
    *,
    actor: User | None,
    name: str,
    email: str,
    role: str,
    title: str | None,
    org_unit: OrgUnit | None,
    groups: list[str],
    active: bool,
    password: str | None = None,
) -> User:
    """Change an account's identity, role, unit, groups or status."""
    email = normalise_email(email)
    errors = _check_user_fields(email, name or "", str(role), password or None, exclude_id=user.id)
    if errors:
        raise ValidationFailed("Le compte ne peut pas être modifié.", errors=errors)
    before = {
        "email": user.email,
        "role": str(user.role),
        "active": user.active,
        "groups": user.group_names,
    }
    user.name, user.email, user.role, user.title = name.strip(), email, Role(role), title
    user.org_unit = org_unit
    user.groups = _resolve_groups(groups)
    if user.active != active or password:
        user.session_version += 1
    user.active = active
    if password:
        user.password_hash = hash_password(password)
    after = {
        "email": user.email,
        "role": str(user.role),
        "active": user.active,
        "groups": user.group_names,
        "password_changed": bool(password),
    }
    audit.record(
        "user.update",
        actor=actor,
        object_type="user",
        object_id=user.id,
        data={"before": before, "after": after},
    )
    db.session.commit()
    return user


def _recent_failures(column, value: str, since) -> int:
    return db.session.execute(
        select(func.count())
        .select_from(LoginAttempt)
        .where(column == value, LoginAttempt.at >= since)
    ).scalar_one()


def authenticate(email: str, password: str, ip: str | None) -> User | None:
    """Return the user for valid credentials, None otherwise; raise LoginThrottled when locked.

    The same answer is given whether the account exists or not: throttling counts
    failures per submitted e-mail and per address, known or unknown.
    """
    config = current_app.config
    email = normalise_email(email)
    since = utcnow() - timedelta(seconds=config["LOGIN_FAILURE_WINDOW_SECONDS"])
    if _recent_failures(LoginAttempt.email, email, since) >= config[
        "LOGIN_MAX_FAILURES_PER_ACCOUNT"
    ] or (
        ip
        and _recent_failures(LoginAttempt.ip, ip, since) >= config["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    ):
        audit.record("auth.throttled", data={"email": email, "ip": ip})
        db.session.commit()
        raise LoginThrottled
    user = find_user_by_email(email)
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        db.session.add(LoginAttempt(email=email, ip=ip))
        audit.record("auth.failure", actor=user, data={"email": email})
        db.session.commit()
        return None
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.email == email))
    audit.record("auth.login", actor=user, object_type="user", object_id=user.id)
    db.session.commit()
    return user


def record_logout(user: User) -> None:
    """Write the sign-out to the audit trail."""
    audit.record("auth.logout", actor=user, object_type="user", object_id=user.id)
    db.session.commit()


def purge_login_attempts() -> int:
    """Forget failed sign-ins older than the throttling window; return how many."""
    window = current_app.config["LOGIN_FAILURE_WINDOW_SECONDS"]
    result = db.session.execute(
        delete(LoginAttempt).where(LoginAttempt.at < utcnow() - timedelta(seconds=window))
    )
    db.session.commit()
    return result.rowcount or 0


def create_group(
    *,
    name: str,
    label: str,
    description: str | None = None,
    org_unit: OrgUnit | None = None,
    actor: User | None = None,
) -> Group:
    """Create a functional group (the name is what BPMN circuits refer to)."""
    name = (name or "").strip().lower()
    errors = []
    if not SLUG_RE.match(name):
        errors.append(
            {"field": "name", "message": "Nom technique invalide : minuscules, chiffres et tirets."}
        )
    elif get_group_by_name(name):
        errors.append({"field": "name", "message": "Ce groupe existe déjà."})
    if not (label or "").strip():
        errors.append({"field": "label", "message": "Le libellé est obligatoire."})
    if errors:
        raise ValidationFailed("Le groupe ne peut pas être créé.", errors=errors)
    group = Group(name=name, label=label.strip(), description=description, org_unit=org_unit)
    db.session.add(group)
    db.session.flush()
    audit.record(
        "group.create", actor=actor, object_type="group", object_id=group.id, data={"name": name}
    )
    db.session.commit()
    return group


def update_group(
    group: Group,
    *,
    label: str,
    description: str | None,
    org_unit: OrgUnit | None,
    member_ids: list[int],
    actor: User | None = None,
) -> Group:
    """Rename a group, attach it to a unit and set its members."""
    if not (label or "").strip():
        raise ValidationFailed(
            "Le groupe ne peut pas être modifié.",
            errors=[{"field": "label", "message": "Le libellé est obligatoire."}],
        )
    before = sorted(u.id for u in group.members)
    group.label, group.description, group.org_unit = label.strip(), description, org_unit
    group.members = (
        list(db.session.execute(select(User).where(User.id.in_(member_ids))).scalars())
        if member_ids
        else []
    )
    audit.record(
        "group.update",
        actor=actor,
        object_type="group",
        object_id=group.id,
        data={"members_before": before, "members_after": sorted(member_ids)},
    )
    db.session.commit()
    return group


def create_org_unit(
    *,
    code: str,
    name: str,
    kind: str,
    parent: OrgUnit | None = None,
    actor: User | None = None,
    **contact,
) -> OrgUnit:
    """Create a unit of the organisation tree (direction, service, délégation…)."""
    code = (code or "").strip().lower()
    errors = []
    if not SLUG_RE.match(code):
        errors.append(
            {"field": "code", "message": "Code invalide : minuscules, chiffres et tirets."}
        )
    elif db.session.execute(select(OrgUnit).where(OrgUnit.code == code)).scalar():
        errors.append({"field": "code", "message": "Ce code existe déjà."})
    if not (name or "").strip():
        errors.append({"field": "name", "message": "Le nom est obligatoire."})
    if kind not in {k.value for k in OrgUnitKind}:
        errors.append({"field": "kind", "message": "Type d'unité inconnu."})
    if errors:
        raise ValidationFailed("L'unité ne peut pas être créée.", errors=errors)
    unit = OrgUnit(code=code, name=name.strip(), kind=OrgUnitKind(kind), parent=parent, **contact)
    db.session.add(unit)
    db.session.flush()
    audit.record(
        "org_unit.create",
        actor=actor,
        object_type="org_unit",
        object_id=unit.id,
        data={"code": code, "kind": kind, "parent": parent.code if parent else None},
    )
    db.session.commit()
    return unit


def update_org_unit(
    unit: OrgUnit,
    *,
    name: str,
    parent: OrgUnit | None,
    head: User | None,
    actor: User | None = None,
    **contact,
) -> OrgUnit:
    """Rename or move a unit, set its head and its public contact details."""
    errors = []
    if not (name or "").strip():
        errors.append({"field": "name", "message": "Le nom est obligatoire."})
    ancestor = parent
    while ancestor is not None:
        if ancestor.id == unit.id:
            errors.append(
                {
                    "field": "parent",
                    "message": "Une unité ne peut pas être rattachée à elle-même "
                    "ou à l'une de ses sous-unités.",
                }
            )
            break
        ancestor = ancestor.parent
    if errors:
        raise ValidationFailed("L'unité ne peut pas être modifiée.", errors=errors)
    unit.name, unit.parent, unit.head = name.strip(), parent, head
    for field, value in contact.items():
        setattr(unit, field, value or None)
    audit.record(
        "org_unit.update",
        actor=actor,
        object_type="org_unit",
        object_id=unit.id,
        data={
            "name": unit.name,
            "parent": parent.code if parent else None,
            "head": head.email if head else None,
        },
    )
    db.session.commit()
    return unit


def org_tree() -> list[tuple[int, OrgUnit]]:
    """Return every unit with its depth, in tree order (roots first, children by name)."""
    units = list(db.session.execute(select(OrgUnit).order_by(OrgUnit.name)).scalars())
    children: dict[int | None, list[OrgUnit]] = {}
    for unit in units:
        children.setdefault(unit.parent_id, []).append(unit)
    ordered: list[tuple[int, OrgUnit]] = []

    def walk(parent_id: int | None, depth: int) -> None:
        for unit in children.get(parent_id, []):
            ordered.append((depth, unit))
            walk(unit.id, depth + 1)

    walk(None, 0)
    return ordered
