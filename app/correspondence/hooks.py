"""What the registry plugs into the other domains.

- the contact page's timeline: every case of the contact, across channels and services,
  with its documents and answers — only what the viewer may see;
- the contact base's retention job: closed cases of a type past their retention period
  are anonymised (or deleted), and it learns which contacts still have cases;
- the inbox's task page: the documents and the history of the case behind a task.
"""

from __future__ import annotations

from datetime import datetime

from flask import url_for
from sqlalchemy import select, true
from sqlalchemy.orm import selectinload

from app.contacts.retention import RetentionSource, register_retention_source
from app.contacts.timeline import TimelineEntry, register_timeline_source
from app.core.audit import AuditEvent
from app.core.extensions import db
from app.correspondence import services
from app.correspondence.models import (
    CHANNEL_LABELS,
    DIRECTION_LABELS,
    DOCUMENT_ROLE_LABELS,
    EVENT_LABELS,
    STATUS_LABELS,
    CaseDocument,
    CaseLink,
    CaseStatus,
    CaseType,
    Channel,
    Correspondence,
    Direction,
    LinkKind,
)
from app.correspondence.permissions import visible_condition
from app.engine.models import HumanTask
from app.inbox.services import register_task_documents, register_task_history

TIMELINE_CASES = 200
PURGE_BATCH = 100
# Documents that answer the sender rather than come from them.
ANSWER_ROLES = {"accuse_reception", "response"}
ANSWER_ROLE_LABELS = {"accuse_reception": "Accusé de réception", "response": "Réponse"}
# Documents a person never needs in a timeline (the raw bytes of an e-mail, OCR text);
# the task page keeps the e-mail (to download) but not the OCR text.
HIDDEN_ROLES = {"raw_message", "ocr"}


# --- the contact's timeline --------------------------------------------------------------


def _visible(viewer):
    return true() if viewer is None else visible_condition(viewer)


def contact_cases(contact, viewer) -> list[TimelineEntry]:
    """The cases of a contact the viewer may see (all for the GDPR export, ``viewer``
    None), their documents and their answers."""
    cases = list(
        db.session.execute(
            select(Correspondence)
            .where(Correspondence.sender_id == contact.id, _visible(viewer))
            .options(
                selectinload(Correspondence.attachments).selectinload(CaseDocument.document),
                selectinload(Correspondence.case_type),
                selectinload(Correspondence.service),
            )
            .order_by(Correspondence.received_at.desc())
            .limit(TIMELINE_CASES)
        ).scalars()
    )
    if not cases:
        return []
    entries: list[TimelineEntry] = []
    for case in cases:
        entries.append(_case_entry(case))
        entries += _document_entries(case)
    entries += _replies(contact, cases, viewer)
    entries += _closings(cases)
    return entries


def _url(endpoint: str, **values) -> str | None:
    try:
        return url_for(endpoint, **values)
    except RuntimeError:  # no request (an export built by the worker): no links
        return None


def _where(case: Correspondence) -> dict:
    return {
        "channel": CHANNEL_LABELS[Channel(case.channel)],
        "service": case.service.name if case.service else case.service_group,
    }


def _case_entry(case: Correspondence) -> TimelineEntry:
    details = [DIRECTION_LABELS[Direction(case.direction)]]
    if case.case_type is not None:
        details.append(case.case_type.label)
    details.append(STATUS_LABELS[CaseStatus(case.status)])
    return TimelineEntry(
        at=case.received_at,
        kind="case",
        title=f"{case.chrono} — {case.subject}",
        detail=" · ".join(details),
        url=_url("correspondence.show", case_id=case.id),
        source="correspondence",
        extra={"case_id": case.id, "chrono": case.chrono},
        **_where(case),
    )


def _document_entries(case: Correspondence) -> list[TimelineEntry]:
    entries = []
    for link in case.attachments:
        if link.role in HIDDEN_ROLES:
            continue
        answer = link.role in ANSWER_ROLES
        label = (
            ANSWER_ROLE_LABELS[link.role]
            if answer
            else DOCUMENT_ROLE_LABELS.get(link.role, link.role).capitalize()
        )
        entries.append(
            TimelineEntry(
                at=link.added_at,
                kind="answer" if answer else "document",
                title=f"{label} : {link.document.filename}",
                detail=f"Courrier {case.chrono}",
                url=_url("correspondence.document", case_id=case.id, document_id=link.document_id),
                source="correspondence",
                extra={"case_id": case.id, "document_id": link.document_id},
                **_where(case),
            )
        )
    return entries


def _replies(contact, cases: list[Correspondence], viewer) -> list[TimelineEntry]:
    """Outgoing letters registered as replies to the contact's cases."""
    chronos = {case.id: case.chrono for case in cases}
    rows = db.session.execute(
        select(Correspondence, CaseLink.target_id)
        .join(CaseLink, CaseLink.source_id == Correspondence.id)
        .where(
            CaseLink.kind == LinkKind.REPLY_TO,
            CaseLink.target_id.in_(list(chronos)),
            _visible(viewer),
        )
    ).all()
    return [
        TimelineEntry(
            at=reply.registered_at,
            kind="answer",
            title=f"Réponse {reply.chrono} — {reply.subject}",
            detail=f"En réponse au courrier {chronos[target_id]}",
            url=_url("correspondence.show", case_id=reply.id),
            source="correspondence",
            extra={"case_id": reply.id, "reply_to": target_id},
            **_where(reply),
        )
        for reply, target_id in rows
        if reply.sender_id != contact.id  # a reply filed on the contact is listed already
    ]


def _closings(cases: list[Correspondence]) -> list[TimelineEntry]:
    """When each closed case ended, and whether it was answered."""
    closed = {case.id: case for case in cases if case.status == CaseStatus.CLOSED}
    if not closed:
        return []
    outcomes = {
        int(event.object_id): (event.data or {}).get("outcome")
        for event in db.session.execute(
            select(AuditEvent).where(
                AuditEvent.object_type == "correspondence",
                AuditEvent.action == "correspondence.close",
                AuditEvent.object_id.in_([str(i) for i in closed]),
            )
        ).scalars()
    }
    entries = []
    for case_id, case in closed.items():
        answered = outcomes.get(case_id) == "reply"
        entries.append(
            TimelineEntry(
                at=case.closed_at or case.received_at,
                kind="answer" if answered else "event",
                title=("Réponse envoyée" if answered else "Dossier clos") + f" — {case.chrono}",
                url=_url("correspondence.show", case_id=case.id),
                source="correspondence",
                extra={"case_id": case.id, "outcome": outcomes.get(case_id)},
                **_where(case),
            )
        )
    return entries


register_timeline_source(contact_cases, name="correspondence")


# --- retention -----------------------------------------------------------------------------


def expired_cases(case_type: str, cutoff: datetime) -> list[int]:
    """Closed cases of a type whose retention period ran out before ``cutoff``."""
    return list(
        db.session.execute(
            select(Correspondence.id)
            .join(CaseType, CaseType.id == Correspondence.type_id)
            .where(
                CaseType.code == case_type,
                Correspondence.status == CaseStatus.CLOSED,
                Correspondence.closed_at < cutoff,
                Correspondence.purged_at.is_(None),
            )
            .order_by(Correspondence.id)
        ).scalars()
    )


def purge_cases(case_type: str, ids: list[int], action: str) -> int:
    """Anonymise (or delete) the given cases, a batch per transaction; return how many."""
    done = 0
    for start in range(0, len(ids), PURGE_BATCH):
        for case_id in ids[start : start + PURGE_BATCH]:
            case = db.session.get(Correspondence, case_id)
            if case is None or case.purged_at is not None:
                continue
            services.purge_case(case, action)
            done += 1
        db.session.commit()
    return done


def contacts_with_cases(contact_ids: list[int]) -> set[int]:
    """Of the given contacts, those still named as sender of a case."""
    if not contact_ids:
        return set()
    return set(
        db.session.execute(
            select(Correspondence.sender_id)
            .where(Correspondence.sender_id.in_(contact_ids))
            .distinct()
        ).scalars()
    )


register_retention_source(
    RetentionSource("correspondence", expired_cases, purge_cases, contacts_with_cases)
)


# --- the inbox's task page -------------------------------------------------------------------


def _task_case(task: HumanTask) -> Correspondence | None:
    case_id = (task.metadata_ or {}).get("correspondence_id")
    return db.session.get(Correspondence, case_id) if isinstance(case_id, int) else None


def task_case_documents(task: HumanTask, viewer) -> list:
    """The documents of the case a task works on (the task's own permission applies)."""
    case = _task_case(task)
    if case is None:
        return []
    documents = [link.document for link in case.attachments if link.role != "ocr"]
    return sorted(documents, key=lambda d: (d.mime_type != "application/pdf", d.id))


def task_case_objects(task: HumanTask) -> list[tuple[str, int]]:
    """The registry entry whose events belong to a task's history."""
    case = _task_case(task)
    return [("correspondence", case.id)] if case is not None else []


register_task_documents(task_case_documents)
register_task_history(task_case_objects, labels=EVENT_LABELS)
