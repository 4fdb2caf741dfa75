"""The e-mails of deadlines: the acknowledgement to the requester (PDF attached), the
reminder to the service, the escalation to its head."""

from __future__ import annotations

from flask import current_app

from app.core.extensions import db
from app.correspondence.models import Correspondence
from app.deadlines.calendar import local_day
from app.deadlines.models import DeadlineNotice, ImplicitDecision
from app.deadlines.receipts import french_date
from app.documents.models import Document
from app.documents.services import content
from app.mail.outgoing import send_mail


def send(notice: DeadlineNotice, case: Correspondence) -> str:
    """Send one notice; return the Message-ID."""
    subject, body = compose(notice, case)
    attachments = []
    if notice.document_id is not None:
        document = db.session.get(Document, notice.document_id)
        attachments.append((document.filename, document.mime_type, content(document)))
    reply_to = case.service.email if case.service is not None else None
    return send_mail(notice.recipients, subject, body, reply_to=reply_to, attachments=attachments)


def _case_url(case: Correspondence) -> str:
    base = current_app.config["MISSIVE_BASE_URL"].rstrip("/")
    return f"{base}/correspondences/{case.id}"


def compose(notice: DeadlineNotice, case: Correspondence) -> tuple[str, str]:
    """Subject and plain-text body of a notice."""
    due = french_date(local_day(case.due_at)) if case.due_at else "—"
    if notice.kind == "acknowledgement":
        from app.deadlines.services import format_code, tracking_url

        clock = case.clock
        lines = [
            "Madame, Monsieur,",
            "",
            f"Votre demande « {case.subject} » a bien été reçue le "
            f"{french_date(local_day(case.received_at))} et enregistrée sous le numéro "
            f"{case.chrono}.",
            "Vous trouverez en pièce jointe l'accusé de réception, qui indique le service "
            "chargé de votre dossier",
        ]
        if clock.implicit_decision != ImplicitDecision.NONE:
            lines[-1] += ", la date et le sens d'une éventuelle décision implicite"
        lines[-1] += " ainsi que vos droits."
        lines += [
            "",
            f"Suivre votre demande : {tracking_url(case)}",
            f"(numéro {case.chrono}, code de suivi {format_code(clock.tracking_code)})",
            "",
            "Ce message est envoyé automatiquement ; pour toute question, répondez-y : il "
            "parviendra au service chargé de votre dossier.",
        ]
        return f"Accusé de réception de votre demande n° {case.chrono}", "\n".join(lines)
    if notice.kind == "reply":
        lines = [
            "Madame, Monsieur,",
            "",
            f"Vous trouverez en pièce jointe la réponse du Département à votre demande "
            f"« {case.subject} » du {french_date(local_day(case.received_at))}, enregistrée "
            f"sous le numéro {case.chrono}.",
            "",
            "Ce courrier est signé électroniquement : sa signature peut être vérifiée avec "
            "tout lecteur de PDF.",
            "",
            "Pour toute question, répondez à ce message : il parviendra au service chargé de "
            "votre dossier.",
        ]
        return f"Réponse à votre demande n° {case.chrono}", "\n".join(lines)
    if notice.kind == "reminder":
        return (
            f"Relance : courrier {case.chrono} à traiter avant le {due}",
            f"Le courrier {case.chrono} « {case.subject} » doit recevoir une réponse avant le "
            f"{due}.\n\n{_case_url(case)}\n",
        )
    return (
        f"Courrier en retard : {case.chrono} (échéance du {due} dépassée)",
        f"Le courrier {case.chrono} « {case.subject} », confié à "
        f"{case.service.name if case.service else case.service_group}, n'a pas reçu de réponse "
        f"à son échéance du {due}. Une tâche de suivi vous est attribuée.\n\n{_case_url(case)}\n",
    )
