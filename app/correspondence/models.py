"""The registry: one case model ("correspondance") for every channel, and its numbering."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import Group, OrgUnit, User
from app.contacts.models import Contact
from app.core.db import JSONType, UTCDateTime, enum_type, utcnow
from app.core.extensions import db
from app.core.i18n import N_
from app.documents.models import Document


def _enum(cls, name):
    return Enum(
        cls, name=name, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]
    )


class Direction(enum.StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"
    INTERNAL = "internal"


class Channel(enum.StrEnum):
    PAPER = "paper"
    EMAIL = "email"
    WEB = "web"
    INTERNAL = "internal"
    API = "api"


class CaseStatus(enum.StrEnum):
    REGISTERED = "registered"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


class Confidentiality(enum.StrEnum):
    NORMAL = "normal"
    CONFIDENTIAL = "confidential"


class LinkKind(enum.StrEnum):
    REPLY_TO = "reply_to"
    SAME_THREAD = "same_thread"
    DUPLICATE_OF = "duplicate_of"


DIRECTION_LABELS = {
    Direction.INCOMING: N_("Arrivée"),
    Direction.OUTGOING: N_("Départ"),
    Direction.INTERNAL: N_("Interne"),
}
CHANNEL_LABELS = {
    Channel.PAPER: N_("Courrier papier"),
    Channel.EMAIL: N_("Courriel"),
    Channel.WEB: N_("Formulaire en ligne"),
    Channel.INTERNAL: N_("Note interne"),
    Channel.API: N_("Application métier"),
}
STATUS_LABELS = {
    CaseStatus.REGISTERED: N_("Enregistré"),
    CaseStatus.IN_PROGRESS: N_("En cours de traitement"),
    CaseStatus.CLOSED: N_("Clos"),
}
CONFIDENTIALITY_LABELS = {
    Confidentiality.NORMAL: N_("Normal"),
    Confidentiality.CONFIDENTIAL: N_("Confidentiel"),
}
DOCUMENT_ROLE_LABELS = {
    "original": N_("document reçu"),
    "attachment": N_("pièce jointe"),
    "scan": N_("numérisation"),
    "ocr": N_("texte reconnu (OCR)"),
    "raw_message": N_("message d'origine"),
    "quarantine": N_("quarantaine"),
    "reponse": N_("réponse signée"),
}
EVENT_LABELS = {
    "correspondence.register": N_("Enregistré"),
    "correspondence.distribute": N_("Circuit démarré"),
    "correspondence.distribution_failed": N_("Circuit non démarré"),
    "correspondence.qualify": N_("Qualifié"),
    "correspondence.assign": N_("Attribué au service"),
    "correspondence.copy": N_("Copie transmise"),
    "correspondence.redirect": N_("Réorienté"),
    "correspondence.link": N_("Lié à un autre courrier"),
    "correspondence.grant": N_("Accès donné"),
    "correspondence.close": N_("Clos"),
    "correspondence.follow_up": N_("Complément reçu"),
    "correspondence.confirmation_sent": N_("Confirmation envoyée au demandeur"),
    "correspondence.reply_submitted": N_("Réponse mise au parapheur"),
    "correspondence.answer": N_("Réponse signée enregistrée"),
    "correspondence.answer_sent": N_("Réponse envoyée"),
    "correspondence.answers_printed": N_("Réponse imprimée"),
    "correspondence.sender": N_("Expéditeur renseigné"),
    "correspondence.anonymise": N_("Anonymisé (durée de conservation échue)"),
}
LINK_LABELS = {
    LinkKind.REPLY_TO: N_("Réponse à"),
    LinkKind.SAME_THREAD: N_("Même échange"),
    LinkKind.DUPLICATE_OF: N_("Doublon de"),
}


class CaseType(db.Model):
    """A kind of item (demande d'information, réclamation, candidature…), set by admins.

    ``process_key`` is the circuit each new item of this type starts; ``channel_processes``
    overrides it per channel (``{"web": "…"}``). Its delays are the deadlines domain's
    rules (``DeadlineRule``).
    """

    __tablename__ = "case_type"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    process_key: Mapped[str | None] = mapped_column(String(200))
    channel_processes: Mapped[dict] = mapped_column(JSONType, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=100)

    def process_for(self, channel: Channel | str) -> str | None:
        """The circuit an item of this type received on ``channel`` starts."""
        return (self.channel_processes or {}).get(str(channel)) or self.process_key


class ChronoCounter(db.Model):
    """The last number given in one register for one year (locked while numbering)."""

    __tablename__ = "chrono_counter"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    register: Mapped[str] = mapped_column(String(4), primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer, default=0)


class Correspondence(db.Model):
    """A registered item: its number, legal dates, sender, service in charge and circuit."""

    __tablename__ = "correspondence"
    __table_args__ = (
        UniqueConstraint("year", "register", "sequence", name="uq_correspondence_number"),
        Index("ix_correspondence_registered", "registered_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chrono: Mapped[str] = mapped_column(String(30), unique=True)
    year: Mapped[int] = mapped_column(Integer)
    register: Mapped[str] = mapped_column(String(4))
    sequence: Mapped[int] = mapped_column(Integer)
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "case_direction"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "case_channel"), index=True)
    type_id: Mapped[int | None] = mapped_column(ForeignKey("case_type.id"), index=True)
    subject: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str | None] = mapped_column(Text)
    sender_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )
    service_id: Mapped[int | None] = mapped_column(
        ForeignKey("org_unit.id", ondelete="SET NULL"), index=True
    )
    service_group: Mapped[str | None] = mapped_column(String(80), index=True)
    confidentiality: Mapped[Confidentiality] = mapped_column(
        _enum(Confidentiality, "case_confidentiality"), default=Confidentiality.NORMAL
    )
    status: Mapped[CaseStatus] = mapped_column(
        _enum(CaseStatus, "case_status"), default=CaseStatus.REGISTERED, index=True
    )
    # The day the Département received the item (legal start per channel) ...
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # ... and the start of the legal clock: the same, or receipt by the competent service
    # after a redirect.
    legal_start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    registered_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the signed answer left (e-mailed or put in the print queue): the end of the
    # service clock for the dashboard (a case closed without an answer uses closed_at).
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the retention period ran out and the case's personal data was erased.
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    process_instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("process_instance.id", ondelete="SET NULL"), index=True
    )
    # Set when a distribution (process start) was claimed, so two workers never start two.
    distribution_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Free metadata: web-form answers, the business application's reference, mail headers.
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    # Reasons a person must look: {"unparsed": …, "quarantine": …, "process_error": …}.
    flags: Mapped[dict] = mapped_column(JSONType, default=dict)

    case_type: Mapped[CaseType | None] = relationship()
    sender: Mapped[Contact | None] = relationship()
    service: Mapped[OrgUnit | None] = relationship()
    registered_by: Mapped[User | None] = relationship()
    attachments: Mapped[list[CaseDocument]] = relationship(
        back_populates="correspondence", order_by="CaseDocument.id", cascade="all, delete-orphan"
    )
    copies: Mapped[list[CaseCopy]] = relationship(
        back_populates="correspondence", order_by="CaseCopy.id", cascade="all, delete-orphan"
    )
    grants: Mapped[list[CaseAccess]] = relationship(
        back_populates="correspondence", cascade="all, delete-orphan"
    )
    redirects: Mapped[list[CaseRedirect]] = relationship(
        back_populates="correspondence", order_by="CaseRedirect.id", cascade="all, delete-orphan"
    )

    @property
    def needs_attention(self) -> bool:
        return bool(self.flags)


class CaseDocument(db.Model):
    """A document of a case, with its role (scan, e-mail body, attachment, raw message…)."""

    __tablename__ = "case_document"
    __table_args__ = (
        UniqueConstraint("correspondence_id", "document_id", name="uq_case_document"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    correspondence_id: Mapped[int] = mapped_column(
        ForeignKey("correspondence.id", ondelete="CASCADE"), index=True
    )
    document_id: Mapped[int] = mapped_column(ForeignKey("document.id"), index=True)
    role: Mapped[str] = mapped_column(String(30), default="attachment")
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    correspondence: Mapped[Correspondence] = relationship(back_populates="attachments")
    document: Mapped[Document] = relationship()


class CaseCopy(db.Model):
    """A service that receives a copy of a case for information."""

    __tablename__ = "case_copy"
    __table_args__ = (UniqueConstraint("correspondence_id", "group_id", name="uq_case_copy"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    correspondence_id: Mapped[int] = mapped_column(
        ForeignKey("correspondence.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[int] = mapped_column(ForeignKey("user_group.id", ondelete="CASCADE"))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    added_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    correspondence: Mapped[Correspondence] = relationship(back_populates="copies")
    group: Mapped[Group] = relationship()


class CaseAccess(db.Model):
    """A person given access to a (confidential) case."""

    __tablename__ = "case_access"
    __table_args__ = (UniqueConstraint("correspondence_id", "user_id", name="uq_case_access"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    correspondence_id: Mapped[int] = mapped_column(
        ForeignKey("correspondence.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    granted_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    correspondence: Mapped[Correspondence] = relationship(back_populates="grants")
    user: Mapped[User] = relationship(foreign_keys=[user_id])


class CaseRedirect(db.Model):
    """A case sent on to the competent service: who, why, and when that service got it."""

    __tablename__ = "case_redirect"

    id: Mapped[int] = mapped_column(primary_key=True)
    correspondence_id: Mapped[int] = mapped_column(
        ForeignKey("correspondence.id", ondelete="CASCADE"), index=True
    )
    from_group: Mapped[str | None] = mapped_column(String(80))
    to_group: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    received_by_competent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))

    correspondence: Mapped[Correspondence] = relationship(back_populates="redirects")
    by: Mapped[User | None] = relationship()


class CaseLink(db.Model):
    """A link between two cases: reply to, same thread, duplicate of."""

    __tablename__ = "case_link"
    __table_args__ = (UniqueConstraint("source_id", "target_id", "kind", name="uq_case_link"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(
        ForeignKey("correspondence.id", ondelete="CASCADE"), index=True
    )
    target_id: Mapped[int] = mapped_column(
        ForeignKey("correspondence.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[LinkKind] = mapped_column(_enum(LinkKind, "case_link_kind"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    source: Mapped[Correspondence] = relationship(foreign_keys=[source_id])
    target: Mapped[Correspondence] = relationship(foreign_keys=[target_id])


class AnswerDelivery(enum.StrEnum):
    EMAIL = "email"
    PAPER = "paper"


class CaseAnswer(db.Model):
    """A signed answer to an incoming item: the outgoing item that carries it, the signed
    letter, and how it leaves — e-mailed through the notices outbox, or printed by the
    mail office with the next batch."""

    __tablename__ = "case_answer"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("correspondence.id", ondelete="CASCADE"), index=True
    )
    answer_id: Mapped[int] = mapped_column(
        ForeignKey("correspondence.id", ondelete="CASCADE"), unique=True
    )
    # The parapheur folder the letter was signed in (an id: the registry does not depend
    # on the parapheur's tables).
    folder_id: Mapped[int | None] = mapped_column(Integer, index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("document.id"))
    delivery: Mapped[AnswerDelivery | None] = mapped_column(
        enum_type(AnswerDelivery, "answer_delivery")
    )
    recipient: Mapped[str | None] = mapped_column(String(320))
    notice_id: Mapped[int | None] = mapped_column(Integer)  # the e-mail in the outbox
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    printed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    print_batch_id: Mapped[int | None] = mapped_column(ForeignKey("document.id"))

    request: Mapped[Correspondence] = relationship(foreign_keys=[request_id])
    answer: Mapped[Correspondence] = relationship(foreign_keys=[answer_id])
    document: Mapped[Document] = relationship(foreign_keys=[document_id])


class CaseSearch(db.Model):
    """The searchable text of a case (subject, sender, bodies, OCR text).

    PostgreSQL searches ``vector`` (French configuration, GIN index); SQLite searches the
    FTS5 table ``correspondence_fts`` kept in step by the services.
    """

    __tablename__ = "case_search"
    __table_args__ = (Index("ix_case_search_vector", "vector", postgresql_using="gin"),)

    correspondence_id: Mapped[int] = mapped_column(
        ForeignKey("correspondence.id", ondelete="CASCADE"), primary_key=True
    )
    content: Mapped[str] = mapped_column(Text, default="")
    vector: Mapped[str | None] = mapped_column(Text().with_variant(TSVECTOR(), "postgresql"))


class FormSubmissionLog(db.Model):
    """Recent public form submissions per address: the database-backed rate limit."""

    __tablename__ = "form_submission_log"
    __table_args__ = (Index("ix_form_submission_log_key_at", "client_key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_key: Mapped[str] = mapped_column(String(64))
    form_key: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted: Mapped[bool] = mapped_column(Boolean, default=True)
