"""Business actions on deadlines: the rules and closures admins configure, the clocks of
each case (started at registration, re-read when the type changes, restarted after a
transfer, suspended while documents are missing), the accusé de réception (issued,
e-mailed, printed in batches), reminders and escalation, and the public status page.

Functions named ``*_clocks``, ``issue_acknowledgement``, ``remind`` and ``escalate`` work
in the caller's transaction (intake and the engine's handlers call them); the others are
whole actions and commit.
"""

from __future__ import annotations

import io
import logging
import secrets
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import select

from app.auth.models import OrgUnit, User
from app.core import audit
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.extensions import db
from app.core.permissions import require
from app.correspondence.models import (
    CaseDocument,
    CaseStatus,
    CaseType,
    Channel,
    Correspondence,
    Direction,
)
from app.deadlines import clocks, receipts
from app.deadlines.calendar import (
    end_of_day,
    forget_calendar,
    local_day,
    morning_of,
    working_calendar,
)
from app.deadlines.models import (
    AckStatus,
    CaseClock,
    ClockSuspension,
    Closure,
    DeadlineNotice,
    DeadlineRule,
    ImplicitDecision,
    ReceiptSettings,
)
from app.documents.models import Document
from app.documents.services import add_document
from app.documents.services import content as document_content

log = logging.getLogger(__name__)

ACK_ROLE = "accuse_reception"
BATCH_KIND = "lot_accuses_reception"
MAX_NOTICE_ATTEMPTS = 5
MAX_BATCH = 500
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
ELECTRONIC_REQUESTS = {Channel.EMAIL, Channel.WEB}


# --- rules, closures, settings (admins) ---------------------------------------------------


def list_rules() -> list[DeadlineRule]:
    """The configured rules, general ones first."""
    rules = db.session.execute(select(DeadlineRule)).scalars()
    return sorted(
        rules,
        key=lambda r: (r.case_type.label if r.case_type else "", r.channel or ""),
    )


def _bounded(errors: list, field: str, value, low: int, high: int, label: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        errors.append({"field": field, "message": f"{label} : entre {low} et {high}."})
        return None
    return number


def save_rule(
    actor: User,
    *,
    type_code: str | None,
    channel: str | None,
    target_days: int | str | None = None,
    ack_days: int | str | None = None,
    acknowledge: bool | None = None,
    reminder_days: int | str | None = None,
    silence_months: int | str | None = None,
    implicit_decision: str | None = None,
) -> DeadlineRule:
    """Create or replace the delays of a case type on a channel (both optional); a field
    left empty is inherited from the less specific rules. ``actor`` None is the command
    line."""
    if actor is not None:
        require(actor, "manage", "deadline_rule")
    errors: list[dict] = []
    case_type = None
    if type_code:
        case_type = db.session.execute(
            select(CaseType).where(CaseType.code == type_code)
        ).scalar_one_or_none()
        if case_type is None:
            errors.append({"field": "type_code", "message": f"Type inconnu : {type_code}."})
    if channel and channel not in {c.value for c in Channel}:
        errors.append({"field": "channel", "message": f"Canal inconnu : {channel}."})
    values = {
        "target_days": _bounded(errors, "target_days", target_days, 1, 120, "Délai de réponse"),
        "ack_days": _bounded(errors, "ack_days", ack_days, 1, 60, "Délai d'accusé de réception"),
        "reminder_days": _bounded(errors, "reminder_days", reminder_days, 1, 30, "Relance"),
        "silence_months": _bounded(
            errors, "silence_months", silence_months, 1, 12, "Délai de silence"
        ),
        "acknowledge": acknowledge,
        "implicit_decision": implicit_decision or None,
    }
    if implicit_decision and implicit_decision not in {d.value for d in ImplicitDecision}:
        errors.append({"field": "implicit_decision", "message": "Sens du silence inconnu."})
    target, reminder = values["target_days"], values["reminder_days"]
    if target is not None and reminder is not None and reminder >= target:
        errors.append(
            {
                "field": "reminder_days",
                "message": "La relance doit précéder l'échéance (moins de jours que le délai).",
            }
        )
    if not errors and all(v is None for v in values.values()):
        errors.append({"field": "target_days", "message": "Renseignez au moins un délai."})
    if errors:
        raise ValidationFailed("Règle de délai invalide.", errors=errors)
    type_id = case_type.id if case_type else None
    rule = db.session.execute(
        select(DeadlineRule).where(
            DeadlineRule.case_type_id.is_(None)
            if type_id is None
            else DeadlineRule.case_type_id == type_id,
            DeadlineRule.channel.is_(None) if not channel else DeadlineRule.channel == channel,
        )
    ).scalar_one_or_none()
    created = rule is None
    if created:
        rule = DeadlineRule(case_type_id=type_id, channel=channel or None)
        db.session.add(rule)
    for name, value in values.items():
        setattr(rule, name, value)
    rule.updated_at, rule.updated_by_id = utcnow(), getattr(actor, "id", None)
    db.session.flush()
    audit.record(
        "deadline_rule.create" if created else "deadline_rule.update",
        actor=actor,
        object_type="deadline_rule",
        object_id=rule.id,
        data={"type": type_code, "channel": channel, **values},
    )
    db.session.commit()
    return rule


def set_type_target_days(type_code: str, target_days: int, actor: User | None) -> DeadlineRule:
    """Set the response delay (working days) of a case type on every channel, keeping the
    other delays of its rule (``missive case-type set --days``)."""
    case_type = db.session.execute(
        select(CaseType).where(CaseType.code == type_code)
    ).scalar_one_or_none()
    current = (
        db.session.execute(
            select(DeadlineRule).where(
                DeadlineRule.case_type_id == case_type.id, DeadlineRule.channel.is_(None)
            )
        ).scalar_one_or_none()
        if case_type is not None
        else None
    )
    kept = {
        name: getattr(current, name) if current is not None else None
        for name in (
            "ack_days",
            "acknowledge",
            "reminder_days",
            "silence_months",
            "implicit_decision",
        )
    }
    return save_rule(actor, type_code=type_code, channel=None, target_days=target_days, **kept)


def type_target_days(case_type: CaseType) -> int | None:
    """The response delay (working days) set for a case type on every channel, if any."""
    return db.session.execute(
        select(DeadlineRule.target_days).where(
            DeadlineRule.case_type_id == case_type.id, DeadlineRule.channel.is_(None)
        )
    ).scalar_one_or_none()


def delete_rule(rule_id: int, actor: User) -> None:
    """Remove a rule (cases already received keep their deadlines)."""
    require(actor, "manage", "deadline_rule")
    rule = db.session.get(DeadlineRule, rule_id)
    if rule is None:
        raise NotFound("Règle introuvable.")
    audit.record(
        "deadline_rule.delete",
        actor=actor,
        object_type="deadline_rule",
        object_id=rule.id,
        data={"type": rule.case_type.code if rule.case_type else None, "channel": rule.channel},
    )
    db.session.delete(rule)
    db.session.commit()


def list_closures(year: int | None = None) -> list[Closure]:
    """Days the organisation is closed, in date order."""
    stmt = select(Closure).order_by(Closure.day)
    if year is not None:
        stmt = stmt.where(Closure.day >= date(year, 1, 1), Closure.day <= date(year, 12, 31))
    return list(db.session.execute(stmt).scalars())


def add_closure(day: date, label: str, actor: User) -> Closure:
    """Declare a day closed: it stops counting as a working day for deadlines set from now."""
    require(actor, "manage", "deadline_rule")
    label = (label or "").strip()
    errors = []
    if not label:
        errors.append({"field": "label", "message": "Indiquez le motif de la fermeture."})
    if db.session.execute(select(Closure).where(Closure.day == day)).scalar_one_or_none():
        errors.append({"field": "day", "message": "Ce jour est déjà déclaré fermé."})
    if errors:
        raise ValidationFailed("Fermeture invalide.", errors=errors)
    closure = Closure(day=day, label=label[:200], created_by_id=actor.id)
    db.session.add(closure)
    db.session.flush()
    audit.record(
        "closure.create",
        actor=actor,
        object_type="closure",
        object_id=closure.id,
        data={"day": day.isoformat(), "label": label},
    )
    db.session.commit()
    forget_calendar()
    return closure


def remove_closure(closure_id: int, actor: User) -> None:
    """Withdraw a closure."""
    require(actor, "manage", "deadline_rule")
    closure = db.session.get(Closure, closure_id)
    if closure is None:
        raise NotFound("Fermeture introuvable.")
    audit.record(
        "closure.delete",
        actor=actor,
        object_type="closure",
        object_id=closure.id,
        data={"day": closure.day.isoformat(), "label": closure.label},
    )
    db.session.delete(closure)
    db.session.commit()
    forget_calendar()


def receipt_settings() -> ReceiptSettings:
    """The letterhead and legal texts of acknowledgements (created empty on first use)."""
    settings = db.session.get(ReceiptSettings, 1)
    if settings is None:
        settings = ReceiptSettings(id=1)
        db.session.add(settings)
        db.session.flush()
    return settings


SETTINGS_FIELDS = (
    "authority_name",
    "letterhead_lines",
    "signatory",
    "tribunal_name",
    "tribunal_address",
)


def save_receipt_settings(actor: User, **values: str | None) -> ReceiptSettings:
    """Set the authority's name, letterhead, signatory and competent administrative court."""
    require(actor, "manage", "deadline_rule")
    settings = receipt_settings()
    for name in SETTINGS_FIELDS:
        if name in values:
            text = (values[name] or "").strip()
            setattr(settings, name, text or None)
    settings.updated_at, settings.updated_by_id = utcnow(), actor.id
    audit.record(
        "receipt_settings.update",
        actor=actor,
        object_type="receipt_settings",
        object_id=1,
        data={name: getattr(settings, name) for name in SETTINGS_FIELDS},
    )
    db.session.commit()
    return settings


# --- the clocks of a case (caller's transaction) ------------------------------------------


def new_tracking_code() -> str:
    """Eight characters, no look-alikes (0/O, 1/I/L): about 10^12 possibilities."""
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))


CLOCKED_DIRECTIONS = {Direction.INCOMING, Direction.INTERNAL}
# What the circuit's timers read for an item without a deadline (an outgoing letter).
NEVER = "9999-12-31T23:59:59+00:00"


def start_clocks(case: Correspondence, rules: dict | None = None) -> CaseClock | None:
    """Set the due date and start the clocks of a newly registered item: requests from the
    public and internal notes (these only have a service target; outgoing letters none).

    ``rules`` caches the delays resolved by type and channel across a batch of items."""
    if case.direction not in CLOCKED_DIRECTIONS:
        case.due_at = None
        return None
    rules = {} if rules is None else rules
    with db.session.no_autoflush:  # intake inserts the case later, with its documents
        key = (getattr(case.case_type, "id", None), case.channel)
        if key not in rules:
            rules[key] = clocks.resolve_rule(*key)
        rule = rules[key]
        clock = CaseClock(tracking_code=new_tracking_code(), ack_status=AckStatus.PENDING)
        _apply_rule(clock, rule)
        case.clock = clock
        recompute(case)
    return clock


def retype_clocks(case: Correspondence) -> None:
    """The type changed (qualification): apply its rule, keeping suspensions and receipt."""
    clock = case.clock
    if clock is None:
        start_clocks(case)
        return
    case_type_id = case.case_type.id if case.case_type else None
    _apply_rule(clock, clocks.resolve_rule(case_type_id, case.channel))
    recompute(case)


def restart_legal_clock(case: Correspondence) -> None:
    """After a transfer: both clocks run again from receipt by the competent service, and
    the competent service acknowledges the request again (L114-2, L114-3)."""
    clock = case.clock
    if clock is None:
        start_clocks(case)
        return
    recompute(case)
    if clock.acknowledge and clock.ack_status != AckStatus.PENDING:
        clock.ack_status = AckStatus.PENDING
        try_issue_acknowledgement(case, None)


def _apply_rule(clock: CaseClock, rule: clocks.Rule) -> None:
    clock.target_days, clock.ack_days = rule.target_days, rule.ack_days
    clock.reminder_days, clock.silence_months = rule.reminder_days, rule.silence_months
    clock.implicit_decision = str(rule.implicit_decision)
    clock.acknowledge = rule.acknowledge
    if not rule.acknowledge and clock.ack_status in (AckStatus.PENDING, AckStatus.FAILED):
        clock.ack_status = AckStatus.NOT_REQUIRED
    elif rule.acknowledge and clock.ack_status == AckStatus.NOT_REQUIRED:
        clock.ack_status = AckStatus.PENDING


def _intervals(clock: CaseClock) -> list[clocks.Interval]:
    return [clocks.Interval(s.requested_at, s.resumed_at) for s in clock.suspensions]


def recompute(case: Correspondence) -> None:
    """Derive due date, reminder, acknowledgement deadline and implicit decision date."""
    clock = case.clock
    calendar = working_calendar()
    received = local_day(case.received_at)
    legal_start = local_day(case.legal_start_at)
    due = clocks.service_due_on(calendar, legal_start, clock.target_days)
    case.due_at = end_of_day(due)
    clock.reminder_at = morning_of(
        clocks.reminder_on(calendar, legal_start, due, clock.reminder_days)
    )
    clock.ack_due_at = end_of_day(received + timedelta(days=clock.ack_days))
    clock.implicit_decision_on = clocks.implicit_decision_on(
        legal_start, clock.silence_months, _intervals(clock), clock.implicit_decision
    )


def timer_data(case: Correspondence) -> dict:
    """The dates the circuit's timers read (ISO text): due date and reminder ("never" for
    an item without a deadline, so a circuit never waits on a missing date)."""
    clock = case.clock
    return {
        "due_at": case.due_at.isoformat() if case.due_at else NEVER,
        "reminder_at": clock.reminder_at.isoformat() if clock and clock.reminder_at else NEVER,
    }


def clock_of(case: Correspondence) -> CaseClock:
    """The clocks of a case (Conflict for outgoing letters, which have none)."""
    if case.clock is None:
        if case.direction not in CLOCKED_DIRECTIONS:
            raise Conflict("Ce courrier est un envoi : il n'a pas de délais.")
        start_clocks(case)
        db.session.flush()
    return case.clock


# --- missing documents (L114-5) --------------------------------------------------------------


def request_missing_documents(
    case: Correspondence, items: list[str], due_on: date, actor: User | None
) -> ClockSuspension:
    """Record the documents asked from the requester: the legal clock stops until they
    arrive."""
    if actor is not None:
        require(actor, "manage", "correspondence", case)
    clock = clock_of(case)
    items = [i.strip()[:300] for i in items if i and i.strip()]
    errors = []
    if not items:
        errors.append({"field": "missing_documents", "message": "Indiquez au moins une pièce."})
    if due_on is None or due_on <= local_day(utcnow()):
        errors.append({"field": "documents_due_on", "message": "La date limite doit être future."})
    if errors:
        raise ValidationFailed("Demande de pièces invalide.", errors=errors)
    if case.status == CaseStatus.CLOSED:
        raise Conflict("Ce courrier est clos.")
    if clock.open_suspension is not None:
        raise Conflict("Des pièces sont déjà attendues pour ce courrier.")
    suspension = ClockSuspension(
        missing_documents=items,
        documents_due_on=due_on,
        requested_by_id=getattr(actor, "id", None),
    )
    clock.suspensions.append(suspension)
    recompute(case)
    audit.record(
        "deadline.suspend",
        actor=actor,
        object_type="correspondence",
        object_id=case.id,
        data={"missing_documents": items, "documents_due_on": due_on.isoformat()},
    )
    db.session.commit()
    return suspension


def record_documents_received(
    case: Correspondence, actor: User | None, received_at: datetime | None = None
) -> ClockSuspension:
    """The requested documents arrived: the legal clock runs again."""
    if actor is not None:
        require(actor, "manage", "correspondence", case)
    clock = clock_of(case)
    suspension = clock.open_suspension
    if suspension is None:
        raise Conflict("Aucune pièce n'est attendue pour ce courrier.")
    moment = received_at or utcnow()
    if moment < suspension.requested_at:
        raise ValidationFailed(
            "Date de réception des pièces antérieure à leur demande.",
            errors=[{"field": "received_at", "message": "Date antérieure à la demande."}],
        )
    suspension.resumed_at = moment
    suspension.resumed_by_id = getattr(actor, "id", None)
    recompute(case)
    audit.record(
        "deadline.resume",
        actor=actor,
        object_type="correspondence",
        object_id=case.id,
        data={
            "received_at": moment.isoformat(),
            "implicit_decision_on": clock.implicit_decision_on.isoformat()
            if clock.implicit_decision_on
            else None,
        },
    )
    db.session.commit()
    return suspension


# --- acknowledgements ----------------------------------------------------------------------


def requester_email(case: Correspondence) -> str | None:
    """Where an electronic request came from: the sender's address or the form's."""
    form = (case.data or {}).get("form") or {}
    return (case.sender.email if case.sender else None) or form.get("email") or None


def tracking_url(case: Correspondence) -> str:
    """The public address of the request's status page (chrono and check code)."""
    base = current_app.config["MISSIVE_BASE_URL"].rstrip("/")
    return f"{base}/suivi/{case.chrono}?code={case.clock.tracking_code}"


def format_code(code: str) -> str:
    """« K7M2-QX9P »."""
    return f"{code[:4]}-{code[4:]}"


def receipt_content(case: Correspondence, issued_on: date | None = None) -> receipts.ReceiptContent:
    """Everything the acknowledgement of a case says."""
    clock = clock_of(case)
    settings = receipt_settings()
    unit = case.service
    sender = case.sender
    email = requester_email(case)
    electronic = case.channel in ELECTRONIC_REQUESTS
    delivery = "email" if electronic and email else "paper"
    suspension = clock.open_suspension
    transfer = case.redirects[-1] if case.redirects else None
    received = local_day(case.received_at)
    legal_start = local_day(case.legal_start_at)
    return receipts.ReceiptContent(
        chrono=case.chrono,
        subject=case.subject,
        delivery=delivery,
        electronic=electronic,
        issued_on=issued_on or local_day(utcnow()),
        received_on=received,
        competent_since=legal_start if transfer is not None else None,
        transferred_from=_group_label(transfer.from_group) if transfer else None,
        service=receipts.ServiceContact(
            name=unit.name if unit else None,
            address_lines=unit.address_lines if unit else None,
            postal_code=unit.postal_code if unit else None,
            city=unit.city if unit else None,
            email=unit.email if unit else None,
            phone=unit.phone if unit else None,
        ),
        requester=receipts.Requester(
            name=sender.display_name if sender else None,
            address_lines=sender.address_lines if sender else None,
            postal_code=sender.postal_code if sender else None,
            city=sender.city if sender else None,
            email=email,
        ),
        implicit_decision=clock.implicit_decision,
        implicit_decision_on=clock.implicit_decision_on,
        silence_months=clock.silence_months,
        tracking_code=format_code(clock.tracking_code),
        tracking_url=tracking_url(case),
        authority_name=settings.authority_name,
        letterhead_lines=settings.letterhead_lines,
        signatory=settings.signatory,
        tribunal_name=settings.tribunal_name,
        tribunal_address=settings.tribunal_address,
        missing_documents=list(suspension.missing_documents) if suspension else [],
        documents_due_on=suspension.documents_due_on if suspension else None,
    )


def _group_label(name: str | None) -> str | None:
    if not name:
        return None
    from app.auth.models import Group

    group = db.session.execute(select(Group).where(Group.name == name)).scalar_one_or_none()
    if group is None:
        return name
    return group.org_unit.name if group.org_unit else group.label


def seal_acknowledgement(document: Document) -> Document:
    """Seal an acknowledgement with the server seal (the parapheur's ``seal_document``):
    the sealed PDF is a new document whose parent is the unsealed one. Without a seal
    configured (or with ``MISSIVE_ACK_SEAL=0``) the document stays unsealed and says why
    in its flags (``unsealed``), shown on the case's deadlines page."""
    if not current_app.config.get("MISSIVE_ACK_SEAL", True):
        return _unsealed(document, "cachet désactivé (MISSIVE_ACK_SEAL=0)")
    from app.parapheur.services import seal_document

    try:
        return seal_document(document, "Accusé de réception")
    except Conflict as error:  # no seal configured, or its certificate expired
        log.warning("acknowledgement %s left unsealed: %s", document.id, error.detail)
        return _unsealed(document, error.detail)


def _unsealed(document: Document, reason: str) -> Document:
    document.flags = {**(document.flags or {}), "unsealed": reason[:300]}
    return document


def issue_acknowledgement(case: Correspondence, actor: User | None) -> Document:
    """Generate the acknowledgement (refused when a mention is missing), keep it as a
    document of the case and queue it: e-mail for electronic requests, paper batch
    otherwise. Caller's transaction."""
    clock = clock_of(case)
    if not clock.acknowledge:
        raise Conflict("Ce type de courrier n'appelle pas d'accusé de réception.")
    content = receipt_content(case)
    pdf = receipts.render_pdf(content)
    document = add_document(
        pdf,
        filename=f"accuse-reception-{case.chrono}.pdf",
        mime_type="application/pdf",
        actor=actor,
        kind=ACK_ROLE,
        description=f"Courrier {case.chrono} : accusé de réception",
    )
    document = seal_acknowledgement(document)
    case.attachments.append(CaseDocument(document=document, role=ACK_ROLE))
    now = utcnow()
    clock.ack_document = document
    clock.ack_generated_at = now
    clock.ack_delivery = content.delivery
    clock.ack_error = None
    if content.delivery == "email":
        clock.ack_status = AckStatus.TO_SEND
        db.session.add(
            DeadlineNotice(
                correspondence_id=case.id,
                kind="acknowledgement",
                recipients=[content.requester.email],
                document_id=document.id,
            )
        )
    else:
        clock.ack_status = AckStatus.TO_PRINT
    if "acknowledgement" in (case.flags or {}):
        case.flags = {k: v for k, v in case.flags.items() if k != "acknowledgement"}
    audit.record(
        "acknowledgement.issue",
        actor=actor,
        object_type="correspondence",
        object_id=case.id,
        data={
            "document": document.id,
            "sealed": document.kind == "sealed",
            "unsealed": (document.flags or {}).get("unsealed"),
            "delivery": content.delivery,
            "implicit_decision": content.implicit_decision,
            "implicit_decision_on": content.implicit_decision_on.isoformat()
            if content.implicit_decision_on
            else None,
        },
    )
    return document


def try_issue_acknowledgement(case: Correspondence, actor: User | None) -> Document | None:
    """Issue the acknowledgement; a missing mention is recorded on the case (flag, clock,
    history) for a person to fix, instead of failing the caller."""
    try:  # the mentions are checked before anything is written
        return issue_acknowledgement(case, actor)
    except receipts.MissingMentions as error:
        clock = case.clock
        clock.ack_status = AckStatus.FAILED
        clock.ack_error = error.detail
        case.flags = {**(case.flags or {}), "acknowledgement": error.detail[:500]}
        audit.record(
            "acknowledgement.refused",
            actor=actor,
            object_type="correspondence",
            object_id=case.id,
            data={"missing": [e["field"] for e in error.errors]},
        )
        return None


def acknowledge_case(case: Correspondence, actor: User) -> Document:
    """An agent issues (or issues again) the acknowledgement of a case."""
    require(actor, "manage", "correspondence", case)
    try:
        document = issue_acknowledgement(case, actor)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return document


def pending_paper_acknowledgements(actor: User) -> list[Correspondence]:
    """Paper acknowledgements waiting for the next print batch, oldest first."""
    require(actor, "print", "acknowledgement")
    return list(
        db.session.execute(
            select(Correspondence)
            .join(CaseClock, CaseClock.correspondence_id == Correspondence.id)
            .where(CaseClock.ack_status == AckStatus.TO_PRINT)
            .order_by(CaseClock.ack_generated_at, Correspondence.id)
            .limit(MAX_BATCH)
        ).scalars()
    )


def print_acknowledgements(actor: User) -> Document | None:
    """Gather every paper acknowledgement waiting into one PDF to print; they count as sent
    today. None when there is nothing to print."""
    import pikepdf

    require(actor, "print", "acknowledgement")
    stmt = (
        select(CaseClock)
        .where(CaseClock.ack_status == AckStatus.TO_PRINT)
        .order_by(CaseClock.ack_generated_at, CaseClock.correspondence_id)
        .limit(MAX_BATCH)
    )
    if db.engine.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    waiting = list(db.session.execute(stmt).scalars())
    if not waiting:
        db.session.rollback()
        return None
    merged = pikepdf.new()
    for clock in waiting:
        with pikepdf.open(io.BytesIO(document_content(clock.ack_document))) as source:
            source.flatten_annotations("print")  # a sealed acknowledgement prints its stamp
            merged.pages.extend(source.pages)
    out = io.BytesIO()
    merged.save(out)
    now = utcnow()
    batch = add_document(
        out.getvalue(),
        filename=f"accuses-reception-{local_day(now).isoformat()}.pdf",
        mime_type="application/pdf",
        actor=actor,
        kind=BATCH_KIND,
        description=f"Lot de {len(waiting)} accusés de réception à imprimer",
    )
    chronos = []
    for clock in waiting:
        clock.ack_status = AckStatus.PRINTED
        clock.ack_sent_at = now
        chronos.append(clock.correspondence.chrono)
    audit.record(
        "acknowledgement.print_batch",
        actor=actor,
        object_type="document",
        object_id=batch.id,
        data={"count": len(waiting), "chronos": chronos},
    )
    db.session.commit()
    return batch


def print_batches(limit: int = 20) -> list[Document]:
    """The latest print batches (to print again)."""
    return list(
        db.session.execute(
            select(Document)
            .where(Document.kind == BATCH_KIND)
            .order_by(Document.id.desc())
            .limit(limit)
        ).scalars()
    )


# --- reminders and escalation (engine handlers, caller's transaction) ------------------------


def head_of_service(case: Correspondence) -> User | None:
    """The head of the case's service, else of the nearest unit above that has one."""
    unit: OrgUnit | None = case.service
    while unit is not None:
        if unit.head is not None and unit.head.active:
            return unit.head
        unit = unit.parent
    return None


def _task_assignees(case: Correspondence) -> list[str]:
    if case.process_instance_id is None:
        return []
    from app.engine.models import HumanTask, TaskStatus

    return sorted(
        {
            user.email
            for user in db.session.execute(
                select(User)
                .join(HumanTask, HumanTask.assignee_id == User.id)
                .where(
                    HumanTask.instance_id == case.process_instance_id,
                    HumanTask.status == TaskStatus.OPEN,
                    User.active.is_(True),
                )
            ).scalars()
        }
    )


def remind(case: Correspondence) -> list[str]:
    """Remind the service (its address and the agents holding the case's tasks) that the
    answer is due soon; return who is told."""
    if case.status == CaseStatus.CLOSED:
        return []
    clock = clock_of(case)
    service_address = case.service.email if case.service and case.service.email else None
    recipients = sorted({*_task_assignees(case), *([service_address] if service_address else [])})
    clock.reminded_at = utcnow()
    if recipients:
        db.session.add(
            DeadlineNotice(correspondence_id=case.id, kind="reminder", recipients=recipients)
        )
    audit.record(
        "deadline.reminder",
        object_type="correspondence",
        object_id=case.id,
        data={"due_at": case.due_at.isoformat() if case.due_at else None, "to": recipients},
    )
    return recipients


def escalate(case: Correspondence) -> User | None:
    """The answer is overdue: hand the case to the head of service; return that person."""
    if case.status == CaseStatus.CLOSED:
        return None
    clock = clock_of(case)
    head = head_of_service(case)
    clock.escalated_at = utcnow()
    clock.escalated_to = head
    if head is not None:
        db.session.add(
            DeadlineNotice(correspondence_id=case.id, kind="escalation", recipients=[head.email])
        )
    audit.record(
        "deadline.escalate",
        object_type="correspondence",
        object_id=case.id,
        data={"to": head.email if head else None, "service": case.service_group},
    )
    return head


# --- notices (worker) ----------------------------------------------------------------------------


def queue_answer_email(case: Correspondence, recipient: str, document: Document) -> DeadlineNotice:
    """Queue the e-mail that carries a request's signed answer (the worker sends it with
    the other notices). Caller's transaction."""
    notice = DeadlineNotice(
        correspondence_id=case.id, kind="reply", recipients=[recipient], document_id=document.id
    )
    db.session.add(notice)
    db.session.flush()
    return notice


def send_pending_notices(limit: int = 100) -> int:
    """Send the e-mails decided by committed transactions; return how many left."""
    from app.deadlines import notices

    ids = list(
        db.session.execute(
            select(DeadlineNotice.id)
            .where(
                DeadlineNotice.sent_at.is_(None),
                DeadlineNotice.attempts < MAX_NOTICE_ATTEMPTS,
            )
            .order_by(DeadlineNotice.id)
            .limit(limit)
        ).scalars()
    )
    db.session.rollback()
    sent = 0
    for notice_id in ids:
        notice = db.session.get(DeadlineNotice, notice_id)
        case = db.session.get(Correspondence, notice.correspondence_id)
        try:
            message_id = notices.send(notice, case)
        except Exception as error:  # SMTP refused or unreachable: try again later
            db.session.rollback()
            notice = db.session.get(DeadlineNotice, notice_id)
            notice.attempts += 1
            notice.last_error = f"{type(error).__name__}: {error}"[:2000]
            db.session.commit()
            log.warning("notice %s not sent: %s", notice_id, notice.last_error)
            continue
        notice.attempts += 1
        notice.sent_at = utcnow()
        notice.message_id = message_id
        clock = case.clock
        if (
            notice.kind == "acknowledgement"
            and clock
            and clock.ack_document_id == notice.document_id
        ):
            clock.ack_status = AckStatus.SENT
            clock.ack_sent_at = notice.sent_at
        audit.record(
            f"deadline.{notice.kind}_sent",
            object_type="correspondence",
            object_id=case.id,
            data={"to": notice.recipients, "message_id": message_id},
        )
        db.session.commit()
        sent += 1
    return sent


# --- public status page ------------------------------------------------------------------------


PUBLIC_STATUS = {
    CaseStatus.REGISTERED: "Votre demande a été reçue et enregistrée.",
    CaseStatus.IN_PROGRESS: "Votre demande est en cours de traitement par le service compétent.",
    CaseStatus.CLOSED: "Le traitement de votre demande est terminé.",
}
AWAITING_DOCUMENTS = "Votre demande est en attente des pièces complémentaires demandées."


def public_status(chrono: str, code: str) -> str | None:
    """The status sentence of a request, when the check code matches (None otherwise)."""
    wanted = "".join(ch for ch in (code or "").upper() if ch.isalnum())
    case = db.session.execute(
        select(Correspondence).where(Correspondence.chrono == (chrono or "").strip())
    ).scalar_one_or_none()
    if case is None or case.clock is None or len(wanted) != 8:
        return None
    if not secrets.compare_digest(case.clock.tracking_code, wanted):
        return None
    if case.status != CaseStatus.CLOSED and case.clock.open_suspension is not None:
        return AWAITING_DOCUMENTS
    return PUBLIC_STATUS[CaseStatus(case.status)]
