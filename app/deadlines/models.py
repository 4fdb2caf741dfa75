"""Deadline rules per case type and channel, closures, the clocks of each case and the
suspensions of their legal clock, and the letterhead settings of acknowledgements."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import User
from app.core.db import JSONType, UTCDateTime, utcnow
from app.core.extensions import db
from app.core.i18n import N_
from app.documents.models import Document


class ImplicitDecision(enum.StrEnum):
    """What two months of silence mean for a request (CRPA L231-1, L231-4)."""

    ACCEPTANCE = "acceptance"
    REJECTION = "rejection"
    NONE = "none"  # not a request for a decision (information, invitation…)


IMPLICIT_DECISION_LABELS = {
    ImplicitDecision.ACCEPTANCE: N_("Silence vaut acceptation"),
    ImplicitDecision.REJECTION: N_("Silence vaut rejet"),
    ImplicitDecision.NONE: N_("Pas de décision implicite"),
}


class AckStatus(enum.StrEnum):
    """Where the accusé de réception of a case stands."""

    NOT_REQUIRED = "not_required"
    PENDING = "pending"  # to be generated (by the circuit or an agent)
    TO_SEND = "to_send"  # generated, waiting for the e-mail to leave
    TO_PRINT = "to_print"  # generated, waiting for the next paper batch
    SENT = "sent"  # e-mailed
    PRINTED = "printed"  # printed in a batch for the post
    FAILED = "failed"  # could not be generated or sent: see ``ack_error``


ACK_STATUS_LABELS = {
    AckStatus.NOT_REQUIRED: N_("Non requis"),
    AckStatus.PENDING: N_("À établir"),
    AckStatus.TO_SEND: N_("À envoyer par courriel"),
    AckStatus.TO_PRINT: N_("À imprimer"),
    AckStatus.SENT: N_("Envoyé par courriel"),
    AckStatus.PRINTED: N_("Imprimé pour envoi postal"),
    AckStatus.FAILED: N_("En échec"),
}


class DeadlineRule(db.Model):
    """The delays of one case type on one channel (either may be empty: any).

    Empty fields are inherited from the less specific rules (type, channel, general) and
    finally from the channel's defaults. ``target_days`` working days counted from the day
    after receipt; ``ack_days`` calendar days to acknowledge; ``reminder_days`` working
    days before the due date; ``silence_months`` and ``implicit_decision`` make the legal
    clock.
    """

    __tablename__ = "deadline_rule"
    __table_args__ = (UniqueConstraint("case_type_id", "channel", name="uq_deadline_rule"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_type_id: Mapped[int | None] = mapped_column(
        ForeignKey("case_type.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str | None] = mapped_column(String(20))
    target_days: Mapped[int | None] = mapped_column(Integer)
    ack_days: Mapped[int | None] = mapped_column(Integer)
    acknowledge: Mapped[bool | None] = mapped_column(Boolean)
    reminder_days: Mapped[int | None] = mapped_column(Integer)
    silence_months: Mapped[int | None] = mapped_column(Integer)
    implicit_decision: Mapped[str | None] = mapped_column(String(20))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    case_type = relationship("CaseType")


class Closure(db.Model):
    """A day the organisation is closed (pont, fermeture annuelle): not a working day."""

    __tablename__ = "closure"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )


class CaseClock(db.Model):
    """The two clocks of an incoming case and its acknowledgement.

    The rule in force at registration is copied here, so a later change of the rules
    never moves the deadlines of cases already received.
    """

    __tablename__ = "case_clock"

    correspondence_id: Mapped[int] = mapped_column(
        ForeignKey("correspondence.id", ondelete="CASCADE"), primary_key=True
    )
    target_days: Mapped[int] = mapped_column(Integer)
    ack_days: Mapped[int] = mapped_column(Integer)
    acknowledge: Mapped[bool] = mapped_column(Boolean)
    reminder_days: Mapped[int] = mapped_column(Integer)
    silence_months: Mapped[int] = mapped_column(Integer)
    implicit_decision: Mapped[str] = mapped_column(String(20))
    # Service target: due date (on the case) and the reminder before it.
    reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Legal clock: the day an implicit decision arises (None while suspended or none).
    implicit_decision_on: Mapped[date | None] = mapped_column(Date, index=True)
    # Acknowledgement.
    ack_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    ack_status: Mapped[str] = mapped_column(String(20), default=AckStatus.PENDING, index=True)
    ack_delivery: Mapped[str | None] = mapped_column(String(10))  # email | paper
    ack_document_id: Mapped[int | None] = mapped_column(
        ForeignKey("document.id", ondelete="SET NULL")
    )
    ack_generated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ack_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ack_error: Mapped[str | None] = mapped_column(Text)
    # The code printed on the acknowledgement to follow the request online.
    tracking_code: Mapped[str] = mapped_column(String(16))
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_to_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    correspondence = relationship(
        "Correspondence", backref=db.backref("clock", uselist=False, passive_deletes=True)
    )
    ack_document: Mapped[Document | None] = relationship()
    escalated_to: Mapped[User | None] = relationship()
    suspensions: Mapped[list[ClockSuspension]] = relationship(
        order_by="ClockSuspension.id", cascade="all, delete-orphan"
    )

    @property
    def open_suspension(self) -> ClockSuspension | None:
        return next((s for s in self.suspensions if s.resumed_at is None), None)


class ClockSuspension(db.Model):
    """Documents asked from the requester (CRPA L114-5): the legal clock stops until they
    arrive."""

    __tablename__ = "clock_suspension"

    id: Mapped[int] = mapped_column(primary_key=True)
    correspondence_id: Mapped[int] = mapped_column(
        ForeignKey("case_clock.correspondence_id", ondelete="CASCADE"), index=True
    )
    missing_documents: Mapped[list] = mapped_column(JSONType, default=list)
    documents_due_on: Mapped[date] = mapped_column(Date)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    requested_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    resumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resumed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )


class ReceiptSettings(db.Model):
    """The letterhead and legal texts of acknowledgements (one row)."""

    __tablename__ = "receipt_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    authority_name: Mapped[str | None] = mapped_column(String(200))
    letterhead_lines: Mapped[str | None] = mapped_column(Text)
    signatory: Mapped[str | None] = mapped_column(String(300))
    tribunal_name: Mapped[str | None] = mapped_column(String(200))
    tribunal_address: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )


class DeadlineNotice(db.Model):
    """An e-mail to send once the transaction that decided it has committed (outbox):
    an acknowledgement or the signed answer to a requester, a reminder to a service, an
    escalation to its head."""

    __tablename__ = "deadline_notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    correspondence_id: Mapped[int] = mapped_column(
        ForeignKey("correspondence.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # acknowledgement | reminder | escalation | reply
    recipients: Mapped[list] = mapped_column(JSONType, default=list)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("document.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(300))
