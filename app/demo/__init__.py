"""Demo data: an organisation shaped like a Département, its agents and groups.

``load_demo()`` is idempotent: objects are looked up by code, name or e-mail and
only what is missing is created.
"""

from __future__ import annotations

from sqlalchemy import select

from app.auth.models import Group, OrgUnit, User
from app.core import audit
from app.core.extensions import db
from app.core.security import hash_password
from app.demo.organisation import DEMO_PASSWORD, GROUPS, UNITS, USERS


def load_demo(activity: bool = True) -> dict[str, int]:
    """Load the demo organisation, then each domain's demo data (``app.<domain>.demo``),
    then — with ``activity`` — each domain's demo activity (``load_activity()``: items
    worked on by the demo agents, once every domain's settings are there)."""
    from app import DOMAINS, domain_module

    summary = load_organisation()
    modules = [domain_module(domain, "demo") for domain in DOMAINS]
    for module in modules:
        if module is not None:
            summary.update(module.load() or {})
    for module in modules if activity else []:
        if module is not None and hasattr(module, "load_activity"):
            summary.update(module.load_activity() or {})
    return summary


def load_organisation() -> dict[str, int]:
    """Create what is missing of the demo organisation; return how many objects were added."""
    created = {"org_units": 0, "groups": 0, "users": 0}
    units: dict[str, OrgUnit] = {u.code: u for u in db.session.execute(select(OrgUnit)).scalars()}
    for code, name, kind, parent, contact in UNITS:
        if code not in units:
            unit = OrgUnit(code=code, name=name, kind=kind, parent=units.get(parent), **contact)
            db.session.add(unit)
            units[code] = unit
            created["org_units"] += 1
    db.session.flush()

    groups: dict[str, Group] = {g.name: g for g in db.session.execute(select(Group)).scalars()}
    for name, label, unit_code in GROUPS:
        if name not in groups:
            group = Group(name=name, label=label, org_unit=units.get(unit_code))
            db.session.add(group)
            groups[name] = group
            created["groups"] += 1

    existing = {u.email: u for u in db.session.execute(select(User)).scalars()}
    password_hash = None
    heads: list[tuple[str, str]] = []
    for email, name, title, role, unit_code, group_names, heads_unit in USERS:
        if heads_unit:
            heads.append((heads_unit, email))
        if email in existing:
            continue
        password_hash = password_hash or hash_password(DEMO_PASSWORD)
        user = User(
            email=email,
            name=name,
            title=title,
            role=role,
            org_unit=units.get(unit_code),
            password_hash=password_hash,
            groups=[groups[g] for g in group_names],
        )
        db.session.add(user)
        existing[email] = user
        created["users"] += 1
    db.session.flush()
    for unit_code, email in heads:
        if units[unit_code].head_id is None:
            units[unit_code].head = existing[email]
    if any(created.values()):
        audit.record("demo.load", data=created)
    db.session.commit()
    return created
