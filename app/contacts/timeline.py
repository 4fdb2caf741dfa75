"""The contact page's timeline: every exchange with a contact, from every domain.

A domain plugs its own items in with ``register_timeline_source``: the source receives the
contact and the viewer and returns only what that viewer may see (a confidential case of
another service stays hidden). The contact base contributes its own events (creation,
edits, merges, GDPR actions) from the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from app.core.audit import AuditEvent
from app.core.extensions import db
from app.core.i18n import N_


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the timeline (a case, a document, an answer, an event on the record)."""

    at: datetime
    kind: str  # "case", "document", "answer", "event"…
    title: str
    detail: str | None = None
    url: str | None = None
    channel: str | None = None  # courrier, e-mail, formulaire…
    service: str | None = None  # the service in charge
    source: str = ""
    extra: dict = field(default_factory=dict)


TimelineSource = Callable[[Any, Any], Iterable[TimelineEntry]]
_sources: dict[str, TimelineSource] = {}


def register_timeline_source(source: TimelineSource, name: str | None = None) -> TimelineSource:
    """Add a source ``fn(contact, viewer) -> entries``; it must filter what the viewer sees
    (``viewer`` None: everything — the GDPR export of a person's data)."""
    _sources[name or f"{source.__module__}.{source.__qualname__}"] = source
    return source


def unregister_timeline_source(name: str) -> None:
    """Remove a source (tests, plug-ins being disabled)."""
    _sources.pop(name, None)


def timeline_for(contact, viewer, limit: int = 500) -> list[TimelineEntry]:
    """Every entry the viewer may see about the contact, newest first (``viewer`` None:
    every entry, for the GDPR export)."""
    entries: list[TimelineEntry] = []
    for name, source in _sources.items():
        for entry in source(contact, viewer) or ():
            entries.append(entry if entry.source else _with_source(entry, name))
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]


def _with_source(entry: TimelineEntry, name: str) -> TimelineEntry:
    return TimelineEntry(**{**entry.__dict__, "source": name})


EVENT_TITLES = {
    "contact.create": N_("Fiche créée"),
    "contact.update": N_("Fiche modifiée"),
    "contact.merge": N_("Doublon fusionné dans cette fiche"),
    "contact.merged_into": N_("Fiche fusionnée dans une autre"),
    "contact.unmerge": N_("Fusion annulée"),
    "contact.link": N_("Lien avec une organisation"),
    "contact.unlink": N_("Lien supprimé"),
    "contact.export": N_("Export des données (RGPD)"),
    "contact.anonymise": N_("Fiche anonymisée"),
    "contact.duplicate_dismissed": N_("Doublon écarté"),
}
FIELD_LABELS = {
    "kind": "type",
    "organisation_type": "catégorie",
    "civility": "civilité",
    "first_name": "prénom",
    "last_name": "nom",
    "birth_name": "nom de naissance",
    "organisation_name": "raison sociale",
    "siret": "SIRET",
    "siren": "SIREN",
    "rna": "RNA",
    "public_body_code": "code de l'organisme",
    "emails": "adresses électroniques",
    "phones": "téléphones",
    "addresses": "adresses postales",
    "preferred_channel": "canal préféré",
    "consent_email": "consentement courriel",
    "consent_sms": "consentement SMS",
    "consent_surveys": "consentement enquêtes",
    "notes": "observations",
}


def contact_events(contact, viewer) -> list[TimelineEntry]:
    """The record's own history (it holds no personal data: only what changed, by whom)."""
    from app.contacts.models import ContactMerge

    ids = [contact.id]
    frontier = [contact.id]
    while frontier:  # records merged into this one keep their history here
        absorbed = list(
            db.session.execute(
                select(ContactMerge.merged_id).where(
                    ContactMerge.survivor_id.in_(frontier), ContactMerge.undone_at.is_(None)
                )
            ).scalars()
        )
        frontier = [i for i in absorbed if i not in ids]
        ids.extend(frontier)
    events = db.session.execute(
        select(AuditEvent)
        .where(AuditEvent.object_type == "contact", AuditEvent.object_id.in_([str(i) for i in ids]))
        .order_by(AuditEvent.id.desc())
        .limit(300)
    ).scalars()
    entries = []
    for event in events:
        data = event.data or {}
        fields = data.get("fields") or []
        detail = ", ".join(FIELD_LABELS.get(f, f) for f in fields) or None
        if event.action in ("contact.merge", "contact.merged_into", "contact.unmerge"):
            detail = f"fiches n° {data.get('survivor_id')} ← n° {data.get('merged_id')}"
        if str(event.object_id) != str(contact.id):
            detail = f"(fiche n° {event.object_id}) " + (detail or "")
        entries.append(
            TimelineEntry(
                at=event.at,
                kind="event",
                title=EVENT_TITLES.get(event.action, event.action),
                detail=detail,
                source="contacts",
                extra={"actor_id": event.actor_id, "action": event.action},
            )
        )
    return entries


register_timeline_source(contact_events, name="contacts")
