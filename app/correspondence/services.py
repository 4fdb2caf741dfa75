"""Business actions of the registry: register, distribute, qualify, redirect, copy, link, close.

``record_case`` writes a registration in the caller's transaction (the mail ingest runs
it inside a savepoint per message); ``register_case`` is the whole action: record,
commit, then distribute (start the circuit configured for the type and channel).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update

from app.auth.models import Group, OrgUnit, OrgUnitKind, User
from app.contacts.models import Contact
from app.core import audit
from app.core.db import utcnow
from app.core.errors import Conflict, MissiveError, NotFound, ValidationFailed
from app.core.extensions import db
from app.core.pagination import keyset_page
from app.core.permissions import require
from app.correspondence import numbering, search
from app.correspondence.models import (
    CHANNEL_LABELS,
    CaseAccess,
    CaseCopy,
    CaseDocument,
    CaseLink,
    CaseRedirect,
    CaseStatus,
    CaseType,
    Channel,
    Confidentiality,
    Correspondence,
    Direction,
    LinkKind,
)
from app.correspondence.permissions import visible_condition
from app.deadlines import services as deadlines
from app.documents.models import Document
from app.documents.services import add_document, creation_event, new_document

log = logging.getLogger(__name__)

DEFAULT_PROCESS = "courrier_entrant"
CLAIM_TIMEOUT = timedelta(minutes=10)


@dataclass
class IncomingFile:
    """A file arriving with an item (bytes are stored, never put in task data)."""

    filename: str
    mime_type: str
    data: bytes
    role: str = "attachment"
    flags: dict = field(default_factory=dict)
    text: str | None = None
    description: str | None = None


@dataclass
class Intake:
    """What arrives on a channel, before it has a number."""

    channel: Channel
    subject: str
    direction: Direction = Direction.INCOMING
    received_at: datetime | None = None
    type_code: str | None = None
    sender: Contact | None = None
    summary: str | None = None
    confidentiality: Confidentiality = Confidentiality.NORMAL
    service_group: str | None = None
    copies: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)
    files: list[IncomingFile] = field(default_factory=list)
    search_text: list[str] = field(default_factory=list)


# --- case types ------------------------------------------------------------------------


def list_case_types(active_only: bool = True) -> list[CaseType]:
    """The configurable list of item types, in display order."""
    stmt = select(CaseType).order_by(CaseType.position, CaseType.label)
    if active_only:
        stmt = stmt.where(CaseType.active.is_(True))
    return list(db.session.execute(stmt).scalars())


def get_case_type(code: str | None) -> CaseType | None:
    """A type by code (None for no code); ValidationFailed for an unknown code."""
    if not code:
        return None
    case_type = db.session.execute(select(CaseType).where(CaseType.code == code)).scalar()
    if case_type is None or not case_type.active:
        raise ValidationFailed(
            "Type de courrier inconnu.",
            errors=[{"field": "type", "message": f"Type inconnu : {code}."}],
        )
    return case_type


def save_case_type(
    code: str,
    label: str,
    *,
    process_key: str | None = None,
    channel_processes: dict | None = None,
    position: int = 100,
    active: bool = True,
    actor: User | None = None,
) -> CaseType:
    """Create or update an item type (admins configure the list)."""
    if actor is not None:
        require(actor, "manage", "case_type")
    case_type = db.session.execute(select(CaseType).where(CaseType.code == code)).scalar()
    created = case_type is None
    if created:
        case_type = CaseType(code=code)
        db.session.add(case_type)
    case_type.label = label
    case_type.process_key = process_key
    case_type.channel_processes = channel_processes or {}
    case_type.position = position
    case_type.active = active
    db.session.flush()
    audit.record(
        "case_type.create" if created else "case_type.update",
        actor=actor,
        object_type="case_type",
        object_id=case_type.id,
        data={"code": code, "process_key": process_key},
    )
    db.session.commit()
    return case_type


# --- senders -----------------------------------------------------------------------------


def chosen_contact(contact_id: int, actor: User | None, field: str = "sender_id") -> Contact:
    """The contact an agent picked as sender (its current record after a merge)."""
    from app.contacts.models import ContactStatus
    from app.contacts.services import current_record

    contact = db.session.get(Contact, contact_id)
    if contact is None:
        raise ValidationFailed(
            "Expéditeur inconnu.", errors=[{"field": field, "message": "Contact introuvable."}]
        )
    if actor is not None:
        require(actor, "read", "contact", contact)
    contact = current_record(contact)
    if contact.status != ContactStatus.ACTIVE:
        raise ValidationFailed(
            "Expéditeur anonymisé.",
            errors=[{"field": field, "message": "Ce contact est anonymisé."}],
        )
    return contact


def sender_from_details(details: dict, actor: User | None) -> Contact | None:
    """The sender described by typed details: found in the contact base, else recorded
    from them (its checks and duplicate detection apply); None when nothing names anyone."""
    from app.contacts.services import resolve_sender

    details = {k: v.strip() for k, v in details.items() if isinstance(v, str) and v.strip()}
    if not details:
        return None
    return resolve_sender(data=details, actor=actor).contact


# --- registration ----------------------------------------------------------------------


def _group(name: str | None) -> Group | None:
    if not name:
        return None
    return db.session.execute(select(Group).where(Group.name == name)).scalar()


def record_case(intake: Intake, actor: User | None = None) -> Correspondence:
    """Number and record an item with its documents, in the caller's transaction.

    Raises ``StorageError`` (documents) before anything is flushed for the failing file;
    the caller rolls back its transaction or savepoint.
    """
    return record_cases([intake], actor)[0]


def record_cases(intakes: list[Intake], actor: User | None = None) -> list[Correspondence]:
    """Number and record items with their documents, in the caller's transaction, in the
    order given (consecutive numbers per register).

    The work of ``record_case`` for many items with a handful of statements: the numbers
    are taken at once, the cases and their documents inserted by one flush, then the
    audit events and search rows written together. A failure leaves the transaction to
    roll back whole (the numbers taken with it), as for one item.
    """
    if not intakes:
        return []
    types: dict[str | None, CaseType | None] = {}
    groups: dict[str, Group | None] = {}

    def group_named(name: str) -> Group | None:
        if name not in groups:
            groups[name] = _group(name)
        return groups[name]

    for intake in intakes:
        if intake.type_code not in types:
            types[intake.type_code] = get_case_type(intake.type_code)
        unknown = [
            {"field": field, "message": f"Groupe inconnu : {name}."}
            for field, names in (
                ("service_group", [intake.service_group]),
                ("copies", intake.copies),
            )
            for name in names
            if name and group_named(name) is None
        ]
        if unknown:
            raise ValidationFailed("Service inconnu.", errors=unknown)
    now = utcnow()
    numbers: dict[str, list[tuple[int, int, str]]] = {}
    for intake in intakes:
        numbers.setdefault(numbering.register_for(intake.direction), [])
    for register in numbers:
        wanted = sum(1 for i in intakes if numbering.register_for(i.direction) == register)
        numbers[register] = numbering.next_numbers(register, now, wanted)
    rules: dict = {}
    cases: list[Correspondence] = []
    for intake in intakes:
        register = numbering.register_for(intake.direction)
        year, sequence, chrono = numbers[register].pop(0)
        received_at = intake.received_at or now
        case = Correspondence(
            chrono=chrono,
            year=year,
            register=register,
            sequence=sequence,
            direction=intake.direction,
            channel=intake.channel,
            case_type=types[intake.type_code],
            subject=((intake.subject or "").strip() or "(sans objet)")[:500],
            summary=intake.summary,
            sender=intake.sender,
            confidentiality=intake.confidentiality,
            status=CaseStatus.REGISTERED,
            received_at=received_at,
            legal_start_at=received_at,
            registered_at=now,
            registered_by_id=getattr(actor, "id", None),
            data=intake.data or {},
            flags=intake.flags or {},
            # a new case has none: set them so appending never loads them from the database
            attachments=[],
            copies=[],
            grants=[],
            redirects=[],
        )
        if intake.service_group:
            group = group_named(intake.service_group)
            case.service_group = intake.service_group
            case.service = group.org_unit if group is not None else None
        db.session.add(case)
        deadlines.start_clocks(case, rules)
        for incoming in intake.files:
            document = new_document(incoming.data, actor=actor, **_document_fields(incoming))
            case.attachments.append(CaseDocument(document=document, role=incoming.role))
        for name in intake.copies:
            group = group_named(name)
            if group.name != case.service_group and not any(
                c.group_id == group.id for c in case.copies
            ):
                case.copies.append(CaseCopy(group=group, added_by_id=getattr(actor, "id", None)))
        cases.append(case)
    # The flushes are the cost of the ingest's hot path: one inserts the cases with their
    # documents, links and copies; one statement then appends their audit events.
    db.session.flush()
    events = []
    for case, intake in zip(cases, intakes, strict=True):
        events += [creation_event(link.document, actor) for link in case.attachments]
        events.append(
            {
                "action": "correspondence.register",
                "actor": actor,
                "object_type": "correspondence",
                "object_id": case.id,
                "data": {
                    "chrono": case.chrono,
                    "channel": str(intake.channel),
                    "type": intake.type_code,
                    "documents": [link.document.id for link in case.attachments],
                    "flags": sorted(case.flags),
                },
            }
        )
    audit.record_many(events)
    search.index_new_cases(
        [(case, intake.search_text) for case, intake in zip(cases, intakes, strict=True)]
    )
    return cases


def _document_fields(incoming: IncomingFile) -> dict:
    """What a received file says of the document that keeps it."""
    return {
        "filename": incoming.filename,
        "mime_type": incoming.mime_type,
        "kind": incoming.role,
        "description": incoming.description,
        "flags": incoming.flags or None,
        "text": incoming.text,
    }


def attach_file(
    case: Correspondence, incoming: IncomingFile, actor: User | None = None, index: bool = True
) -> Document:
    """Store a file and attach it to a case (caller's transaction)."""
    document = add_document(incoming.data, actor=actor, **_document_fields(incoming))
    case.attachments.append(CaseDocument(document=document, role=incoming.role))
    if index and incoming.text:
        search.append_text(case, incoming.text)
    return document


def register_case(intake: Intake, actor: User | None, *, distribute: bool = True) -> Correspondence:
    """Register an item: number, documents, search index, audit; then start its circuit."""
    if actor is not None:
        require(actor, "register", "correspondence", intake.channel)
    try:
        case = record_case(intake, actor)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if distribute:
        distribute_case(case.id)
        db.session.refresh(case)
    return case


def register_paper(
    scans: list[tuple[str, bytes]],
    actor: User | None,
    *,
    batch: bool = False,
    received_at: datetime | None = None,
    type_code: str | None = None,
    subject: str | None = None,
    sender: Contact | None = None,
    confidentiality: Confidentiality = Confidentiality.NORMAL,
    summary: str | None = None,
    max_bytes: int = 100 * 1024 * 1024,
) -> list[Correspondence]:
    """Register scanned letters: the files of one letter, or a batch cut at its separator
    sheets into one item per letter. OCR runs afterwards in the worker."""
    from app.correspondence import files as filetypes
    from app.correspondence import paper
    from app.correspondence.tasks import ocr_job

    if actor is not None:
        require(actor, "register", "correspondence", Channel.PAPER)
    if not scans:
        raise ValidationFailed(
            "Aucun fichier numérisé.",
            errors=[{"field": "files", "message": "Ajoutez au moins un fichier."}],
        )
    pdfs = []
    for filename, data in scans:
        mime = filetypes.check_upload(
            data, filename, allowed=filetypes.SCAN_TYPES, max_bytes=max_bytes, field="files"
        )
        pdfs.append((filename, paper.scan_to_pdf(data, mime)))
    day = (received_at or utcnow()).astimezone(numbering.PARIS).strftime("%d/%m/%Y")
    intakes: list[Intake] = []
    if batch:
        for filename, pdf in pdfs:
            for index, item in enumerate(paper.split_batch(pdf), start=1):
                intakes.append(
                    Intake(
                        channel=Channel.PAPER,
                        subject=subject
                        or f"Courrier papier reçu le {day} (lot {filename}, n° {index})",
                        received_at=received_at,
                        type_code=item.type_code or type_code,
                        confidentiality=confidentiality,
                        data={"scan": {"batch": filename, "position": index, "pages": item.pages}},
                        files=[
                            IncomingFile(
                                f"courrier-{index}.pdf", "application/pdf", item.pdf, role="scan"
                            )
                        ],
                    )
                )
        if not intakes:
            raise ValidationFailed(
                "Le lot ne contient aucun courrier (seulement des feuilles de séparation).",
                errors=[{"field": "files", "message": "Lot vide."}],
            )
    else:
        intakes.append(
            Intake(
                channel=Channel.PAPER,
                subject=subject or f"Courrier papier reçu le {day}",
                received_at=received_at,
                type_code=type_code,
                sender=sender,
                confidentiality=confidentiality,
                summary=summary,
                files=[
                    IncomingFile(
                        name.rsplit(".", 1)[0] + ".pdf", "application/pdf", pdf, role="scan"
                    )
                    for name, pdf in pdfs
                ],
            )
        )
    try:
        cases = record_cases(intakes, actor)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    work = [(case.id, [link.document_id for link in case.attachments]) for case in cases]
    for case_id, document_ids in work:
        for document_id in document_ids:
            ocr_job(case_id, document_id)
        distribute_case(case_id)
    return [db.session.get(Correspondence, case_id) for case_id, _ in work]


def process_data(case: Correspondence) -> dict:
    """The variables a case's circuit starts with (ids and short texts, never bytes)."""
    sender = case.sender
    return {
        **case_variables(case),
        "channel_code": str(case.channel),
        "type_code": case.case_type.code if case.case_type else "",
        "confidentiality": str(case.confidentiality),
        "postal_code": ((case.data or {}).get("form") or {}).get("postal_code")
        or (sender.postal_code if sender else None)
        or "",
        "service_group": case.service_group or "",
        **deadlines.timer_data(case),
    }


def case_variables(case: Correspondence) -> dict:
    """What the inbox shows and searches about a case (the engine copies these variables
    onto each task of its circuit): number, subject, sender, type, channel, service,
    délégation, date received, and the amount when the item states one."""
    sender = case.sender
    variables = {
        "correspondence_id": case.id,
        "chrono": case.chrono,
        "subject": case.subject,
        "sender_name": sender.display_name if sender else "",
        "type": case.case_type.label if case.case_type else "",
        "channel": CHANNEL_LABELS[Channel(case.channel)],
        "service": _service_label(case),
        "delegation": _delegation_name(case.service),
        "received_at": case.received_at.isoformat(),
    }
    amount = _amount(case.data or {})
    if amount is not None:
        variables["amount"] = amount
    return variables


def _service_label(case: Correspondence) -> str:
    if case.service is not None:
        return case.service.name
    group = _group(case.service_group)
    return group.label if group is not None else (case.service_group or "")


def _delegation_name(unit: OrgUnit | None) -> str:
    while unit is not None:
        if unit.kind == OrgUnitKind.DELEGATION:
            return unit.name
        unit = unit.parent
    return ""


def _amount(data: dict) -> float | int | None:
    for source in (data, data.get("form") or {}):
        for key in ("amount", "montant"):
            value = source.get(key)
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                return value
            if isinstance(value, str):
                try:
                    return float(value.replace("\u202f", "").replace(" ", "").replace(",", "."))
                except ValueError:
                    continue
    return None


def _claim_distribution(case_id: int) -> bool:
    now = utcnow()
    claimed = db.session.execute(
        update(Correspondence)
        .where(
            Correspondence.id == case_id,
            Correspondence.process_instance_id.is_(None),
            or_(
                Correspondence.distribution_claimed_at.is_(None),
                Correspondence.distribution_claimed_at < now - CLAIM_TIMEOUT,
            ),
        )
        .values(distribution_claimed_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


def distribute_case(case_id: int) -> Correspondence:
    """Start the circuit configured for the case's type and channel (once).

    A failure never loses the item: it is flagged ``process_error`` for a person and the
    worker tries again later.
    """
    from app.engine.services import start_instance

    if not _claim_distribution(case_id):
        return db.session.get(Correspondence, case_id)
    case = db.session.get(Correspondence, case_id)
    process_key = (
        case.case_type.process_for(case.channel) if case.case_type else None
    ) or DEFAULT_PROCESS
    try:
        instance = start_instance(
            process_key,
            process_data(case),
            None,
            business_key=case.chrono,
            title=f"{case.chrono} — {case.subject}"[:300],
        )
    except Exception as error:  # any failure: the item stays registered, flagged for a person
        db.session.rollback()
        detail = (
            error.detail if isinstance(error, MissiveError) else f"{type(error).__name__}: {error}"
        )
        if not isinstance(error, MissiveError):
            log.exception("case %s: circuit %s failed to start", case_id, process_key)
        case = db.session.get(Correspondence, case_id)
        case.flags = {**(case.flags or {}), "process_error": detail[:500]}
        case.distribution_claimed_at = None
        audit.record(
            "correspondence.distribution_failed",
            object_type="correspondence",
            object_id=case.id,
            data={"process": process_key, "error": detail[:500]},
        )
        db.session.commit()
        log.warning("case %s: circuit %s not started: %s", case.chrono, process_key, detail)
        return case
    case = db.session.get(Correspondence, case_id)
    case.process_instance_id = instance.id
    flags = dict(case.flags or {})
    flags.pop("process_error", None)
    case.flags = flags
    audit.record(
        "correspondence.distribute",
        object_type="correspondence",
        object_id=case.id,
        data={"process": process_key, "instance": instance.id},
    )
    db.session.commit()
    return case


def distribute_pending(limit: int = 50) -> int:
    """Start the circuits of registered items that have none yet (worker safety net)."""
    now = utcnow()
    ids = list(
        db.session.execute(
            select(Correspondence.id)
            .where(
                Correspondence.process_instance_id.is_(None),
                Correspondence.status != CaseStatus.CLOSED,
                Correspondence.registered_at < now - timedelta(minutes=1),
                or_(
                    Correspondence.distribution_claimed_at.is_(None),
                    Correspondence.distribution_claimed_at < now - CLAIM_TIMEOUT,
                ),
            )
            .order_by(Correspondence.id)
            .limit(limit)
        ).scalars()
    )
    db.session.rollback()
    started = 0
    for case_id in ids:
        if distribute_case(case_id).process_instance_id is not None:
            started += 1
    return started


# --- reading ---------------------------------------------------------------------------


def get_case(case_id: int, actor: User | None = None) -> Correspondence:
    """A case the actor may see."""
    case = db.session.get(Correspondence, case_id)
    if case is None:
        raise NotFound("Courrier introuvable.")
    if actor is not None:
        require(actor, "view", "correspondence", case)
    return case


def find_by_chrono(chrono: str) -> Correspondence | None:
    """The case with that number, if any."""
    return db.session.execute(
        select(Correspondence).where(Correspondence.chrono == chrono)
    ).scalar_one_or_none()


def search_cases(
    actor: User,
    *,
    q: str | None = None,
    channel: str | None = None,
    status: str | None = None,
    type_code: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Correspondence], str | None]:
    """The registry as the actor may see it, newest first, filtered and searched."""
    stmt = select(Correspondence).where(visible_condition(actor))
    if channel:
        stmt = stmt.where(Correspondence.channel == Channel(channel))
    if status:
        stmt = stmt.where(Correspondence.status == CaseStatus(status))
    if type_code:
        stmt = stmt.join(CaseType).where(CaseType.code == type_code)
    if q and q.strip():
        stmt = stmt.where(search.matching(q))
    return keyset_page(stmt, [Correspondence.id], cursor=cursor, limit=limit, descending=True)


def case_history(case: Correspondence) -> list[audit.AuditEvent]:
    """What happened to a case, oldest first."""
    return list(reversed(audit.events_for("correspondence", case.id, limit=500)))


def links_of(case: Correspondence) -> list[CaseLink]:
    """Links from and to a case."""
    return list(
        db.session.execute(
            select(CaseLink)
            .where(or_(CaseLink.source_id == case.id, CaseLink.target_id == case.id))
            .order_by(CaseLink.id)
        ).scalars()
    )


# --- actions on a case -------------------------------------------------------------------


def qualify_case(
    case: Correspondence,
    actor: User | None,
    *,
    type_code: str | None = None,
    subject: str | None = None,
    confidentiality: str | None = None,
    summary: str | None = None,
) -> Correspondence:
    """Confirm or correct type, subject and confidentiality (caller's transaction)."""
    changes: dict = {}
    if type_code and (case.case_type is None or case.case_type.code != type_code):
        case.case_type = get_case_type(type_code)
        deadlines.retype_clocks(case)
        changes["type"] = type_code
    if subject and subject.strip() and subject.strip() != case.subject:
        case.subject = subject.strip()[:500]
        changes["subject"] = case.subject
    if confidentiality and confidentiality != str(case.confidentiality):
        case.confidentiality = Confidentiality(confidentiality)
        changes["confidentiality"] = confidentiality
    if summary is not None and summary != (case.summary or ""):
        case.summary = summary
        changes["summary"] = True
    if changes:
        search.index_case(case)
        audit.record(
            "correspondence.qualify",
            actor=actor,
            object_type="correspondence",
            object_id=case.id,
            data=changes,
        )
    return case


def assign_service(
    case: Correspondence, group_name: str, actor: User | None, copies: list[str] | None = None
) -> Correspondence:
    """Give the case to the service (functional group) chosen by routing."""
    group = _group(group_name)
    if group is None:
        raise ValidationFailed(
            "Service inconnu.",
            errors=[{"field": "service_group", "message": f"Groupe inconnu : {group_name}."}],
        )
    case.service_group = group.name
    case.service = group.org_unit
    case.status = CaseStatus.IN_PROGRESS
    for name in copies or []:
        add_copy(case, name, actor)
    audit.record(
        "correspondence.assign",
        actor=actor,
        object_type="correspondence",
        object_id=case.id,
        data={"service_group": group.name, "copies": copies or []},
    )
    return case


def add_copy(case: Correspondence, group_name: str, actor: User | None) -> CaseCopy | None:
    """Send a copy of the case to another service, for information (caller's transaction)."""
    group = _group(group_name)
    if group is None or group.name == case.service_group:
        return None
    existing = next((c for c in case.copies if c.group_id == group.id), None)
    if existing is not None:
        return existing
    copy = CaseCopy(group=group, added_by_id=getattr(actor, "id", None))
    case.copies.append(copy)
    db.session.flush()
    audit.record(
        "correspondence.copy",
        actor=actor,
        object_type="correspondence",
        object_id=case.id,
        data={"group": group.name},
    )
    return copy


def redirect_case(
    case: Correspondence,
    to_group: str,
    reason: str,
    actor: User | None,
    received_at: datetime | None = None,
) -> CaseRedirect:
    """Send the case on to the competent service; its legal clock restarts from receipt there."""
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise ValidationFailed(
            "Le motif de la réorientation est obligatoire.",
            errors=[{"field": "reason", "message": "Le motif est obligatoire."}],
        )
    if _group(to_group) is None:
        raise ValidationFailed(
            "Service inconnu.",
            errors=[{"field": "to_group", "message": f"Groupe inconnu : {to_group}."}],
        )
    if case.status == CaseStatus.CLOSED:
        raise Conflict("Ce courrier est clos.")
    received = received_at or utcnow()
    redirect = CaseRedirect(
        from_group=case.service_group,
        to_group=to_group,
        reason=reason,
        received_by_competent_at=received,
        by_id=getattr(actor, "id", None),
    )
    case.redirects.append(redirect)
    previous = case.service_group
    assign_service(case, to_group, actor)
    case.legal_start_at = received
    deadlines.restart_legal_clock(case)
    audit.record(
        "correspondence.redirect",
        actor=actor,
        object_type="correspondence",
        object_id=case.id,
        data={
            "from": previous,
            "to": to_group,
            "reason": reason,
            "legal_start_at": received.isoformat(),
        },
    )
    return redirect


def link_cases(
    source: Correspondence,
    target: Correspondence,
    kind: LinkKind | str,
    actor: User | None,
    *,
    commit: bool = True,
) -> CaseLink:
    """Link two cases (reply to, same thread, duplicate of); commits unless told not to
    (a circuit's step links inside its own transaction)."""
    if source.id == target.id:
        raise ValidationFailed(
            "Un courrier ne peut pas être lié à lui-même.",
            errors=[{"field": "target", "message": "Choisissez un autre courrier."}],
        )
    if actor is not None:
        require(actor, "manage", "correspondence", source)
        require(actor, "view", "correspondence", target)
    kind = LinkKind(kind)
    link = db.session.execute(
        select(CaseLink).where(
            CaseLink.source_id == source.id, CaseLink.target_id == target.id, CaseLink.kind == kind
        )
    ).scalar()
    if link is None:
        link = CaseLink(
            source_id=source.id,
            target_id=target.id,
            kind=kind,
            created_by_id=getattr(actor, "id", None),
        )
        db.session.add(link)
        db.session.flush()
        audit.record(
            "correspondence.link",
            actor=actor,
            object_type="correspondence",
            object_id=source.id,
            data={"target": target.chrono, "kind": str(kind)},
        )
    if commit:
        db.session.commit()
    return link


def grant_access(case: Correspondence, user: User, actor: User) -> CaseAccess:
    """Let one person see a (confidential) case; commits."""
    require(actor, "grant", "correspondence", case)
    access = next((g for g in case.grants if g.user_id == user.id), None)
    if access is None:
        access = CaseAccess(user_id=user.id, granted_by_id=actor.id)
        case.grants.append(access)
        db.session.flush()
        audit.record(
            "correspondence.grant",
            actor=actor,
            object_type="correspondence",
            object_id=case.id,
            data={"user": user.email},
        )
    db.session.commit()
    return access


def close_case(case: Correspondence, actor: User | None, outcome: str = "") -> Correspondence:
    """Close the case (caller's transaction)."""
    if case.status != CaseStatus.CLOSED:
        case.status = CaseStatus.CLOSED
        case.closed_at = utcnow()
        audit.record(
            "correspondence.close",
            actor=actor,
            object_type="correspondence",
            object_id=case.id,
            data={"outcome": outcome},
        )
    return case


def record_reply(
    case: Correspondence, files: list[IncomingFile], summary: str, actor: User | None = None
) -> list[Document]:
    """Attach a follow-up (e.g. the requester's e-mail reply) to an open case."""
    documents = [attach_file(case, f, actor) for f in files]
    audit.record(
        "correspondence.follow_up",
        actor=actor,
        object_type="correspondence",
        object_id=case.id,
        data={"summary": summary[:300], "documents": [d.id for d in documents]},
    )
    return documents


def set_sender(case: Correspondence, contact: Contact | None, actor: User | None) -> Correspondence:
    """Name (or correct) the sender of a case; commits."""
    if actor is not None:
        require(actor, "manage", "correspondence", case)
    if case.purged_at is not None:
        raise Conflict("Ce courrier est anonymisé.")
    previous = case.sender_id
    if contact is None or previous != contact.id:
        case.sender = contact
        search.index_case(case)
        audit.record(
            "correspondence.sender",
            actor=actor,
            object_type="correspondence",
            object_id=case.id,
            data={"from": previous, "to": contact.id if contact else None},
        )
    db.session.commit()
    return case


# --- retention ---------------------------------------------------------------------------

ANONYMISED_SUBJECT = "Courrier anonymisé (durée de conservation échue)"
# What an anonymised case keeps of its free data: nothing that names anyone.
KEPT_DATA = ("form_key",)
CasePurgeListener = Callable[[Correspondence, str], None]
_purge_listeners: list[CasePurgeListener] = []


def on_case_purge(listener: CasePurgeListener) -> CasePurgeListener:
    """Register ``listener(case, action)``, called before a case is anonymised or deleted
    at the end of its retention period: the domains keeping something about the case
    (e-mails, notices) erase it there."""
    _purge_listeners.append(listener)
    return listener


def purge_case(case: Correspondence, action: str = "anonymise") -> None:
    """End a closed case's retention period (caller's transaction).

    ``anonymise`` keeps what statistics read — number, dates, type, channel, service,
    status, clocks — and erases the rest: sender, subject, summary, form answers,
    documents, e-mails. ``delete`` removes the case from the registry altogether (its
    figures leave the statistics too).
    """
    if case.status != CaseStatus.CLOSED:
        raise Conflict(f"Le courrier {case.chrono} n'est pas clos.")
    for listener in _purge_listeners:
        listener(case, action)
    if action == "delete":
        case_id, chrono = case.id, case.chrono
        search.forget(case_id)
        db.session.expunge(case)
        db.session.execute(
            delete(Correspondence)
            .where(Correspondence.id == case_id)
            .execution_options(synchronize_session=False)
        )
        audit.record(
            "correspondence.delete",
            object_type="correspondence",
            object_id=case_id,
            data={"chrono": chrono, "reason": "retention"},
        )
        return
    case.sender = None
    case.subject = ANONYMISED_SUBJECT
    case.summary = None
    case.data = {k: v for k, v in (case.data or {}).items() if k in KEPT_DATA}
    case.flags = {}
    case.attachments.clear()
    for redirect in case.redirects:
        redirect.reason = "—"
    case.purged_at = utcnow()
    db.session.flush()
    search.index_case(case)
    audit.record(
        "correspondence.anonymise",
        object_type="correspondence",
        object_id=case.id,
        data={"reason": "retention"},
    )
