"""Answers to incoming mail through the parapheur: the reply drafted on the case is signed
in a parapheur, comes back as the case's answer (an outgoing item linked « réponse à »),
leaves by e-mail or in the mail office's print batch, and dates the answer.

The incoming-mail circuit and the parapheur circuit are two process instances, each pinned
to the version it started on. Completing « Rédiger la réponse » renders the letter and
starts its parapheur in the same transaction (a completion hook); the case then waits for
the message ``parapheur_termine`` inside its « traitement sous délai » sub-process, so its
reminder and escalation timers stay armed. When the folder is signed or abandoned, the
message is delivered once that transaction has committed; the worker's safety net
delivers any message a crash lost (``deliver_pending_outcomes``).
"""

from __future__ import annotations

import io
import logging
from functools import partial

from markupsafe import Markup, escape
from sqlalchemy import select

from app.auth.models import User
from app.core import audit
from app.core.db import utcnow
from app.core.errors import Conflict, ValidationFailed
from app.core.extensions import db
from app.core.permissions import can, require
from app.correspondence import services
from app.correspondence.models import (
    AnswerDelivery,
    CaseAnswer,
    CaseDocument,
    CaseStatus,
    Channel,
    Correspondence,
    Direction,
    LinkKind,
)
from app.deadlines import services as deadlines
from app.deadlines.calendar import local_day
from app.deadlines.receipts import french_date
from app.documents.models import Document
from app.documents.services import add_document, content
from app.engine import services as engine
from app.engine.models import HumanTask, MessageSubscription
from app.parapheur import services as parapheur
from app.parapheur.models import Folder, FolderStatus

log = logging.getLogger(__name__)

ORIGIN = "correspondence"
REPLY_MESSAGE = "parapheur_termine"
ANSWER_ROLE = "reponse"
FOLDER_TYPE = "courrier_sortant"
LETTER_TEMPLATE = "correspondence/reply_letter.html"
PRINT_BATCH_KIND = "lot_reponses"
MAX_PRINT_BATCH = 200


# --- drafting: the reply goes into a parapheur ----------------------------------------------


def case_of_instance(instance_id: int) -> Correspondence | None:
    """The case whose circuit this process instance is, if any."""
    return db.session.execute(
        select(Correspondence).where(Correspondence.process_instance_id == instance_id)
    ).scalar_one_or_none()


def submit_reply(task: HumanTask, data: dict, actor: User) -> dict | None:
    """« Rédiger la réponse » is completed: the letter (rendered from the reply template,
    or a PDF already attached to the case) goes into a parapheur whose circuit is chosen
    for outgoing letters. Runs in the engine's transaction (a refusal leaves the task open
    and nothing started); the case then waits for the folder's outcome."""
    case = case_of_instance(task.instance_id)
    if case is None:
        return None
    if case.status == CaseStatus.CLOSED:
        raise Conflict("Ce courrier est clos : sa réponse ne peut plus partir au parapheur.")
    options = {
        "title": f"Réponse au courrier {case.chrono} — {case.subject}"[:300],
        "type": FOLDER_TYPE,
        "actor": actor,
        "origin": (ORIGIN, str(case.id)),
        "variables": folder_variables(case),
        "commit": False,
    }
    if data.get("response_document_id"):
        document = _case_pdf(case, int(data["response_document_id"]))
        folder = parapheur.create_folder(
            documents=[parapheur.Upload(document.filename, content(document))], **options
        )
    else:
        text = (data.get("response_text") or "").strip()
        if not text:
            raise ValidationFailed(
                "Rédigez le texte de la réponse.",
                errors=[{"field": "response_text", "message": "Ce champ est obligatoire."}],
            )
        folder = parapheur.create_folder_from_draft(
            template=LETTER_TEMPLATE,
            context=letter_context(case, text),
            filename=f"reponse-{case.chrono}.pdf",
            **options,
        )
    audit.record(
        "correspondence.reply_submitted",
        actor=actor,
        object_type="correspondence",
        object_id=case.id,
        data={"folder": folder.id, "process": folder.process_key},
    )
    return {"reply_folder_id": folder.id, "reply_outcome": "", "reply_notice": ""}


def _case_pdf(case: Correspondence, document_id: int) -> Document:
    attached = next((link for link in case.attachments if link.document_id == document_id), None)
    if attached is None or attached.document.mime_type != "application/pdf":
        raise ValidationFailed(
            "Le document de réponse doit être un PDF joint à ce courrier.",
            errors=[
                {
                    "field": "response_document_id",
                    "message": f"Aucun PDF n° {document_id} n'est joint au courrier {case.chrono}.",
                }
            ],
        )
    return attached.document


def folder_variables(case: Correspondence) -> dict:
    """What the folder's tasks carry of the case, so the inbox shows and finds them by
    number, sender and deadline."""
    sender = case.sender
    values = {
        "chrono": case.chrono,
        "correspondence_id": case.id,
        "subject": case.subject,
        "sender_name": sender.display_name if sender else "",
        "channel": str(case.channel),
        "received_at": case.received_at.isoformat(),
    }
    if case.service_group:
        values["service"] = case.service_group
    if case.due_at is not None:
        values["due_at"] = case.due_at.isoformat()
    return values


def letter_context(case: Correspondence, text: str) -> dict:
    """What the reply letter prints: letterhead, service, recipient, references and the
    text (escaped: paragraphs at blank lines, line breaks kept); the signature stamp says
    who signed."""
    settings = deadlines.receipt_settings()
    paragraphs = [
        Markup("<br>").join(escape(line) for line in block.splitlines())
        for block in text.replace("\r\n", "\n").split("\n\n")
        if block.strip()
    ]
    return {
        "authority": settings.authority_name or "",
        "letterhead_lines": (settings.letterhead_lines or "").splitlines(),
        "service": case.service,
        "recipient": case.sender,
        "chrono": case.chrono,
        "received_on": french_date(local_day(case.received_at)),
        "written_on": french_date(local_day(utcnow())),
        "case_subject": case.subject,
        "paragraphs": paragraphs,
    }


# --- the folder's outcome comes back to the case --------------------------------------------


@parapheur.on_folder_outcome(ORIGIN)
def folder_ended(folder: Folder) -> None:
    """A reply folder was signed or abandoned (in the ending transaction): tell its case
    once that transaction has committed."""
    engine.after_commit(partial(deliver_outcome, int(folder.origin_id)))


def reply_folder(case: Correspondence) -> Folder | None:
    """The case's current reply folder (the latest one)."""
    return db.session.execute(
        select(Folder)
        .where(Folder.origin_type == ORIGIN, Folder.origin_id == str(case.id))
        .order_by(Folder.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def deliver_outcome(case_id: int) -> bool:
    """Deliver the outcome of the case's reply folder to its circuit, if the circuit waits
    for it and the folder has ended; return whether a message was delivered."""
    case = db.session.get(Correspondence, case_id)
    if case is None or case.process_instance_id is None:
        return False
    waiting = db.session.execute(
        select(MessageSubscription.correlation_key).where(
            MessageSubscription.instance_id == case.process_instance_id,
            MessageSubscription.message_name == REPLY_MESSAGE,
        )
    ).first()
    folder = reply_folder(case)
    if waiting is None or folder is None:
        return False
    if folder.status == FolderStatus.COMPLETED:
        payload = {"reply_folder_id": folder.id, "reply_outcome": "signed", "reply_notice": ""}
    elif folder.status == FolderStatus.ABANDONED:
        payload = {
            "reply_folder_id": folder.id,
            "reply_outcome": "abandoned",
            "reply_notice": _abandon_notice(folder),
        }
    else:
        return False
    return bool(engine.send_message(REPLY_MESSAGE, waiting[0], payload, None))


def _abandon_notice(folder: Folder) -> str:
    if folder.rejection_reason:
        who = folder.rejected_by.name if folder.rejected_by else "le circuit"
        return (
            f"La réponse précédente (parapheur n° {folder.id}) a été refusée par {who} : "
            f"« {folder.rejection_reason} »."
        )
    return f"La réponse précédente (parapheur n° {folder.id}) a été abandonnée."


def deliver_pending_outcomes(limit: int = 200) -> int:
    """Safety net of the worker: deliver the outcomes a crash lost (cases still waiting
    for a folder that has ended); return how many were delivered."""
    case_ids = list(
        db.session.execute(
            select(Correspondence.id)
            .join(
                MessageSubscription,
                MessageSubscription.instance_id == Correspondence.process_instance_id,
            )
            .where(MessageSubscription.message_name == REPLY_MESSAGE)
            .order_by(Correspondence.id)
            .limit(limit)
        ).scalars()
    )
    db.session.rollback()
    delivered = 0
    for case_id in case_ids:
        try:
            delivered += deliver_outcome(case_id)
        except Exception:  # one case's circuit failing must not stop the others
            log.exception("reply outcome of case %s not delivered", case_id)
            db.session.rollback()
    return delivered


# --- the signed answer: recorded on the case, sent, dated -----------------------------------


def _delivery(case: Correspondence) -> tuple[AnswerDelivery, str | None]:
    """E-mail for an electronic request with an address, paper otherwise."""
    email = deadlines.requester_email(case)
    if case.channel in deadlines.ELECTRONIC_REQUESTS and email:
        return AnswerDelivery.EMAIL, email
    return AnswerDelivery.PAPER, None


def record_answer(case: Correspondence, folder_id: int) -> CaseAnswer:
    """The reply folder is signed: its signed letter becomes the case's answer — an
    outgoing item (register D) linked « réponse à » the request, the signed PDF attached
    to both. Caller's transaction (a circuit's service task); recording twice is a no-op."""
    existing = db.session.execute(
        select(CaseAnswer).where(
            CaseAnswer.request_id == case.id, CaseAnswer.folder_id == folder_id
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    folder = parapheur.get_folder(folder_id)
    if folder.origin_type != ORIGIN or folder.origin_id != str(case.id):
        raise ValueError(f"le parapheur {folder_id} ne répond pas au courrier {case.chrono}")
    if folder.status != FolderStatus.COMPLETED:
        raise ValueError(f"le parapheur {folder_id} n'est pas signé ({folder.status_label})")
    signed = [entry.current for entry in folder.current_documents("main")]
    delivery, recipient = _delivery(case)
    answer = services.record_case(
        services.Intake(
            channel=Channel.EMAIL if delivery == AnswerDelivery.EMAIL else Channel.PAPER,
            direction=Direction.OUTGOING,
            subject=f"Réponse : {case.subject}",
            sender=case.sender,
            service_group=case.service_group,
            data={"reply_to": case.chrono, "folder_id": folder.id},
        )
    )
    for document in signed:
        answer.attachments.append(CaseDocument(document=document, role=ANSWER_ROLE))
        case.attachments.append(CaseDocument(document=document, role=ANSWER_ROLE))
    services.link_cases(answer, case, LinkKind.REPLY_TO, None, commit=False)
    row = CaseAnswer(
        request=case,
        answer=answer,
        folder_id=folder.id,
        document=signed[0],
        delivery=delivery,
        recipient=recipient,
    )
    db.session.add(row)
    db.session.flush()
    audit.record(
        "correspondence.answer",
        object_type="correspondence",
        object_id=case.id,
        data={
            "answer": answer.chrono,
            "folder": folder.id,
            "documents": [d.id for d in signed],
            "delivery": str(delivery),
        },
    )
    return row


def send_answer(case: Correspondence) -> CaseAnswer:
    """The signed answer leaves: e-mailed with the PDF (through the notices outbox) for an
    electronic request, put in the mail office's print queue otherwise. The case counts as
    answered now. Caller's transaction (a circuit's service task)."""
    row = db.session.execute(
        select(CaseAnswer)
        .where(CaseAnswer.request_id == case.id, CaseAnswer.dispatched_at.is_(None))
        .order_by(CaseAnswer.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if row is None:
        raise ValueError(f"aucune réponse signée n'attend l'envoi pour le courrier {case.chrono}")
    now = utcnow()
    if row.delivery == AnswerDelivery.EMAIL:
        row.notice_id = deadlines.queue_answer_email(case, row.recipient, row.document).id
    row.dispatched_at = now
    if case.answered_at is None:
        case.answered_at = now
    services.close_case(row.answer, None, outcome="sent")
    audit.record(
        "correspondence.answer_sent",
        object_type="correspondence",
        object_id=case.id,
        data={"answer": row.answer.chrono, "delivery": str(row.delivery), "to": row.recipient},
    )
    return row


def answer_of(case: Correspondence) -> CaseAnswer | None:
    """The case's latest recorded answer, if any."""
    return db.session.execute(
        select(CaseAnswer)
        .where(CaseAnswer.request_id == case.id)
        .order_by(CaseAnswer.id.desc())
        .limit(1)
    ).scalar_one_or_none()


# --- the print queue of paper answers (mail office) -----------------------------------------


def answers_to_print(actor: User) -> list[CaseAnswer]:
    """Signed paper answers waiting for the next print batch, oldest first."""
    require(actor, "print", "answer")
    return list(
        db.session.execute(
            select(CaseAnswer)
            .where(
                CaseAnswer.delivery == AnswerDelivery.PAPER,
                CaseAnswer.dispatched_at.is_not(None),
                CaseAnswer.printed_at.is_(None),
            )
            .order_by(CaseAnswer.dispatched_at, CaseAnswer.id)
            .limit(MAX_PRINT_BATCH)
        ).scalars()
    )


def print_answers(actor: User) -> Document | None:
    """Gather the signed paper answers waiting into one PDF to print and post (each letter
    keeps its own signed copy in the registry); None when there is nothing to print."""
    import pikepdf

    waiting = answers_to_print(actor)
    if not waiting:
        db.session.rollback()
        return None
    merged = pikepdf.new()
    for row in waiting:
        with pikepdf.open(io.BytesIO(content(row.document))) as source:
            source.flatten_annotations("print")  # the signature stamps are printed
            merged.pages.extend(source.pages)
    out = io.BytesIO()
    merged.save(out)
    now = utcnow()
    batch = add_document(
        out.getvalue(),
        filename=f"reponses-{local_day(now).isoformat()}.pdf",
        mime_type="application/pdf",
        actor=actor,
        kind=PRINT_BATCH_KIND,
        description=f"Lot de {len(waiting)} réponses signées à imprimer",
    )
    for row in waiting:
        row.printed_at = now
        row.print_batch_id = batch.id
    audit.record(
        "correspondence.answers_printed",
        actor=actor,
        object_type="document",
        object_id=batch.id,
        data={"count": len(waiting), "answers": [row.answer.chrono for row in waiting]},
    )
    db.session.commit()
    return batch


def print_batches(actor: User, limit: int = 20) -> list[Document]:
    """The latest print batches of answers (to print one again)."""
    require(actor, "print", "answer")
    return list(
        db.session.execute(
            select(Document)
            .where(Document.kind == PRINT_BATCH_KIND)
            .order_by(Document.id.desc())
            .limit(limit)
        ).scalars()
    )


def case_documents_of_reply_task(task: HumanTask, viewer: User) -> list[Document]:
    """For a step of a reply folder (visa, signature, correction): the documents of the
    request it answers (the signer reads the letter answered), if the reader may see it —
    a confidential request stays with its service."""
    folder = parapheur.folder_for_instance(task.instance_id)
    if folder is None or folder.origin_type != ORIGIN:
        return []
    case = db.session.get(Correspondence, int(folder.origin_id))
    if case is None or not can(viewer, "view", "correspondence", case):
        return []
    return [link.document for link in case.attachments if link.role != ANSWER_ROLE]
