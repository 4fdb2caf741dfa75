"""Duplicate detection: which records may be the same correspondent, and how surely.

The score adds up evidence: name similarity (typo- and order-tolerant) weighs most, then the
same e-mail, phone, street address or postal code; the same SIRET or RNA number makes
organisations obvious duplicates. ``OBVIOUS`` pairs make creation warn; ``CANDIDATE``
pairs go to the review queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import selectinload

from app.contacts.models import (
    Contact,
    ContactAddress,
    ContactEmail,
    ContactKind,
    ContactPhone,
    ContactStatus,
)
from app.contacts.normalise import fold, name_similarity
from app.contacts.search import similar_words, starts_with_word
from app.core.extensions import db

OBVIOUS = 0.85
CANDIDATE = 0.6
NAME_WEIGHT = 0.6
REASON_LABELS = {
    "name": "noms proches",
    "same_name": "même nom",
    "email": "même adresse électronique",
    "phone": "même téléphone",
    "address": "même adresse postale",
    "postal_code": "même code postal",
    "siret": "même SIRET",
    "rna": "même numéro RNA",
}


@dataclass
class Profile:
    """What duplicate detection compares, for a stored record or data not yet saved."""

    id: int | None
    kind: str
    name: str
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    postal_codes: set[str] = field(default_factory=set)
    streets: set[str] = field(default_factory=set)
    siret: str | None = None
    rna: str | None = None


def profile_of(contact: Contact) -> Profile:
    """The comparable profile of a stored contact."""
    return Profile(
        id=contact.id,
        kind=str(contact.kind),
        name=contact.search_name,
        emails={e.email for e in contact.emails},
        phones={p.number for p in contact.phones},
        postal_codes={a.postal_code for a in contact.addresses},
        streets={street_key(a.postal_code, a.line4) for a in contact.addresses if a.line4},
        siret=contact.siret,
        rna=contact.rna,
    )


def street_key(postal_code: str | None, line4: str | None) -> str:
    """An address reduced for comparison: postal code and folded street line."""
    return f"{postal_code or ''} {fold(line4)}"


def score_pair(a: Profile, b: Profile) -> tuple[float, list[str]]:
    """The duplicate score of two profiles (0 to 1) and the reasons behind it."""
    if a.kind != b.kind:
        return 0.0, []
    reasons: list[str] = []
    similarity = name_similarity(a.name, b.name)
    if similarity == 1.0:
        reasons.append("same_name")
    elif similarity >= 0.75:
        reasons.append("name")
    score = NAME_WEIGHT * similarity
    if a.emails & b.emails:
        score += 0.25
        reasons.append("email")
    if a.phones & b.phones:
        score += 0.15
        reasons.append("phone")
    if a.streets & b.streets:
        score += 0.15
        reasons.append("address")
    elif a.postal_codes & b.postal_codes:
        score += 0.05
        reasons.append("postal_code")
    if a.kind == ContactKind.ORGANISATION:
        if a.siret and a.siret == b.siret:
            score = max(score, 0.95)
            reasons.append("siret")
        if a.rna and a.rna == b.rna:
            score = max(score, 0.95)
            reasons.append("rna")
    return round(min(score, 1.0), 3), reasons


def candidates_for(profile: Profile, *, threshold: float = CANDIDATE, limit: int = 10):
    """Stored active contacts that may duplicate ``profile``: ``[(contact, score, reasons)]``."""
    clauses = []
    if profile.emails:
        clauses.append(
            Contact.id.in_(
                select(ContactEmail.contact_id).where(ContactEmail.email.in_(profile.emails))
            )
        )
    if profile.phones:
        clauses.append(
            Contact.id.in_(
                select(ContactPhone.contact_id).where(ContactPhone.number.in_(profile.phones))
            )
        )
    if profile.siret:
        clauses.append(Contact.siret == profile.siret)
    if profile.rna:
        clauses.append(Contact.rna == profile.rna)
    if profile.streets:
        codes = {s.split(" ", 1)[0] for s in profile.streets}
        clauses.append(
            Contact.id.in_(
                select(ContactAddress.contact_id).where(ContactAddress.postal_code.in_(codes))
            )
            & _name_block(profile.name, profile.kind, loose=True)
        )
    if profile.name:
        clauses.append(_name_block(profile.name, profile.kind, loose=False))
    if not clauses:
        return []
    stmt = (
        select(Contact)
        .where(Contact.status == ContactStatus.ACTIVE, Contact.kind == ContactKind(profile.kind))
        .where(or_(*clauses))
        .options(
            selectinload(Contact.emails),
            selectinload(Contact.phones),
            selectinload(Contact.addresses),
        )
        .limit(300)
    )
    if profile.id is not None:
        stmt = stmt.where(Contact.id != profile.id)
    found = []
    for contact in db.session.execute(stmt).scalars():
        score, reasons = score_pair(profile, profile_of(contact))
        if score >= threshold:
            found.append((contact, score, reasons))
    found.sort(key=lambda item: (-item[1], item[0].id))
    return found[:limit]


def _name_block(name: str, kind: str, *, loose: bool):
    """Records whose name could be close enough to ``name`` to be worth scoring: the same
    surname, or a surname the dictionary finds close (typos); ``loose`` (same address)
    only asks for the same first three letters."""
    parts = name.split()
    first = parts[0]
    if loose:
        return and_(Contact.search_name >= first[:3], Contact.search_name < first[:3] + "~")
    if len(parts) > 1 and (len(first) <= 3 or kind == ContactKind.ORGANISATION):
        key = " ".join(parts[:2])  # « le goff », « boulangerie dupont »
        return starts_with_word(key)
    words = {first, *similar_words(first, limit=5)}
    return or_(*[starts_with_word(w) for w in words])
