"""Finding the sender of an item in the contact base, or creating it.

A small stand-in for the contact service's ``match_sender`` (built in parallel): the
lead switches intake to it at merge.
"""

from __future__ import annotations

from email.utils import parseaddr

from sqlalchemy import select

from app.contacts.models import Contact, ContactKind
from app.core import audit
from app.core.extensions import db

CONTACT_FIELDS = (
    "civility",
    "first_name",
    "last_name",
    "organisation_name",
    "siret",
    "rna",
    "email",
    "phone",
    "address_lines",
    "postal_code",
    "city",
)


def split_display_name(display: str) -> tuple[str | None, str | None]:
    """« Claire DUPONT » → (Claire, DUPONT); a single word is a last name."""
    parts = (display or "").replace('"', "").split()
    if not parts:
        return None, None
    if len(parts) == 1:
        return None, parts[0]
    upper = [p for p in parts if p.isupper() and len(p) > 1]
    if upper and len(upper) < len(parts):
        last = " ".join(upper)
        first = " ".join(p for p in parts if p not in upper)
        return first, last
    return " ".join(parts[:-1]), parts[-1]


def _clip(field: str, value) -> str:
    length = getattr(Contact.__table__.c[field].type, "length", None)
    text = str(value).strip()
    return text[:length] if length else text


def find_by_email(email: str) -> Contact | None:
    """The live contact with that e-mail address, if any.

    Addresses are stored lower-cased by intake, so the lookup is an equality the
    ``contact.email`` index serves (a ``lower()`` would scan the whole contact base).
    """
    address = email.strip()
    return db.session.execute(
        select(Contact)
        .where(Contact.email.in_({address, address.lower()}), Contact.merged_into_id.is_(None))
        .order_by(Contact.id)
        .limit(1)
    ).scalar_one_or_none()


def match_sender(details: dict | None, actor=None) -> Contact | None:
    """The contact matching ``details`` (by e-mail), created from them when unknown.

    ``details`` holds contact fields (see CONTRACT.md) and optionally ``name``, a display
    name or a ``"Name <address>"`` string. Returns None when nothing identifies anyone.
    """
    details = {k: v for k, v in (details or {}).items() if v not in (None, "")}
    name = details.pop("name", None)
    if name and "@" in name and not details.get("email"):
        display, address = parseaddr(name)
        name, details["email"] = display or None, address or None
    email = (details.get("email") or "").strip().lower() or None
    if email:
        details["email"] = email
        existing = find_by_email(email)
        if existing is not None:
            return existing
    if name and not (details.get("last_name") or details.get("organisation_name")):
        first, last = split_display_name(name)
        details.setdefault("first_name", first)
        details.setdefault("last_name", last)
    if not any(details.get(k) for k in ("email", "last_name", "organisation_name")):
        return None
    kind = (
        ContactKind.ORGANISATION
        if details.get("organisation_name") and not details.get("last_name")
        else ContactKind.PERSON
    )
    contact = Contact(
        kind=kind,
        created_by_id=getattr(actor, "id", None),
        **{k: _clip(k, details[k]) for k in CONTACT_FIELDS if details.get(k)},
    )
    db.session.add(contact)
    db.session.flush()
    audit.record(
        "contact.create",
        actor=actor,
        object_type="contact",
        object_id=contact.id,
        data={"source": "intake", "email": contact.email},
    )
    return contact
