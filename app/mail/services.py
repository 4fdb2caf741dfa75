"""Functional mailboxes: configuration by admins and the ingest of their messages.

Every message is registered exactly once:

* each batch of messages is one transaction, registered with a handful of statements;
  when it fails, it is rolled back and taken again with a savepoint per message, so a
  failure leaves nothing half-registered and never skips a chrono number, and a message
  that cannot be registered stays in the inbox, flagged (``\\Flagged``), while the others
  of its batch go through;
* a message is moved to the *Traités* folder only after its registration committed;
  a crash in between leaves it in the inbox, where the next run recognises it (by
  UIDVALIDITY + UID, else by its Message-ID plus digest) and only moves it;
* the same message delivered to several mailboxes is one ``MailMessage`` and one case,
  the other mailboxes' services get a copy;
* a storage failure (disk full…) stops the run for that mailbox: the message stays in
  the inbox, unregistered, and is taken again at the next run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy import func, insert, select

from app.auth.models import Group, User
from app.contacts.models import Contact
from app.contacts.services import resolve_sender
from app.core import audit
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.extensions import db
from app.core.permissions import require
from app.correspondence import search
from app.correspondence import services as registry
from app.correspondence.models import (
    CaseLink,
    CaseStatus,
    Channel,
    Correspondence,
    LinkKind,
)
from app.correspondence.search import CHRONO_RE
from app.documents import storage
from app.documents.storage import StorageError
from app.mail import crypto, imap
from app.mail.models import Mailbox, MailMessage, MailReceipt
from app.mail.parsing import ParsedMessage, parse_message

log = logging.getLogger(__name__)
STORE_THREADS = 8
SUMMARY = 4000  # characters of the body kept as the case's summary


# --- configuration ---------------------------------------------------------------------


def _check_mailbox_fields(name, host, port, username, folder, group_name) -> None:
    errors = []
    if not (name or "").strip():
        errors.append({"field": "name", "message": "Ce champ est obligatoire."})
    if not (host or "").strip():
        errors.append({"field": "host", "message": "Ce champ est obligatoire."})
    if not isinstance(port, int) or not 1 <= port <= 65535:
        errors.append({"field": "port", "message": "Port entre 1 et 65535 attendu."})
    if not (username or "").strip():
        errors.append({"field": "username", "message": "Ce champ est obligatoire."})
    if not (folder or "").strip():
        errors.append({"field": "folder", "message": "Ce champ est obligatoire."})
    if (
        group_name
        and db.session.execute(select(Group.id).where(Group.name == group_name)).scalar() is None
    ):
        errors.append({"field": "group", "message": f"Groupe inconnu : {group_name}."})
    if errors:
        raise ValidationFailed("La boîte fonctionnelle n'est pas valide.", errors=errors)


def add_mailbox(
    *,
    name: str,
    host: str,
    port: int,
    username: str,
    password: str,
    folder: str = "INBOX",
    processed_folder: str = "Traités",
    use_tls: bool = True,
    group_name: str | None = None,
    type_code: str | None = None,
    actor: User | None = None,
) -> Mailbox:
    """Configure a functional mailbox; its password is stored encrypted."""
    if actor is not None:
        require(actor, "manage", "mailbox")
    _check_mailbox_fields(name, host, port, username, folder, group_name)
    if not password:
        raise ValidationFailed(
            "Le mot de passe est obligatoire.",
            errors=[{"field": "password", "message": "Ce champ est obligatoire."}],
        )
    if db.session.execute(select(Mailbox.id).where(Mailbox.name == name.strip())).scalar():
        raise Conflict(f"Une boîte nommée « {name} » existe déjà.")
    registry.get_case_type(type_code)
    mailbox = Mailbox(
        name=name.strip(),
        host=host.strip(),
        port=port,
        username=username.strip(),
        secret=crypto.encrypt(password),
        folder=folder.strip(),
        processed_folder=(processed_folder or "Traités").strip(),
        use_tls=use_tls,
        group_name=group_name or None,
        type_code=type_code or None,
    )
    db.session.add(mailbox)
    db.session.flush()
    audit.record(
        "mailbox.create",
        actor=actor,
        object_type="mailbox",
        object_id=mailbox.id,
        data={"name": mailbox.name, "host": mailbox.host, "username": mailbox.username},
    )
    db.session.commit()
    return mailbox


def update_mailbox(mailbox: Mailbox, actor: User | None, **changes) -> Mailbox:
    """Change a mailbox's settings (a new password is encrypted; blank keeps the old one)."""
    if actor is not None:
        require(actor, "manage", "mailbox")
    password = changes.pop("password", None)
    values = {
        "name": mailbox.name,
        "host": mailbox.host,
        "port": mailbox.port,
        "username": mailbox.username,
        "folder": mailbox.folder,
        "group_name": mailbox.group_name,
        **{
            k: v
            for k, v in changes.items()
            if k in {"name", "host", "port", "username", "folder", "group_name"}
        },
    }
    _check_mailbox_fields(**values)
    registry.get_case_type(changes.get("type_code"))
    for key, value in changes.items():
        if key in {
            "name",
            "host",
            "port",
            "username",
            "folder",
            "processed_folder",
            "use_tls",
            "group_name",
            "type_code",
            "active",
        }:
            setattr(mailbox, key, value if value != "" else None)
    if password:
        mailbox.secret = crypto.encrypt(password)
    audit.record(
        "mailbox.update",
        actor=actor,
        object_type="mailbox",
        object_id=mailbox.id,
        data={"fields": sorted(k for k in changes if k != "password"), "password": bool(password)},
    )
    db.session.commit()
    return mailbox


def list_mailboxes(active_only: bool = False) -> list[Mailbox]:
    """The configured mailboxes, by name."""
    stmt = select(Mailbox).order_by(Mailbox.name)
    if active_only:
        stmt = stmt.where(Mailbox.active.is_(True))
    return list(db.session.execute(stmt).scalars())


def get_mailbox(mailbox_id: int) -> Mailbox:
    """A mailbox by id."""
    mailbox = db.session.get(Mailbox, mailbox_id)
    if mailbox is None:
        raise NotFound("Boîte fonctionnelle introuvable.")
    return mailbox


# --- ingest ----------------------------------------------------------------------------


@dataclass
class FetchReport:
    mailbox: str
    registered: int = 0
    threaded: int = 0
    duplicates: int = 0
    moved: int = 0
    failed: int = 0
    error: str | None = None
    case_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "mailbox": self.mailbox,
            "registered": self.registered,
            "threaded": self.threaded,
            "duplicates": self.duplicates,
            "moved": self.moved,
            "failed": self.failed,
            "error": self.error,
        }


def _thread_target(parsed: ParsedMessage) -> Correspondence | None:
    """The case a reply belongs to: by In-Reply-To/References, else by a chrono in the
    subject."""
    ids = [i for i in [parsed.in_reply_to, *reversed(parsed.references)] if i]
    if ids:
        case_id = db.session.execute(
            select(MailMessage.correspondence_id)
            .where(MailMessage.message_id.in_(ids), MailMessage.correspondence_id.is_not(None))
            .order_by(MailMessage.id.desc())
            .limit(1)
        ).scalar()
        if case_id:
            return db.session.get(Correspondence, case_id)
    found = CHRONO_RE.search(parsed.subject or "")
    if found:
        return registry.find_by_chrono(found.group(0))
    return None


def _files(parsed: ParsedMessage, raw: bytes) -> tuple[list[registry.IncomingFile], list[str]]:
    files = [
        registry.IncomingFile("message.eml", "message/rfc822", raw, role="raw_message", text=None)
    ]
    quarantined = []
    for attachment in parsed.attachments:
        flags = {}
        if attachment.danger:
            flags = {"quarantined": True, "reason": attachment.danger}
            quarantined.append(f"{attachment.filename} ({attachment.danger})")
        files.append(
            registry.IncomingFile(
                attachment.filename,
                attachment.mime_type,
                attachment.data,
                role="quarantine" if attachment.danger else "attachment",
                flags=flags,
            )
        )
    return files, quarantined


def ingest_message(
    mailbox: Mailbox,
    folder: str,
    uidvalidity: int,
    fetched: imap.Fetched,
    parsed: ParsedMessage | None = None,
) -> tuple[str, int | None]:
    """Register one fetched message in the caller's transaction.

    Returns ``(outcome, case_id)``: ``known`` (already taken from this mailbox),
    ``duplicate`` (reached another mailbox first), ``threaded`` (a reply added to its
    case) or ``registered``.
    """
    [result] = ingest_messages(
        mailbox, folder, uidvalidity, [fetched], {fetched.uid: parsed} if parsed else None
    )
    db.session.flush()
    return result


def ingest_messages(
    mailbox: Mailbox,
    folder: str,
    uidvalidity: int,
    batch: list[imap.Fetched],
    parsed: dict[int, ParsedMessage] | None = None,
) -> list[tuple[str, int | None]]:
    """Register fetched messages in the caller's transaction, in their order; the outcome
    of each, as ``ingest_message`` gives it.

    The new messages that answer nothing are registered together (``record_cases``); the
    others one by one, once the new messages before them are recorded (they may repeat
    or answer one of those).
    """
    parsed = dict(parsed or {})
    for fetched in batch:
        if parsed.get(fetched.uid) is None:
            parsed[fetched.uid] = parse_message(fetched.raw)
    known = dict(
        db.session.execute(
            select(MailReceipt.uid, MailMessage.correspondence_id)
            .join(MailReceipt.message)
            .where(
                MailReceipt.mailbox_id == mailbox.id,
                MailReceipt.folder == folder,
                MailReceipt.uidvalidity == uidvalidity,
                MailReceipt.uid.in_([fetched.uid for fetched in batch]),
            )
        ).all()
    )
    taken = set(
        db.session.execute(
            select(MailMessage.message_key).where(
                MailMessage.message_key.in_({message.key for message in parsed.values()})
            )
        ).scalars()
    )
    outcomes: dict[int, tuple[str, int | None]] = {}
    new: list[tuple[imap.Fetched, ParsedMessage]] = []

    def register_new() -> None:
        cases = _register(mailbox, folder, uidvalidity, new)
        for (fetched, _), case in zip(new, cases, strict=True):
            outcomes[fetched.uid] = ("registered", case.id)
        new.clear()

    for fetched in batch:
        message = parsed[fetched.uid]
        if fetched.uid in known:
            outcomes[fetched.uid] = ("known", known[fetched.uid])
        elif message.key in taken or _may_answer(message):
            register_new()
            outcomes[fetched.uid] = _ingest_one(mailbox, folder, uidvalidity, fetched, message)
        else:
            new.append((fetched, message))
        taken.add(message.key)
    register_new()
    return [outcomes[fetched.uid] for fetched in batch]


def _may_answer(parsed: ParsedMessage) -> bool:
    """Whether a message may belong to a case already (see ``_thread_target``)."""
    return bool(parsed.in_reply_to or parsed.references or CHRONO_RE.search(parsed.subject))


def _ingest_one(
    mailbox: Mailbox, folder: str, uidvalidity: int, fetched: imap.Fetched, parsed: ParsedMessage
) -> tuple[str, int | None]:
    """A message that may repeat or answer another: a copy, a follow-up or a new case."""
    existing = db.session.execute(
        select(MailMessage).where(MailMessage.message_key == parsed.key)
    ).scalar()
    if existing is not None:
        db.session.add(
            MailReceipt(
                mailbox_id=mailbox.id,
                folder=folder,
                uidvalidity=uidvalidity,
                uid=fetched.uid,
                message_id=existing.id,
            )
        )
        case = db.session.get(Correspondence, existing.correspondence_id)
        if case is not None and mailbox.group_name:
            registry.add_copy(case, mailbox.group_name, None)
        return "duplicate", existing.correspondence_id
    target = _thread_target(parsed)
    if target is None or target.status == CaseStatus.CLOSED:
        [case] = _register(mailbox, folder, uidvalidity, [(fetched, parsed)])
        if target is not None:  # a reply to a closed case opens a new one, linked
            db.session.add(
                CaseLink(source_id=case.id, target_id=target.id, kind=LinkKind.SAME_THREAD)
            )
        return "registered", case.id
    files, quarantined = _files(parsed, fetched.raw)
    documents = registry.record_reply(
        target, files, f"Courriel de {parsed.from_address or 'expéditeur inconnu'}"
    )
    if parsed.text:
        search.append_text(target, parsed.text)
    if quarantined:
        target.flags = {**(target.flags or {}), "quarantine": quarantined}
    message = MailMessage(
        **_message_values(fetched, parsed),
        correspondence_id=target.id,
        raw_document_id=documents[0].id,
    )
    _receive(mailbox, folder, uidvalidity, fetched, message)
    return "threaded", target.id


def _register(
    mailbox: Mailbox,
    folder: str,
    uidvalidity: int,
    messages: list[tuple[imap.Fetched, ParsedMessage]],
) -> list[Correspondence]:
    """Register new messages as new cases, together (one ``record_cases``)."""
    if not messages:
        return []
    senders: dict[str, Contact] = {}
    intakes = []
    for fetched, parsed in messages:
        files, quarantined = _files(parsed, fetched.raw)
        flags: dict = {}
        if parsed.failed:
            flags["unparsed"] = "; ".join(parsed.problems)[:1000] or "Message illisible"
        if quarantined:
            flags["quarantine"] = quarantined
        intakes.append(
            registry.Intake(
                channel=Channel.EMAIL,
                subject=parsed.subject or "(sans objet)",
                received_at=fetched.internal_date or utcnow(),
                type_code=mailbox.type_code,
                sender=_sender(parsed, senders),
                summary=parsed.text[:SUMMARY] or None,
                service_group=mailbox.group_name,
                data={
                    "mail": {
                        "mailbox": mailbox.name,
                        "message_id": parsed.message_id,
                        "from": parsed.from_address,
                        "sent_at": parsed.sent_at.isoformat() if parsed.sent_at else None,
                    }
                },
                flags=flags,
                files=files,
                # the summary is indexed: the body again only when it is longer
                search_text=[parsed.text] if len(parsed.text) > SUMMARY else [],
            )
        )
    cases = registry.record_cases(intakes)
    rows = []
    for (fetched, parsed), case in zip(messages, cases, strict=True):
        raw_document_id = next(
            link.document_id for link in case.attachments if link.role == "raw_message"
        )
        rows.append(
            _message_values(fetched, parsed, case.received_at)
            | {"correspondence_id": case.id, "raw_document_id": raw_document_id}
        )
    # plain statements for the batch's messages and receipts (no unit-of-work round)
    ids = db.session.execute(
        insert(MailMessage).returning(MailMessage.id, sort_by_parameter_order=True), rows
    ).scalars()
    db.session.execute(
        insert(MailReceipt),
        [
            {
                "mailbox_id": mailbox.id,
                "folder": folder,
                "uidvalidity": uidvalidity,
                "uid": fetched.uid,
                "message_id": message_id,
            }
            for (fetched, _), message_id in zip(messages, ids, strict=True)
        ],
    )
    return cases


def _sender(parsed: ParsedMessage, found: dict[str, Contact]) -> Contact | None:
    """The contact behind the message's sender. ``found`` keeps, by address, the senders
    recognised by their address or just created: the same address in the same transaction
    leads to them again, whatever the name."""
    if not parsed.from_address:
        return None
    if parsed.from_address in found:
        return found[parsed.from_address]
    match = resolve_sender(email=parsed.from_address, data={"name": parsed.from_name})
    if match.contact is not None and match.reasons in (["email"], ["created"]):
        found[parsed.from_address] = match.contact
    return match.contact


def _message_values(
    fetched: imap.Fetched, parsed: ParsedMessage, received_at: datetime | None = None
) -> dict:
    """The columns of a ``MailMessage`` (without its case and raw document)."""
    return {
        "message_key": parsed.key,
        "message_id": (parsed.message_id or None) and parsed.message_id[:998],
        "digest": parsed.digest,
        "subject": parsed.subject[:998] or None,
        "from_address": parsed.from_address,
        "sent_at": parsed.sent_at,
        "received_at": received_at or fetched.internal_date or utcnow(),
        "in_reply_to": parsed.in_reply_to,
        "references": parsed.references,
        "text_body": parsed.text,
        "html_body": parsed.html,
        "problems": parsed.problems[:50],
        "size": len(fetched.raw),
    }


def _receive(
    mailbox: Mailbox, folder: str, uidvalidity: int, fetched: imap.Fetched, message: MailMessage
) -> None:
    """Record the message and where it was taken from (written at the next flush)."""
    db.session.add(message)
    db.session.add(
        MailReceipt(
            mailbox_id=mailbox.id,
            folder=folder,
            uidvalidity=uidvalidity,
            uid=fetched.uid,
            message=message,
        )
    )


def _record_error(mailbox_id: int, message: str) -> None:
    db.session.rollback()
    mailbox = db.session.get(Mailbox, mailbox_id)
    mailbox.last_error = message[:2000]
    mailbox.last_error_at = utcnow()
    db.session.commit()


def fetch_mailbox(mailbox: Mailbox, limit: int | None = None) -> FetchReport:
    """Take the new messages of one mailbox (see module docstring)."""
    report = FetchReport(mailbox.name)
    mailbox_id, folder = mailbox.id, mailbox.folder
    batch_size = int(current_app.config.get("MISSIVE_MAIL_BATCH", 25))
    limit = limit or int(current_app.config.get("MISSIVE_MAIL_MAX_PER_RUN", 1000))
    try:
        password = crypto.decrypt(mailbox.secret)
        with imap.connect(mailbox, password) as client, storage.Writer(STORE_THREADS) as writer:
            uidvalidity = imap.open_folder(client, folder)
            imap.ensure_folder(client, mailbox.processed_folder)
            uids = imap.pending_uids(client)[:limit]
            for start in range(0, len(uids), batch_size):
                chunk = uids[start : start + batch_size]
                mailbox = db.session.get(Mailbox, mailbox_id)
                done, failed, stop = _ingest_batch(
                    mailbox, folder, uidvalidity, imap.fetch(client, chunk), report, writer
                )
                imap.move_messages(client, done, mailbox.processed_folder)
                report.moved += len(done)
                imap.flag_messages(client, failed)
                if stop:
                    break
    except StorageError as exc:  # raised outside a batch (should not happen): same outcome
        report.error = str(exc)
    except Exception as exc:
        log.warning("mailbox %s: %s", report.mailbox, exc)
        report.error = f"{type(exc).__name__}: {exc}"
    if report.error:
        _record_error(mailbox_id, report.error)
    else:
        mailbox = db.session.get(Mailbox, mailbox_id)
        mailbox.last_polled_at = utcnow()
        mailbox.last_error = None
        db.session.commit()
    _distribute(report.case_ids)
    return report


def _ingest_batch(
    mailbox: Mailbox,
    folder: str,
    uidvalidity: int,
    batch: list[imap.Fetched],
    report: FetchReport,
    writer: storage.Writer,
) -> tuple[list[int], list[int], bool]:
    """Register a batch in one transaction; return the UIDs to move, those that could not
    be registered, and whether the run must stop (storage failure).

    The batch is registered whole first, its files written behind the parsing and the
    statements and all durable before the commit; when that fails it is rolled back (its
    numbers with it) and taken again message by message, a savepoint each, so that a bad
    message costs only itself and a storage failure only itself and the messages after it.
    """
    mailbox_id, name = mailbox.id, mailbox.name
    parsed: dict[int, ParsedMessage] = {}
    try:
        with writer.deferring():
            for fetched in batch:
                writer.submit(fetched.raw)
                parsed[fetched.uid] = message = parse_message(fetched.raw)
                for attachment in message.attachments:
                    writer.submit(attachment.data)
            outcomes = ingest_messages(mailbox, folder, uidvalidity, batch, parsed)
            writer.wait()
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        log.warning("mailbox %s: batch taken again message by message (%s)", name, exc)
        return _ingest_one_by_one(
            db.session.get(Mailbox, mailbox_id), folder, uidvalidity, batch, parsed, report
        )
    for outcome, case_id in outcomes:
        _count(report, outcome, case_id)
    return [fetched.uid for fetched in batch], [], False


def _ingest_one_by_one(
    mailbox: Mailbox,
    folder: str,
    uidvalidity: int,
    batch: list[imap.Fetched],
    parsed: dict[int, ParsedMessage],
    report: FetchReport,
) -> tuple[list[int], list[int], bool]:
    """The batch in one transaction, a savepoint per message (see ``_ingest_batch``)."""
    done: list[int] = []
    failed: list[int] = []
    counted: list[tuple[str, int | None]] = []
    stop = False
    for fetched in batch:
        savepoint = db.session.begin_nested()
        try:
            outcome, case_id = ingest_message(
                mailbox, folder, uidvalidity, fetched, parsed.get(fetched.uid)
            )
            savepoint.commit()
        except StorageError as exc:
            savepoint.rollback()
            log.error("mailbox %s, uid %s: storage failed: %s", mailbox.name, fetched.uid, exc)
            report.error = f"Stockage impossible (message laissé dans la boîte) : {exc}"
            stop = True
            break
        except Exception as exc:
            savepoint.rollback()
            log.exception("mailbox %s, uid %s: not registered", mailbox.name, fetched.uid)
            report.failed += 1
            report.error = f"Message {fetched.uid} non enregistré : {exc}"
            failed.append(fetched.uid)
            continue
        done.append(fetched.uid)
        counted.append((outcome, case_id))
    db.session.commit()
    for outcome, case_id in counted:
        _count(report, outcome, case_id)
    return done, failed, stop


def _count(report: FetchReport, outcome: str, case_id: int | None) -> None:
    if outcome == "registered":
        report.registered += 1
        report.case_ids.append(case_id)
    elif outcome == "threaded":
        report.threaded += 1
    elif outcome == "duplicate":
        report.duplicates += 1


def _distribute(case_ids: list[int]) -> None:
    """Start the circuits of the new cases in the worker (one queued job; the periodic
    safety net starts any that job missed)."""
    from app.correspondence.tasks import distribute_job

    if case_ids:
        distribute_job(case_ids)


def fetch_all(limit: int | None = None) -> list[FetchReport]:
    """Poll every active mailbox once."""
    reports = []
    for mailbox_id in [m.id for m in list_mailboxes(active_only=True)]:
        started = time.monotonic()
        report = fetch_mailbox(db.session.get(Mailbox, mailbox_id), limit=limit)
        log.info(
            "mailbox %s: %s in %.1fs", report.mailbox, report.as_dict(), time.monotonic() - started
        )
        reports.append(report)
    return reports


def message_of(case: Correspondence) -> list[MailMessage]:
    """The e-mails of a case, oldest first."""
    return list(
        db.session.execute(
            select(MailMessage)
            .where(MailMessage.correspondence_id == case.id)
            .order_by(MailMessage.id)
        ).scalars()
    )


def mailbox_activity(mailbox: Mailbox) -> dict[str, datetime | int | None]:
    """How many messages a mailbox brought and when it was last polled."""
    count = db.session.execute(
        select(func.count()).select_from(MailReceipt).where(MailReceipt.mailbox_id == mailbox.id)
    ).scalar()
    return {"messages": count, "last_polled_at": mailbox.last_polled_at}
