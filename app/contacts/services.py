"""Business actions on contacts: record, correct, link, merge (and undo), GDPR, retention.

Every action checks the permission, writes the audit trail (never personal data: only
which fields changed and who did it, so anonymisation leaves nothing behind in the
append-only log) and commits.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from flask import current_app
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm.exc import StaleDataError

from app.contacts import communes, identifiers
from app.contacts.duplicates import (
    CANDIDATE,
    OBVIOUS,
    REASON_LABELS,
    Profile,
    candidates_for,
    profile_of,
    street_key,
)
from app.contacts.models import (
    Channel,
    Contact,
    ContactAddress,
    ContactEmail,
    ContactKind,
    ContactLink,
    ContactMerge,
    ContactPhone,
    ContactSearchWord,
    ContactStatus,
    DuplicateCandidate,
    DuplicateStatus,
    OrganisationType,
    RetentionAction,
    RetentionRule,
)
from app.contacts.normalise import fold, name_similarity, search_words
from app.contacts.retention import retention_sources
from app.contacts.search import starts_with_word
from app.core import audit
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.extensions import db
from app.core.permissions import require

CIVILITIES = {
    "m": "M.",
    "m.": "M.",
    "mr": "M.",
    "monsieur": "M.",
    "mme": "Mme",
    "madame": "Mme",
    "mlle": "Mme",
    "mademoiselle": "Mme",
}
AFNOR_LINE_MAX = 38
STREET_RE = re.compile(
    r"^\d|\b(rue|avenue|av|bd|boulevard|place|pl|chemin|ch|impasse|imp|allee|all|route|rte|"
    r"quai|cours|square|sq|voie|passage|faubourg|fg|hameau|lieu dit)\b"
)
INSIDE_RE = re.compile(  # AFNOR line 2: inside the building, or the person's host
    r"\b(appartement|appt|apt|app|etage|chez|porte|escalier|esc|bal|chambre|logement|lgt)\b"
)
PO_BOX_RE = re.compile(r"^(bp|cs|tsa)\b|\bcedex\b")
SCALAR_FIELDS = (
    "kind",
    "organisation_type",
    "civility",
    "first_name",
    "last_name",
    "birth_name",
    "organisation_name",
    "siret",
    "siren",
    "rna",
    "public_body_code",
    "preferred_channel",
    "consent_email",
    "consent_sms",
    "consent_surveys",
    "notes",
)
MERGEABLE_FIELDS = (
    "civility",
    "first_name",
    "last_name",
    "birth_name",
    "organisation_name",
    "organisation_type",
    "siret",
    "siren",
    "rna",
    "public_body_code",
    "preferred_channel",
    "notes",
)


# Intake accepts a little less than an obvious duplicate: e.g. the same name (typos
# allowed) with the same phone number, but not a mere homonym in the same postal code.
SENDER_MATCH = 0.75


class DuplicateFound(Conflict):
    """Creating this contact would very probably duplicate an existing one (doublon)."""

    kind = "duplicate"


# --------------------------------------------------------------------------- reading


def get_contact(contact_id: int, viewer) -> Contact:
    """A contact the viewer may read, or NotFound."""
    contact = db.session.get(Contact, contact_id)
    if contact is None:
        raise NotFound("Contact introuvable.")
    require(viewer, "read", "contact", contact)
    return contact


def current_record(contact: Contact) -> Contact:
    """Where a merged record's exchanges now live (follows the chain of merges)."""
    seen = set()
    while contact.merged_into_id and contact.id not in seen:
        seen.add(contact.id)
        contact = db.session.get(Contact, contact.merged_into_id)
    return contact


def links_of(contact: Contact) -> list[ContactLink]:
    """The person↔organisation links of a contact."""
    column = ContactLink.person_id if contact.is_person else ContactLink.organisation_id
    return list(
        db.session.execute(
            select(ContactLink).where(column == contact.id).order_by(ContactLink.id)
        ).scalars()
    )


# --------------------------------------------------------------------------- validation


@dataclass
class _Cleaned:
    values: dict[str, Any] = field(default_factory=dict)
    emails: list[dict] | None = None
    phones: list[dict] | None = None
    addresses: list[dict] | None = None
    errors: list[dict] = field(default_factory=list)

    def error(self, name: str, message: str) -> None:
        self.errors.append({"field": name, "message": message})


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:limit] if text else None


def split_address_lines(text: str | None) -> dict[str, str | None]:
    """Free address lines (the contract's ``address_lines``) placed on AFNOR lines 2 to 5."""
    lines = [" ".join(line.split()) for line in (text or "").splitlines()]
    lines = [line for line in lines if line]
    placed: dict[str, str | None] = {"line2": None, "line3": None, "line4": None, "line5": None}
    if not lines:
        return placed
    street = next((i for i, line in enumerate(lines) if STREET_RE.search(fold(line))), None)
    if street is None:
        street = next(
            (i for i, line in enumerate(lines) if not PO_BOX_RE.search(fold(line))), len(lines) - 1
        )
    before, after = lines[:street], lines[street + 1 :]
    placed["line4"] = lines[street]
    if len(before) == 1:
        placed["line2" if INSIDE_RE.search(fold(before[0])) else "line3"] = before[0]
    elif len(before) >= 2:
        placed["line2"], placed["line3"] = before[-2], before[-1]
    if after:
        placed["line5"] = after[0]
    if len(before) > 2 or len(after) > 1:
        placed["overflow"] = "\n".join(before[:-2] + after[1:])
    return placed


def _clean_address(raw: dict, name: str, out: _Cleaned) -> dict | None:
    address: dict[str, Any] = {
        "label": _text(raw.get("label"), 60),
        "is_primary": bool(raw.get("is_primary")),
    }
    if "address_lines" in raw and not any(raw.get(k) for k in ("line2", "line3", "line4", "line5")):
        placed = split_address_lines(raw.get("address_lines"))
        if placed.pop("overflow", None):
            out.error(
                f"{name}address_lines",
                "Une adresse postale compte au plus 4 lignes avant le code postal.",
            )
        raw = {**raw, **placed}
    for line in ("line2", "line3", "line4", "line5"):
        value = _text(raw.get(line), 200)
        if value and len(value) > AFNOR_LINE_MAX:
            out.error(
                f"{name}{line}" if "address_lines" not in raw else f"{name}address_lines",
                f"Au plus {AFNOR_LINE_MAX} caractères par ligne (norme postale).",
            )
        address[line] = value
    country = (_text(raw.get("country"), 2) or "FR").upper()
    address["country"] = country
    postal_code = _text(raw.get("postal_code"), 10) or ""
    city = _text(raw.get("city"), 120) or ""
    if not postal_code and not city and not any(address[f"line{i}"] for i in (2, 3, 4, 5)):
        return None
    if country == "FR":
        try:
            commune = communes.check_commune(postal_code, city)
        except ValueError as exc:
            field_name = "city" if postal_code and "commune" in str(exc).lower() else "postal_code"
            out.error(f"{name}{field_name}", str(exc))
            return None
        address["commune_code"] = commune.code
    elif not city:
        out.error(f"{name}city", "La localité est obligatoire.")
        return None
    if len(city) > AFNOR_LINE_MAX:
        out.error(f"{name}city", f"Au plus {AFNOR_LINE_MAX} caractères (norme postale).")
    address["postal_code"], address["city"] = postal_code, city
    return address


def _checked_channels(out, items, key, check, field, first_label=None) -> list[dict]:
    """E-mails or phone numbers checked one by one (errors under ``field.N.key``, or
    ``first_label`` for the first item when it came from the contract's single field),
    without repeats."""
    kept, seen = [], set()
    for index, item in enumerate(items):
        label = first_label if first_label and index == 0 else f"{field}.{index}.{key}"
        try:
            value = check(item.get(key))
        except ValueError as exc:
            out.error(label, str(exc))
            continue
        if value not in seen:
            seen.add(value)
            kept.append(
                {
                    key: value,
                    "label": _text(item.get("label"), 60),
                    "is_primary": bool(item.get("is_primary")),
                }
            )
    return kept


def _clean(data: dict, contact: Contact | None) -> _Cleaned:
    """Check and normalise incoming fields (a creation, or the fields a PATCH names)."""
    out = _Cleaned()
    v = out.values
    kind_raw = data.get("kind", contact.kind if contact else ContactKind.PERSON)
    try:
        kind = ContactKind(kind_raw or ContactKind.PERSON)
    except ValueError:
        out.error("kind", "Valeur non autorisée ; choix possibles : person, organisation.")
        kind = ContactKind.PERSON
    if "kind" in data or contact is None:
        v["kind"] = kind

    def given(name: str) -> bool:
        return name in data

    for name, limit in (
        ("first_name", 120),
        ("last_name", 120),
        ("birth_name", 120),
        ("organisation_name", 300),
        ("public_body_code", 20),
    ):
        if given(name):
            v[name] = _text(data[name], limit)
    if given("notes"):
        v["notes"] = (data["notes"] or "").strip() or None
    if given("civility"):
        raw = _text(data["civility"], 20)
        if raw and raw.lower() not in CIVILITIES:
            out.error("civility", "Civilité attendue : M. ou Mme (ou vide).")
        v["civility"] = CIVILITIES.get((raw or "").lower()) if raw else None
    if given("siret"):
        v["siret"] = None
        if data["siret"]:
            try:
                v["siret"] = identifiers.check_siret(str(data["siret"]))
                v["siren"] = identifiers.siren_of(v["siret"])
            except ValueError as exc:
                out.error("siret", str(exc))
    if given("siren") and "siren" not in v:
        v["siren"] = None
        if data["siren"]:
            try:
                v["siren"] = identifiers.check_siren(str(data["siren"]))
            except ValueError as exc:
                out.error("siren", str(exc))
    if given("rna"):
        v["rna"] = None
        if data["rna"]:
            try:
                v["rna"] = identifiers.check_rna(str(data["rna"]))
            except ValueError as exc:
                out.error("rna", str(exc))
    if given("organisation_type"):
        try:
            v["organisation_type"] = (
                OrganisationType(data["organisation_type"]) if data["organisation_type"] else None
            )
        except ValueError:
            out.error("organisation_type", "Catégorie inconnue.")
    if given("preferred_channel"):
        try:
            v["preferred_channel"] = (
                Channel(data["preferred_channel"]) if data["preferred_channel"] else None
            )
        except ValueError:
            out.error("preferred_channel", "Canal inconnu.")
    for name in ("consent_email", "consent_sms", "consent_surveys"):
        if given(name):
            v[name] = bool(data[name])

    # E-mails: the contract's ``email`` is the preferred one; ``emails`` lists them all.
    if given("emails") or given("email"):
        items = (
            list(data.get("emails") or [])
            if given("emails")
            else ([{"email": e.email, "label": e.label} for e in contact.emails] if contact else [])
        )
        if given("email"):
            replaced = {(data["email"] or "").strip().lower()}
            if contact is not None and not given("emails") and contact.emails:
                replaced.add(contact.email or "")  # the preferred address is replaced
            items = [i for i in items if (i.get("email") or "").lower() not in replaced]
            if data["email"]:
                items.insert(0, {"email": data["email"], "is_primary": True})
        first = "email" if given("email") and data.get("email") else None
        out.emails = _checked_channels(
            out, items, "email", lambda v: identifiers.check_email(v or ""), "emails", first
        )
    if given("phones") or given("phone"):
        items = (
            list(data.get("phones") or [])
            if given("phones")
            else (
                [{"number": p.number, "label": p.label} for p in contact.phones] if contact else []
            )
        )
        if given("phone"):
            if contact is not None and not given("phones") and items and contact.phones:
                items = items[1:]
            if data["phone"]:
                items.insert(0, {"number": data["phone"], "is_primary": True})
        first = "phone" if given("phone") and data.get("phone") else None
        out.phones = _checked_channels(
            out, items, "number", lambda v: identifiers.check_phone(str(v or "")), "phones", first
        )
    contract_address = any(given(k) for k in ("address_lines", "postal_code", "city", "country"))
    if given("addresses") or contract_address:
        if given("addresses"):
            items = [dict(a) for a in data.get("addresses") or []]
        else:
            items = [_address_dict(a) for a in contact.addresses] if contact else []
        if contract_address:
            # The contract's fields describe the preferred address: they amend it.
            primary = {} if given("addresses") or not items else items.pop(0)
            if given("address_lines"):
                for key in ("line2", "line3", "line4", "line5"):
                    primary.pop(key, None)
            for key in ("address_lines", "postal_code", "city", "country"):
                if given(key):
                    primary[key] = data[key]
            items.insert(0, {**primary, "is_primary": True})
        out.addresses = []
        for index, item in enumerate(items):
            prefix = "" if contract_address and index == 0 else f"addresses.{index}."
            address = _clean_address(item, prefix, out)
            if address is not None:
                out.addresses.append(address)

    # Rules that depend on the kind, checked on the resulting record.
    final = {
        name: v.get(name, getattr(contact, name, None) if contact else None)
        for name in ("last_name", "organisation_name", "siret", "rna", "first_name")
    }
    if kind == ContactKind.PERSON:
        if not final["last_name"]:
            out.error("last_name", "Le nom est obligatoire.")
        for name in ("siret", "rna"):
            if final[name] and name in data:
                out.error(name, "Un particulier n'a pas de numéro SIRET ni RNA.")
    else:
        if not final["organisation_name"]:
            out.error("organisation_name", "La raison sociale est obligatoire.")
        if contact is None and "organisation_type" not in v:
            v["organisation_type"] = (
                OrganisationType.COMPANY
                if final["siret"]
                else OrganisationType.ASSOCIATION
                if final["rna"]
                else OrganisationType.OTHER
            )
    return out


_ADDRESS_KEYS = (
    "label",
    "is_primary",
    "line2",
    "line3",
    "line4",
    "line5",
    "postal_code",
    "city",
    "country",
)


def _address_dict(address: ContactAddress) -> dict:
    return {
        "label": address.label,
        "is_primary": address.is_primary,
        "line2": address.line2,
        "line3": address.line3,
        "line4": address.line4,
        "line5": address.line5,
        "postal_code": address.postal_code,
        "city": address.city,
        "country": address.country,
    }


# --------------------------------------------------------------------------- writing


def _apply(contact: Contact, cleaned: _Cleaned) -> list[str]:
    """Write cleaned values on the record; return the names of the fields that changed."""
    changed = []
    for name, value in cleaned.values.items():
        if getattr(contact, name) != value:
            setattr(contact, name, value)
            changed.append(name)
    if cleaned.emails is not None:
        wanted = [(e["email"], e["label"]) for e in _primary_first(cleaned.emails)]
        if wanted != [(e.email, e.label) for e in contact.emails]:
            contact.emails = [
                ContactEmail(email=email, label=label, is_primary=(i == 0))
                for i, (email, label) in enumerate(wanted)
            ]
            changed.append("emails")
    if cleaned.phones is not None:
        wanted = [(p["number"], p["label"]) for p in _primary_first(cleaned.phones)]
        if wanted != [(p.number, p.label) for p in contact.phones]:
            contact.phones = [
                ContactPhone(number=number, label=label, is_primary=(i == 0))
                for i, (number, label) in enumerate(wanted)
            ]
            changed.append("phones")
    if cleaned.addresses is not None:
        wanted = [
            {**item, "is_primary": index == 0}
            for index, item in enumerate(_primary_first(cleaned.addresses))
        ]
        if [{k: w.get(k) for k in _ADDRESS_KEYS} for w in wanted] != [
            {k: v for k, v in _address_dict(a).items()} for a in contact.addresses
        ]:
            rows = []
            for item in wanted:
                row = ContactAddress(**item)
                row.search_street = street_key(row.postal_code, row.line4)
                rows.append(row)
            contact.addresses = rows
            changed.append("addresses")
    return changed


def _primary_first(items: list[dict]) -> list[dict]:
    primary = next((i for i in items if i.get("is_primary")), None)
    return ([primary] + [i for i in items if i is not primary]) if primary else items


def refresh_derived(contact: Contact) -> None:
    """Keep the contract's preferred fields and the search columns in step with the rows."""
    emails = sorted(contact.emails, key=lambda e: (not e.is_primary, e.id or 0))
    phones = sorted(contact.phones, key=lambda p: (not p.is_primary, p.id or 0))
    addresses = sorted(contact.addresses, key=lambda a: (not a.is_primary, a.id or 0))
    contact.email = emails[0].email if emails else None
    contact.phone = phones[0].number if phones else None
    primary = addresses[0] if addresses else None
    contact.address_lines = "\n".join(primary.body_lines) or None if primary else None
    contact.postal_code = primary.postal_code if primary else None
    contact.city = primary.city if primary else None
    contact.commune_code = primary.commune_code if primary else None
    contact.search_city = fold(contact.city)
    contact.search_name = search_name_of(contact)
    remember_search_words([contact.search_name])


def remember_search_words(names) -> None:
    """Add the words of folded names to the typo-correction dictionary (idempotent)."""
    words = set()
    for name in names:
        words |= search_words(name or "")
    if not words:
        return
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    rows = [{"word": w} for w in sorted(words)]
    for start in range(0, len(rows), 5000):
        db.session.execute(
            dialect_insert(ContactSearchWord)
            .values(rows[start : start + 5000])
            .on_conflict_do_nothing()
        )


def forget_unused_words(words: set[str]) -> None:
    """Drop dictionary words no name uses any more (an anonymised rare surname included)."""
    for word in words:  # folded: only a-z, 0-9, nothing to escape in LIKE
        used = db.session.execute(
            select(Contact.id)
            .where(
                or_(
                    starts_with_word(word),
                    Contact.search_name.like("% " + word + " %"),
                    Contact.search_name.like("% " + word),
                )
            )
            .limit(1)
        ).first()
        if used is None:
            db.session.execute(
                ContactSearchWord.__table__.delete().where(ContactSearchWord.word == word)
            )


def search_name_of(contact: Contact) -> str:
    """The folded name a record is searched and sorted by (« dupont marie »)."""
    if contact.status == ContactStatus.ANONYMISED:
        return ""
    return search_name_for(
        contact.kind,
        contact.last_name,
        contact.first_name,
        contact.birth_name,
        contact.organisation_name,
    )


def search_name_for(
    kind: str,
    last_name: str | None,
    first_name: str | None,
    birth_name: str | None,
    organisation_name: str | None,
) -> str:
    """The search name from its parts: organisation name, or « last first [birth] »."""
    if kind == ContactKind.ORGANISATION:
        return fold(organisation_name)[:500]
    parts = [last_name, first_name]
    if birth_name and fold(birth_name) != fold(last_name):
        parts.append(birth_name)
    return fold(" ".join(p for p in parts if p))[:500]


def _profile_from(contact: Contact) -> Profile:
    return Profile(
        id=contact.id,
        kind=str(contact.kind),
        name=search_name_of(contact),
        emails={e.email for e in contact.emails},
        phones={p.number for p in contact.phones},
        postal_codes={a.postal_code for a in contact.addresses},
        streets={street_key(a.postal_code, a.line4) for a in contact.addresses if a.line4},
        siret=contact.siret,
        rna=contact.rna,
    )


def duplicate_json(contact: Contact, score: float, reasons: list[str]) -> dict:
    """How a probable duplicate is described to the caller."""
    return {
        "id": contact.id,
        "display_name": contact.display_name,
        "score": score,
        "reasons": reasons,
        "reason_labels": [REASON_LABELS.get(r, r) for r in reasons],
        "postal_code": contact.postal_code,
        "city": contact.city,
        "email": contact.email,
    }


def create_contact(data: dict, actor, *, allow_duplicate: bool = False):
    """Record a new correspondent; returns ``(contact, probable duplicates)``.

    An obvious duplicate (score ≥ OBVIOUS) is refused with ``DuplicateFound`` unless
    ``allow_duplicate``; weaker candidates are returned and queued for review.
    """
    require(actor, "create", "contact")
    contact, found = _record_contact(data, actor, allow_duplicate=allow_duplicate)
    db.session.commit()
    return contact, found


def _record_contact(data: dict, actor, *, allow_duplicate: bool, source: str | None = None):
    """Check, record and audit a new contact in the caller's transaction (see
    ``create_contact``); ``actor`` None is the system (an item arriving on its own)."""
    cleaned = _clean(data, None)
    if cleaned.errors:
        raise ValidationFailed("Le contact ne peut pas être enregistré.", errors=cleaned.errors)
    contact = Contact(
        created_by_id=getattr(actor, "id", None), status=ContactStatus.ACTIVE, version=1
    )
    with db.session.no_autoflush:
        _apply(contact, cleaned)
        if any(k in cleaned.values for k in ("consent_email", "consent_sms", "consent_surveys")):
            contact.consent_updated_at = utcnow()
        refresh_derived(contact)
        found = candidates_for(_profile_from(contact), threshold=CANDIDATE)
    obvious = [item for item in found if item[1] >= OBVIOUS]
    if obvious and not allow_duplicate:
        raise DuplicateFound(
            "Doublon probable : ce contact semble déjà enregistré "
            f"(n° {obvious[0][0].id}, {obvious[0][0].display_name}). Renvoyez la demande "
            "avec allow_duplicate=true pour le créer quand même.",
            duplicates=[duplicate_json(c, s, r) for c, s, r in found],
        )
    db.session.add(contact)
    db.session.flush()
    for other, score, reasons in found:
        queue_duplicate_pair(contact, other, score, reasons)
    data = {
        "kind": str(contact.kind),
        "duplicates": [c.id for c, _s, _r in found],
        "allowed_duplicate": bool(obvious),
    }
    if source:
        data["source"] = source
    audit.record(
        "contact.create", actor=actor, object_type="contact", object_id=contact.id, data=data
    )
    return contact, found


def update_contact(
    contact: Contact, data: dict, actor, *, expected_version: int | None = None
) -> Contact:
    """Correct a contact; ``expected_version`` guards against overwriting someone's change."""
    require(actor, "update", "contact", contact)
    if contact.status == ContactStatus.MERGED:
        raise Conflict(
            f"Ce contact a été fusionné dans la fiche n° {contact.merged_into_id}.",
            merged_into_id=contact.merged_into_id,
        )
    if contact.status == ContactStatus.ANONYMISED:
        raise Conflict("Ce contact a été anonymisé : il ne peut plus être modifié.")
    if expected_version is not None and expected_version != contact.version:
        raise Conflict(
            "Ce contact a été modifié entre-temps par quelqu'un d'autre ; "
            "rechargez la fiche avant de la modifier.",
            current_version=contact.version,
        )
    cleaned = _clean(data, contact)
    if cleaned.errors:
        raise ValidationFailed("Le contact ne peut pas être modifié.", errors=cleaned.errors)
    with db.session.no_autoflush:
        changed = _apply(contact, cleaned)
    if not changed:
        return contact
    if {"consent_email", "consent_sms", "consent_surveys"} & set(changed):
        contact.consent_updated_at = utcnow()
    contact.version += 1
    contact.updated_at = utcnow()
    try:  # the UPDATE carries « WHERE version = <read version> » (mapper version_id_col)
        db.session.flush()
    except StaleDataError as exc:
        db.session.rollback()
        raise Conflict(
            "Ce contact a été modifié entre-temps par quelqu'un d'autre ; "
            "rechargez la fiche avant de la modifier."
        ) from exc
    refresh_derived(contact)
    audit.record(
        "contact.update",
        actor=actor,
        object_type="contact",
        object_id=contact.id,
        data={"fields": sorted(changed), "version": contact.version},
    )
    db.session.commit()
    return contact


def link_person(person: Contact, organisation: Contact, role: str | None, actor) -> ContactLink:
    """Record that a person acts for an organisation (gérant, président…)."""
    require(actor, "link", "contact", person)
    if not person.is_person or organisation.is_person:
        raise ValidationFailed(
            "Un lien relie une personne à une organisation.",
            errors=[{"field": "organisation_id", "message": "Choisissez une organisation."}],
        )
    existing = db.session.execute(
        select(ContactLink).where(
            ContactLink.person_id == person.id, ContactLink.organisation_id == organisation.id
        )
    ).scalar_one_or_none()
    if existing is not None:
        existing.role = _text(role, 120)
        link = existing
    else:
        link = ContactLink(
            person_id=person.id, organisation_id=organisation.id, role=_text(role, 120)
        )
        db.session.add(link)
    db.session.flush()
    for side in (person, organisation):
        audit.record(
            "contact.link",
            actor=actor,
            object_type="contact",
            object_id=side.id,
            data={"link_id": link.id, "person_id": person.id, "organisation_id": organisation.id},
        )
    db.session.commit()
    return link


def unlink(link: ContactLink, actor) -> None:
    """Remove a person↔organisation link."""
    require(actor, "link", "contact", link.person)
    for side in (link.person_id, link.organisation_id):
        audit.record(
            "contact.unlink",
            actor=actor,
            object_type="contact",
            object_id=side,
            data={"person_id": link.person_id, "organisation_id": link.organisation_id},
        )
    db.session.delete(link)
    db.session.commit()


# --------------------------------------------------------------------------- duplicates


def queue_duplicate_pair(a: Contact, b: Contact, score: float, reasons: list[str]) -> None:
    """Put a pair in the review queue (or refresh its score), in the caller's transaction."""
    first, second = sorted((a.id, b.id))
    row = db.session.execute(
        select(DuplicateCandidate).where(
            DuplicateCandidate.first_id == first, DuplicateCandidate.second_id == second
        )
    ).scalar_one_or_none()
    if row is None:
        db.session.add(
            DuplicateCandidate(
                first_id=first,
                second_id=second,
                score=score,
                reasons=reasons,
                status=DuplicateStatus.OPEN,
            )
        )
    elif row.status == DuplicateStatus.OPEN:
        row.score, row.reasons = score, reasons


def find_duplicates(*, since: datetime | None = None, batch: int = 500) -> int:
    """Score the contacts changed since ``since`` (all when None) against the base; queue pairs.

    Returns how many pairs are now open. Pairs an agent dismissed are never proposed again.
    """
    stmt = select(Contact.id).where(Contact.status == ContactStatus.ACTIVE).order_by(Contact.id)
    if since is not None:
        stmt = stmt.where(Contact.updated_at >= since)
    ids = list(db.session.execute(stmt).scalars())
    for start in range(0, len(ids), batch):
        for contact in db.session.execute(
            select(Contact).where(Contact.id.in_(ids[start : start + batch]))
        ).scalars():
            for other, score, reasons in candidates_for(profile_of(contact)):
                queue_duplicate_pair(contact, other, score, reasons)
        db.session.commit()
    return (
        db.session.scalar(
            select(func.count())
            .select_from(DuplicateCandidate)
            .where(DuplicateCandidate.status == DuplicateStatus.OPEN)
        )
        or 0
    )


def open_duplicates(viewer, *, limit: int = 50, offset: int = 0) -> list[DuplicateCandidate]:
    """The review queue: open pairs of still-active contacts, most certain first."""
    require(viewer, "review_duplicates", "contact")
    first = Contact.__table__.alias("first_contact")
    second = Contact.__table__.alias("second_contact")
    stmt = (
        select(DuplicateCandidate)
        .join(first, first.c.id == DuplicateCandidate.first_id)
        .join(second, second.c.id == DuplicateCandidate.second_id)
        .where(
            DuplicateCandidate.status == DuplicateStatus.OPEN,
            first.c.status == ContactStatus.ACTIVE.value,
            second.c.status == ContactStatus.ACTIVE.value,
        )
        .order_by(DuplicateCandidate.score.desc(), DuplicateCandidate.id)
        .offset(offset)
        .limit(limit)
    )
    return list(db.session.execute(stmt).scalars())


def get_duplicate(candidate_id: int, viewer) -> DuplicateCandidate:
    """One pair of the review queue."""
    require(viewer, "review_duplicates", "contact")
    candidate = db.session.get(DuplicateCandidate, candidate_id)
    if candidate is None:
        raise NotFound("Paire de doublons introuvable.")
    return candidate


def dismiss_duplicate(candidate: DuplicateCandidate, actor) -> None:
    """Mark a pair as « pas un doublon »: it leaves the queue for good."""
    require(actor, "review_duplicates", "contact")
    candidate.status = DuplicateStatus.DISMISSED
    candidate.reviewed_at, candidate.reviewed_by_id = utcnow(), actor.id
    audit.record(
        "contact.duplicate_dismissed",
        actor=actor,
        object_type="contact",
        object_id=candidate.first_id,
        data={"pair": [candidate.first_id, candidate.second_id]},
    )
    db.session.commit()


# --------------------------------------------------------------------------- merge


def _state(contact: Contact) -> dict:
    return {name: _jsonable(getattr(contact, name)) for name in MERGEABLE_FIELDS}


def _jsonable(value):
    return str(value) if hasattr(value, "value") else value


def _referencing_columns():
    """Every foreign key to ``contact.id`` in the schema, whichever domain declares it."""
    skip = {
        ("contact", "merged_into_id"),
        ("contact_merge", "survivor_id"),
        ("contact_merge", "merged_id"),
        ("contact_duplicate", "first_id"),
        ("contact_duplicate", "second_id"),
    }
    for table in db.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if (
                fk.column.table.name == "contact"
                and fk.column.name == "id"
                and (table.name, fk.parent.name) not in skip
            ):
                yield table, fk.parent


def merge_contacts(
    survivor: Contact, merged: Contact, actor, *, choices: dict[str, str] | None = None
) -> ContactMerge:
    """Absorb ``merged`` into ``survivor``: every exchange moves, nothing is deleted.

    ``choices`` picks, field by field, the value to keep ("survivor" or "merged"); empty
    fields of the survivor are filled from the merged record.
    """
    require(actor, "merge", "contact", survivor)
    if survivor.id == merged.id:
        raise ValidationFailed(
            "Une fiche ne peut pas être fusionnée avec elle-même.",
            errors=[{"field": "merged_id", "message": "Même fiche."}],
        )
    for contact in (survivor, merged):
        if contact.status != ContactStatus.ACTIVE:
            raise Conflict(f"La fiche n° {contact.id} n'est plus active (fusionnée ou anonymisée).")
    if survivor.kind != merged.kind:
        raise ValidationFailed(
            "Une personne ne peut pas être fusionnée avec une organisation.",
            errors=[{"field": "merged_id", "message": "Types différents."}],
        )
    choices = choices or {}
    before = _state(survivor)
    chosen = []
    for name in MERGEABLE_FIELDS:
        mine, theirs = getattr(survivor, name), getattr(merged, name)
        if theirs in (None, "") or mine == theirs:
            continue
        if choices.get(name) == "merged" or mine in (None, ""):
            setattr(survivor, name, theirs)
            chosen.append(name)
    primary_ids = {
        "emails": [e.id for e in merged.emails if e.is_primary],
        "phones": [p.id for p in merged.phones if p.is_primary],
        "addresses": [a.id for a in merged.addresses if a.is_primary],
    }
    # Rows that would duplicate what the survivor has stay on the merged record.
    keep_back = {
        "contact_email": {
            e.id for e in merged.emails if e.email in {x.email for x in survivor.emails}
        },
        "contact_phone": {
            p.id for p in merged.phones if p.number in {x.number for x in survivor.phones}
        },
        "contact_address": {
            a.id
            for a in merged.addresses
            if a.search_street in {x.search_street for x in survivor.addresses}
        },
        "contact_link": {
            link.id
            for link in db.session.execute(
                select(ContactLink).where(
                    or_(
                        ContactLink.person_id == merged.id, ContactLink.organisation_id == merged.id
                    )
                )
            ).scalars()
            if _link_conflicts(link, merged.id, survivor.id)
        },
    }
    db.session.flush()
    moved: dict[str, list] = {}
    for table, column in _referencing_columns():
        pk = list(table.primary_key.columns)
        rows = [list(r) for r in db.session.execute(select(*pk).where(column == merged.id)).all()]
        rows = [r for r in rows if not (len(pk) == 1 and r[0] in keep_back.get(table.name, ()))]
        if not rows:
            continue
        _repoint(table, pk, column, rows, survivor.id)
        moved[f"{table.name}.{column.name}"] = rows
    db.session.expire_all()
    for row in survivor.emails + survivor.phones + survivor.addresses:
        if row.contact_id == survivor.id and row.id in (
            primary_ids["emails"] + primary_ids["phones"] + primary_ids["addresses"]
        ):
            row.is_primary = False
    merged.status = ContactStatus.MERGED
    merged.merged_into_id = survivor.id
    merged.version += 1
    survivor.version += 1
    survivor.updated_at = merged.updated_at = utcnow()
    db.session.flush()
    db.session.refresh(survivor)
    refresh_derived(survivor)
    merge = ContactMerge(
        survivor_id=survivor.id,
        merged_id=merged.id,
        merged_by_id=actor.id,
        merged_at=utcnow(),
        snapshot={
            "survivor_before": before,
            "survivor_after": _state(survivor),
            "moved": moved,
            "primary_ids": primary_ids,
            "fields": chosen,
        },
    )
    db.session.add(merge)
    db.session.execute(
        update(DuplicateCandidate)
        .where(
            DuplicateCandidate.first_id == min(survivor.id, merged.id),
            DuplicateCandidate.second_id == max(survivor.id, merged.id),
        )
        .values(status=DuplicateStatus.MERGED, reviewed_at=utcnow(), reviewed_by_id=actor.id)
    )
    db.session.flush()
    data = {
        "merge_id": merge.id,
        "survivor_id": survivor.id,
        "merged_id": merged.id,
        "fields": chosen,
        "moved": {k: len(v) for k, v in moved.items()},
    }
    audit.record(
        "contact.merge", actor=actor, object_type="contact", object_id=survivor.id, data=data
    )
    audit.record(
        "contact.merged_into", actor=actor, object_type="contact", object_id=merged.id, data=data
    )
    db.session.commit()
    return merge


def _link_conflicts(link: ContactLink, merged_id: int, survivor_id: int) -> bool:
    person = survivor_id if link.person_id == merged_id else link.person_id
    organisation = survivor_id if link.organisation_id == merged_id else link.organisation_id
    if person == organisation:
        return True
    return (
        db.session.execute(
            select(ContactLink.id).where(
                ContactLink.person_id == person,
                ContactLink.organisation_id == organisation,
                ContactLink.id != link.id,
            )
        ).first()
        is not None
    )


def _repoint(table, pk, column, rows: list[list], target: int) -> None:
    if len(pk) == 1:
        for start in range(0, len(rows), 500):
            ids = [r[0] for r in rows[start : start + 500]]
            db.session.execute(table.update().where(pk[0].in_(ids)).values({column.name: target}))
        return
    for row in rows:
        db.session.execute(
            table.update()
            .where(and_(*[c == value for c, value in zip(pk, row, strict=True)]))
            .values({column.name: target})
        )


def get_merge(merge_id: int, viewer) -> ContactMerge:
    """A recorded merge."""
    require(viewer, "unmerge", "contact")
    merge = db.session.get(ContactMerge, merge_id)
    if merge is None:
        raise NotFound("Fusion introuvable.")
    return merge


def merges_of(contact: Contact) -> list[ContactMerge]:
    """The merges this record took part in, newest first."""
    return list(
        db.session.execute(
            select(ContactMerge)
            .where(
                or_(ContactMerge.survivor_id == contact.id, ContactMerge.merged_id == contact.id)
            )
            .order_by(ContactMerge.id.desc())
        ).scalars()
    )


def undo_merge(merge: ContactMerge, actor) -> Contact:
    """Give the merged record back its exchanges and identity; returns it."""
    require(actor, "unmerge", "contact", merge.survivor)
    if merge.undone_at is not None:
        raise Conflict("Cette fusion a déjà été annulée.")
    survivor, merged = merge.survivor, merge.merged
    if merged.status != ContactStatus.MERGED or merged.merged_into_id != survivor.id:
        raise Conflict("La fiche absorbée a changé depuis la fusion : annulation impossible.")
    if survivor.status != ContactStatus.ACTIVE:
        raise Conflict(
            f"La fiche n° {survivor.id} a elle-même été fusionnée ou anonymisée : "
            "annulez d'abord cette opération."
        )
    snapshot = merge.snapshot or {}
    tables = {t.name: t for t in db.metadata.sorted_tables}
    for key, rows in (snapshot.get("moved") or {}).items():
        table_name, column_name = key.split(".", 1)
        table = tables.get(table_name)
        if table is None:
            continue
        column = table.c[column_name]
        pk = list(table.primary_key.columns)
        still_here = [
            r
            for r in rows
            if db.session.execute(
                select(column).where(and_(*[c == v for c, v in zip(pk, r, strict=True)]))
            ).scalar()
            == survivor.id
        ]
        _repoint(table, pk, column, still_here, merged.id)
    primary = [i for ids in (snapshot.get("primary_ids") or {}).values() for i in ids]
    db.session.expire_all()
    for row in merged.emails + merged.phones + merged.addresses:
        if row.id in primary:
            row.is_primary = True
    after, before = snapshot.get("survivor_after") or {}, snapshot.get("survivor_before") or {}
    restored = []
    for name in snapshot.get("fields") or []:
        current = _jsonable(getattr(survivor, name))
        if current == after.get(name):  # not changed by anyone since the merge
            column_type = Contact.__table__.c[name].type
            value = before.get(name)
            if (
                value is not None
                and hasattr(column_type, "enum_class")
                and column_type.enum_class is not None
            ):
                value = column_type.enum_class(value)
            setattr(survivor, name, value)
            restored.append(name)
    merged.status = ContactStatus.ACTIVE
    merged.merged_into_id = None
    merged.version += 1
    survivor.version += 1
    merge.undone_at, merge.undone_by_id = utcnow(), actor.id
    survivor.updated_at = merged.updated_at = utcnow()
    db.session.flush()
    for contact in (survivor, merged):
        db.session.refresh(contact)
        refresh_derived(contact)
    db.session.execute(
        update(DuplicateCandidate)
        .where(
            DuplicateCandidate.first_id == min(survivor.id, merged.id),
            DuplicateCandidate.second_id == max(survivor.id, merged.id),
        )
        .values(status=DuplicateStatus.OPEN)
    )
    data = {
        "merge_id": merge.id,
        "survivor_id": survivor.id,
        "merged_id": merged.id,
        "fields": restored,
    }
    for contact in (survivor, merged):
        audit.record(
            "contact.unmerge", actor=actor, object_type="contact", object_id=contact.id, data=data
        )
    db.session.commit()
    return merged


# --------------------------------------------------------------------------- intake


@dataclass
class SenderMatch:
    """What intake learns about a sender: the contact found, or a pre-filled proposal."""

    contact: Contact | None
    confidence: float
    reasons: list[str]
    proposal: dict


def _split_display_name(display: str) -> dict:
    """« DUPONT Jean », « Jean Dupont », « Mme Claire Martin » → civility, first, last."""
    words = display.replace(",", " ").split()
    result: dict[str, Any] = {}
    if words and words[0].lower().rstrip(".") in {c.rstrip(".") for c in CIVILITIES}:
        result["civility"] = CIVILITIES.get(words.pop(0).lower())
    if not words:
        return result
    capitals = [w for w in words if w.isupper() and len(w) > 1]
    if capitals and len(capitals) < len(words):
        result["last_name"] = " ".join(capitals)
        result["first_name"] = " ".join(w for w in words if w not in capitals)
    elif len(words) == 1:
        result["last_name"] = words[0]
    else:
        result["first_name"], result["last_name"] = words[0], " ".join(words[1:])
    return result


def match_sender(*, email: str | None = None, data: dict | None = None) -> SenderMatch:
    """Find the contact behind an incoming item (``From:`` header or a web form's fields).

    ``email`` may be a bare address or a header (« Jean Dupont <jean@exemple.fr> »); ``data``
    holds contact fields (names, postal code, phone, SIRET…) and optionally ``name``, a
    display name used when the names are not given apart. When nobody matches, the
    proposal holds what a new contact should be pre-filled with.
    """
    data = dict(data or {})
    display, address = parseaddr(email or "") if email else ("", "")
    display = display or str(data.pop("name", None) or "").strip()
    proposal: dict[str, Any] = {k: v for k, v in data.items() if v not in (None, "")}
    if display and not any(proposal.get(k) for k in ("last_name", "organisation_name")):
        proposal.update(
            {k: v for k, v in _split_display_name(display).items() if not proposal.get(k)}
        )
    try:
        address = identifiers.check_email(address or data.get("email") or "")
        proposal["email"] = address
    except ValueError:
        address = ""
    proposal.setdefault(
        "kind",
        "organisation"
        if proposal.get("organisation_name") and not proposal.get("last_name")
        else "person",
    )
    wanted_name = fold(
        " ".join(
            str(proposal.get(k) or "") for k in ("last_name", "first_name", "organisation_name")
        )
    )

    def active(contacts) -> list[Contact]:
        found = {}
        for contact in contacts:
            contact = current_record(contact)
            if contact.status == ContactStatus.ACTIVE:
                found[contact.id] = contact
        return list(found.values())

    if address:
        owners = active(
            db.session.execute(
                select(Contact).join(ContactEmail).where(ContactEmail.email == address)
            ).scalars()
        )
        if len(owners) == 1:
            return SenderMatch(owners[0], 1.0, ["email"], proposal)
        if owners:
            best = max(
                owners, key=lambda c: (name_similarity(c.search_name, wanted_name), c.updated_at)
            )
            return SenderMatch(best, 0.8, ["email", "several_contacts"], proposal)
    identifiers_found = []
    for name, column, check in (
        ("siret", Contact.siret, identifiers.check_siret),
        ("rna", Contact.rna, identifiers.check_rna),
    ):
        if proposal.get(name):
            try:
                value = check(str(proposal[name]))
            except ValueError:
                continue
            identifiers_found += [
                (c, name)
                for c in active(
                    db.session.execute(select(Contact).where(column == value)).scalars()
                )
            ]
    if identifiers_found:
        contact, reason = identifiers_found[0]
        return SenderMatch(contact, 1.0, [reason], proposal)
    phones = set()
    if proposal.get("phone"):
        with contextlib.suppress(ValueError):
            phones.add(identifiers.check_phone(str(proposal["phone"])))
    postal_code = str(proposal.get("postal_code") or "").strip()
    profile = Profile(
        id=None,
        kind=str(proposal["kind"]),
        name=wanted_name,
        emails={address} if address else set(),
        phones=phones,
        postal_codes={postal_code} if postal_code else set(),
        streets={
            street_key(postal_code, split_address_lines(proposal.get("address_lines")).get("line4"))
        }
        if postal_code and proposal.get("address_lines")
        else set(),
    )
    if wanted_name or phones:
        found = candidates_for(profile, threshold=SENDER_MATCH, limit=1)
        if found:
            contact, score, reasons = found[0]
            return SenderMatch(contact, score, reasons, proposal)
    return SenderMatch(None, 0.0, [], proposal)


# The contract's fields an incoming item may carry about its sender.
SENDER_FIELDS = (
    "kind",
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
_ADDRESS_FIELDS = {"address_lines", "postal_code", "city", "country"}


def resolve_sender(
    *, email: str | None = None, data: dict | None = None, actor=None
) -> SenderMatch:
    """The contact behind an incoming item: the one ``match_sender`` finds, else a new
    contact made from its pre-filled proposal, in the caller's transaction.

    The contact base's rules apply to the new record: its checks (a field they refuse is
    left out rather than losing the item), and duplicate detection — an obvious duplicate
    is taken as the sender, weaker ones are queued for review. Without a name nothing is
    created: ``contact`` is None and the proposal is returned for a person to complete.
    ``actor`` is the agent registering the item, None when it arrived on its own.
    """
    found = match_sender(email=email, data=data)
    if found.contact is not None:
        return found
    proposal = {k: v for k, v in found.proposal.items() if k in SENDER_FIELDS and v}
    if not (proposal.get("last_name") or proposal.get("organisation_name")):
        return found
    for _attempt in range(3):
        try:
            contact, _candidates = _record_contact(
                proposal, actor, allow_duplicate=False, source="intake"
            )
        except DuplicateFound as error:
            best = max(error.extra["duplicates"], key=lambda d: d["score"])
            contact = db.session.get(Contact, best["id"])
            return SenderMatch(
                contact, best["score"], ["duplicate", *best["reasons"]], found.proposal
            )
        except ValidationFailed as error:
            refused = {str(e.get("field", "")).split(".")[0] for e in error.errors}
            if refused & {"kind", "last_name", "organisation_name"}:
                return found
            if refused & (_ADDRESS_FIELDS | {"addresses", "line2", "line3", "line4", "line5"}):
                refused |= _ADDRESS_FIELDS
            proposal = {k: v for k, v in proposal.items() if k not in refused}
            continue
        return SenderMatch(contact, 1.0, ["created"], found.proposal)
    return found


# --------------------------------------------------------------------------- GDPR


def export_contact_data(contact: Contact, actor, *, file_format: str = "json") -> dict:
    """Everything Missive holds about a person (right of access, art. 15 GDPR), as a dict."""
    require(actor, "export", "contact", contact)
    from app.contacts.timeline import timeline_for

    payload = {
        "generated_at": utcnow().isoformat(),
        "generated_by": actor.email,
        "controller": current_app.config.get(
            "MISSIVE_CONTROLLER_NAME", "Département (responsable de traitement)"
        ),
        "contact": contact_export_fields(contact),
        "addresses": [_address_dict(a) for a in contact.addresses],
        "emails": [
            {"email": e.email, "label": e.label, "is_primary": e.is_primary} for e in contact.emails
        ],
        "phones": [
            {"number": p.number, "label": p.label, "is_primary": p.is_primary}
            for p in contact.phones
        ],
        "links": [
            {
                "person_id": link.person_id,
                "organisation_id": link.organisation_id,
                "role": link.role,
                "organisation": link.organisation.display_name
                if contact.is_person
                else link.person.display_name,
            }
            for link in links_of(contact)
        ],
        "merged_records": [
            m.merged_id
            for m in merges_of(contact)
            if m.survivor_id == contact.id and m.undone_at is None
        ],
        "exchanges": [
            {
                "at": e.at.isoformat(),
                "kind": e.kind,
                "title": e.title,
                "detail": e.detail,
                "channel": e.channel,
                "service": e.service,
                "source": e.source,
            }
            # every exchange, confidential ones included: the right of access has no
            # exceptions for the services' confidentiality (the DPO answers it)
            for e in timeline_for(contact, None)
        ],
    }
    audit.record(
        "contact.export",
        actor=actor,
        object_type="contact",
        object_id=contact.id,
        data={"format": file_format},
    )
    db.session.commit()
    return payload


def contact_export_fields(contact: Contact) -> dict:
    """The record's own fields, as exported."""
    fields = {name: _jsonable(getattr(contact, name)) for name in SCALAR_FIELDS}
    fields.update(
        {
            "id": contact.id,
            "status": str(contact.status),
            "created_at": contact.created_at.isoformat(),
            "updated_at": contact.updated_at.isoformat(),
            "consent_updated_at": contact.consent_updated_at.isoformat()
            if contact.consent_updated_at
            else None,
        }
    )
    return fields


def export_contact_pdf(contact: Contact, actor) -> bytes:
    """The same export as a PDF letter-size document (weasyprint) to hand to the person."""
    from flask import render_template
    from weasyprint import HTML

    data = export_contact_data(contact, actor, file_format="pdf")
    html = render_template("contacts/export.html", data=data, contact=contact)
    return HTML(string=html, base_url=current_app.root_path).write_pdf()


def anonymise_contact(contact: Contact, actor, *, reason: str = "request") -> Contact:
    """Erase a person's identity for good while keeping statistics (kind, commune, counts).

    The record stays (exchanges still count, by type and commune); names, contact details,
    street lines, identifiers and notes are erased. ``reason`` is "request" (the person
    asked) or "retention" (the worker applied the retention period).
    """
    if reason == "request":
        require(actor, "anonymise", "contact", contact)
    if contact.status == ContactStatus.ANONYMISED:
        raise Conflict("Ce contact est déjà anonymisé.")
    if contact.status == ContactStatus.MERGED:
        raise Conflict(
            f"Ce contact a été fusionné dans la fiche n° {contact.merged_into_id} : "
            "anonymisez celle-ci."
        )
    for name in (
        "civility",
        "first_name",
        "last_name",
        "birth_name",
        "organisation_name",
        "siret",
        "siren",
        "rna",
        "public_body_code",
        "notes",
        "preferred_channel",
    ):
        setattr(contact, name, None)
    contact.consent_email = contact.consent_sms = contact.consent_surveys = False
    contact.emails = []
    contact.phones = []
    for address in contact.addresses:  # the commune survives for statistics
        address.line2 = address.line3 = address.line4 = address.line5 = None
        address.label = None
        address.search_street = ""
    db.session.execute(
        update(DuplicateCandidate)
        .where(
            or_(
                DuplicateCandidate.first_id == contact.id,
                DuplicateCandidate.second_id == contact.id,
            ),
            DuplicateCandidate.status == DuplicateStatus.OPEN,
        )
        .values(status=DuplicateStatus.DISMISSED)
    )
    db.session.execute(
        ContactLink.__table__.delete().where(
            or_(ContactLink.person_id == contact.id, ContactLink.organisation_id == contact.id)
        )
    )
    former_words = search_words(contact.search_name)
    contact.status = ContactStatus.ANONYMISED
    contact.anonymised_at = contact.updated_at = utcnow()
    contact.version += 1
    db.session.flush()
    refresh_derived(contact)
    db.session.flush()
    forget_unused_words(former_words)
    audit.record(
        "contact.anonymise",
        actor=actor,
        object_type="contact",
        object_id=contact.id,
        data={"reason": reason},
    )
    db.session.commit()
    return contact


def statistics_by_commune() -> list[dict]:
    """Contacts counted by kind and commune (what survives anonymisation)."""
    rows = db.session.execute(
        select(Contact.kind, Contact.commune_code, func.count())
        .where(Contact.status != ContactStatus.MERGED)
        .group_by(Contact.kind, Contact.commune_code)
        .order_by(Contact.commune_code, Contact.kind)
    ).all()
    return [{"kind": str(kind), "commune_code": code, "count": count} for kind, code, count in rows]


# --------------------------------------------------------------------------- retention


def set_retention_rule(
    case_type: str,
    months: int,
    actor,
    *,
    label: str | None = None,
    action: str = RetentionAction.ANONYMISE,
) -> RetentionRule:
    """Set how many months the cases of one type are kept after closing."""
    require(actor, "retention", "contact")
    errors = []
    if not re.match(r"^[a-z0-9][a-z0-9_.-]{0,79}$", case_type or ""):
        errors.append(
            {
                "field": "case_type",
                "message": "Identifiant de type de dossier attendu (minuscules, chiffres, tirets).",
            }
        )
    if not isinstance(months, int) or not 1 <= months <= 1200:
        errors.append({"field": "months", "message": "Durée en mois entre 1 et 1200."})
    if action not in {a.value for a in RetentionAction}:
        errors.append({"field": "action", "message": "Action attendue : anonymise ou delete."})
    if errors:
        raise ValidationFailed("Règle de conservation invalide.", errors=errors)
    rule = db.session.execute(
        select(RetentionRule).where(RetentionRule.case_type == case_type)
    ).scalar_one_or_none()
    if rule is None:
        rule = RetentionRule(case_type=case_type)
        db.session.add(rule)
    rule.months, rule.label, rule.action = months, _text(label, 200), RetentionAction(action)
    rule.updated_at = utcnow()
    db.session.flush()
    audit.record(
        "retention.rule",
        actor=actor,
        object_type="retention_rule",
        object_id=rule.id,
        data={"case_type": case_type, "months": months, "action": str(action)},
    )
    db.session.commit()
    return rule


def retention_rules() -> list[RetentionRule]:
    """The retention periods per case type."""
    return list(
        db.session.execute(select(RetentionRule).order_by(RetentionRule.case_type)).scalars()
    )


def _months_ago(now: datetime, months: int) -> datetime:
    return now - timedelta(days=round(months * 30.44))


def apply_retention(now: datetime | None = None) -> dict[str, int]:
    """Purge the exchanges past their retention period, then anonymise the persons left
    with no exchange and untouched for ``CONTACT_RETENTION_MONTHS`` (worker job)."""
    now = now or utcnow()
    sources = retention_sources()
    summary = {"items": 0, "contacts": 0}
    for rule in retention_rules():
        cutoff = _months_ago(now, rule.months)
        for source in sources:
            ids = list(source.expired(rule.case_type, cutoff))
            if ids:
                summary["items"] += source.purge(rule.case_type, ids, str(rule.action))
    if sources:  # without any source, nobody can tell whether a contact still has exchanges
        months = int(current_app.config.get("CONTACT_RETENTION_MONTHS", 36))
        idle_since = _months_ago(now, months)
        idle = list(
            db.session.execute(
                select(Contact.id)
                .where(
                    Contact.status == ContactStatus.ACTIVE,
                    Contact.kind == ContactKind.PERSON,
                    Contact.updated_at < idle_since,
                )
                .order_by(Contact.id)
            ).scalars()
        )
        for start in range(0, len(idle), 500):
            batch = idle[start : start + 500]
            busy: set[int] = set()
            for source in sources:
                busy |= set(source.contacts_with_items(batch))
            for contact_id in batch:
                if contact_id not in busy:
                    anonymise_contact(db.session.get(Contact, contact_id), None, reason="retention")
                    summary["contacts"] += 1
    if summary["items"] or summary["contacts"]:
        audit.record("retention.applied", object_type="retention", data=summary)
    db.session.commit()
    return summary
