"""The accusé de réception: what it must say (CRPA R112-5, R112-11-1), the check that it
says it, and its rendering to PDF by weasyprint from an HTML/CSS template."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import segno
from babel.dates import format_date
from flask import current_app, render_template

from app.core.errors import ValidationFailed
from app.deadlines.models import ImplicitDecision

TEMPLATE = "deadlines/receipt.html"
STYLESHEET = Path(__file__).parent / "templates" / "deadlines" / "receipt.css"


class MissingMentions(ValidationFailed):
    """An acknowledgement cannot be issued: a mention the law requires is missing."""


@dataclass
class ServiceContact:
    """The service in charge, as the acknowledgement names it."""

    name: str | None
    address_lines: str | None
    postal_code: str | None
    city: str | None
    email: str | None
    phone: str | None

    @property
    def postal_address(self) -> str | None:
        if not (self.address_lines and self.postal_code and self.city):
            return None
        return f"{self.address_lines.strip()}\n{self.postal_code} {self.city}"


@dataclass
class Requester:
    """Who the acknowledgement goes to."""

    name: str | None
    address_lines: str | None = None
    postal_code: str | None = None
    city: str | None = None
    email: str | None = None

    @property
    def postal_address(self) -> str | None:
        if not (self.address_lines and self.postal_code and self.city):
            return None
        return f"{self.address_lines.strip()}\n{self.postal_code} {self.city}"


@dataclass
class ReceiptContent:
    """Everything an acknowledgement says, gathered before rendering."""

    chrono: str
    subject: str
    delivery: str  # "email" or "paper"
    electronic: bool
    issued_on: date
    received_on: date | None
    service: ServiceContact
    requester: Requester
    implicit_decision: str
    implicit_decision_on: date | None
    silence_months: int
    tracking_code: str
    tracking_url: str
    authority_name: str | None
    letterhead_lines: str | None = None
    signatory: str | None = None
    tribunal_name: str | None = None
    tribunal_address: str | None = None
    competent_since: date | None = None  # receipt by the competent service after a transfer
    transferred_from: str | None = None
    missing_documents: list[str] = field(default_factory=list)
    documents_due_on: date | None = None

    @property
    def awaiting_documents(self) -> bool:
        return bool(self.missing_documents)


# Each mention: (key, label naming it in the error, where it is written in the template).
MENTIONS = {
    "date_reception": "la date de réception de la demande",
    "decision_implicite": "la date à laquelle naîtra une décision implicite et son sens "
    "(acceptation ou rejet)",
    "service_designation": "la désignation du service chargé du dossier",
    "service_adresse": "l'adresse postale du service chargé du dossier",
    "service_courriel": "l'adresse électronique du service chargé du dossier",
    "service_telephone": "le numéro de téléphone du service chargé du dossier",
    "pieces_manquantes": "la liste des pièces manquantes et le délai pour les fournir",
    "voies_recours": "les délais et voies de recours (tribunal administratif compétent)",
    "attestation": "la possibilité de demander l'attestation de décision implicite d'acceptation",
    "destinataire_postal": "l'adresse postale du demandeur",
    "destinataire_courriel": "l'adresse électronique du demandeur",
    "autorite": "le nom de l'autorité administrative (en-tête)",
}


def required_mentions(content: ReceiptContent) -> list[str]:
    """The mentions this acknowledgement must carry."""
    keys = [
        "autorite",
        "date_reception",
        "service_designation",
        "service_adresse",
        "service_courriel",
        "service_telephone",
    ]
    if content.implicit_decision != ImplicitDecision.NONE:
        keys.append("decision_implicite")
    if content.implicit_decision == ImplicitDecision.REJECTION:
        keys.append("voies_recours")
    if content.implicit_decision == ImplicitDecision.ACCEPTANCE:
        keys.append("attestation")
    if content.awaiting_documents:
        keys.append("pieces_manquantes")
    keys.append("destinataire_courriel" if content.delivery == "email" else "destinataire_postal")
    return keys


def _present(content: ReceiptContent, key: str) -> bool:
    service = content.service
    checks = {
        "autorite": bool(content.authority_name),
        "date_reception": content.received_on is not None,
        # While documents are awaited the date is unknown: the law has the letter say the
        # delay runs from their receipt (L114-5) instead.
        "decision_implicite": content.implicit_decision in set(ImplicitDecision)
        and (content.implicit_decision_on is not None or content.awaiting_documents),
        "service_designation": bool(service.name),
        "service_adresse": service.postal_address is not None,
        "service_courriel": bool(service.email),
        "service_telephone": bool(service.phone),
        "pieces_manquantes": bool(content.missing_documents)
        and content.documents_due_on is not None,
        "voies_recours": bool(content.tribunal_name and content.tribunal_address),
        "attestation": True,  # fixed text of the template, checked in the rendered page
        "destinataire_postal": bool(content.requester.name)
        and content.requester.postal_address is not None,
        "destinataire_courriel": bool(content.requester.email),
    }
    return checks[key]


def check_mentions(content: ReceiptContent) -> None:
    """Refuse (MissingMentions) when the data of a required mention is missing."""
    missing = [key for key in required_mentions(content) if not _present(content, key)]
    if missing:
        _refuse(content, missing)


def _refuse(content: ReceiptContent, missing: list[str]) -> None:
    where = f" (service « {content.service.name} »)" if content.service.name else ""
    labels = [MENTIONS[key] for key in missing]
    plural = (
        "mentions obligatoires manquantes" if len(labels) > 1 else "mention obligatoire manquante"
    )
    raise MissingMentions(
        f"Accusé de réception du courrier {content.chrono} impossible : {plural} — "
        + " ; ".join(labels)
        + f"{where}.",
        errors=[
            {"field": key, "message": f"Mention manquante : {MENTIONS[key]}."} for key in missing
        ],
    )


_MARKER = re.compile(r'data-mention="([a-z_]+)"')


def render_html(content: ReceiptContent) -> str:
    """The acknowledgement as HTML; refused when the template left out a required mention."""
    check_mentions(content)
    html = render_template(
        TEMPLATE,
        ar=content,
        css=_stylesheet(),
        qr_svg=qr_code(content.tracking_url),
        fr=french_date,
        D=ImplicitDecision,
    )
    written = set(_MARKER.findall(html))
    missing = [key for key in required_mentions(content) if key not in written]
    if missing:
        _refuse(content, missing)
    return html


def render_pdf(content: ReceiptContent) -> bytes:
    """The acknowledgement as a PDF (weasyprint)."""
    return html_to_pdf(render_html(content))


def html_to_pdf(html: str) -> bytes:
    """Render HTML (with its inline CSS and images) to PDF."""
    from weasyprint import HTML

    return HTML(string=html, base_url=current_app.root_path).write_pdf()


_css_cache: dict[str, str] = {}


def _stylesheet() -> str:
    if "css" not in _css_cache:
        _css_cache["css"] = STYLESHEET.read_text(encoding="utf-8")
    return _css_cache["css"]


def qr_code(url: str) -> str:
    """An inline SVG QR code for the tracking address.

    The mask is fixed: choosing the best of eight costs more than the rest of the letter
    outside weasyprint, and any mask reads as well at this size.
    """
    return segno.make(url, error="m", mask=4, micro=False).svg_inline(
        scale=3, omitsize=False, border=2
    )


_MONTHS = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
]


def french_date(day: date | None) -> str:
    """« 1er janvier 2027 », « 12 janvier 2027 »."""
    if day is None:
        return ""
    number = "1er" if day.day == 1 else str(day.day)
    return f"{number} {_MONTHS[day.month - 1]} {day.year}"


def french_weekday_date(day: date) -> str:
    """« mardi 12 janvier 2027 »."""
    return format_date(day, "EEEE", locale="fr_FR") + " " + french_date(day)
