"""Functional mailboxes (IMAP) and the messages taken from them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import JSONType, UTCDateTime, utcnow
from app.core.extensions import db


class Mailbox(db.Model):
    """A shared mailbox polled over IMAP; its password is stored encrypted."""

    __tablename__ = "mailbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer, default=993)
    username: Mapped[str] = mapped_column(String(255))
    secret: Mapped[str] = mapped_column(Text)  # Fernet token of the password
    folder: Mapped[str] = mapped_column(String(255), default="INBOX")
    processed_folder: Mapped[str] = mapped_column(String(255), default="Traités")
    use_tls: Mapped[bool] = mapped_column(Boolean, default=True)
    group_name: Mapped[str | None] = mapped_column(String(80))
    type_code: Mapped[str | None] = mapped_column(String(60))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MailMessage(db.Model):
    """One e-mail, registered once whatever the number of mailboxes it reached.

    ``message_key`` is the Message-ID plus a digest of the content (headers added in
    transit excluded), so the same message delivered to two mailboxes is one row.
    """

    __tablename__ = "mail_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_key: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    correspondence_id: Mapped[int | None] = mapped_column(
        ForeignKey("correspondence.id", ondelete="SET NULL"), index=True
    )
    raw_document_id: Mapped[int | None] = mapped_column(ForeignKey("document.id"))
    subject: Mapped[str | None] = mapped_column(String(998))
    from_address: Mapped[str | None] = mapped_column(String(320))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list] = mapped_column(JSONType, default=list)
    text_body: Mapped[str | None] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text)  # sanitised with nh3
    problems: Mapped[list] = mapped_column(JSONType, default=list)
    size: Mapped[int] = mapped_column(BigInteger, default=0)


class MailReceipt(db.Model):
    """A message as seen in one mailbox folder, keyed by UIDVALIDITY and UID."""

    __tablename__ = "mail_receipt"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "folder", "uidvalidity", "uid", name="uq_mail_receipt"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("mail_message.id", ondelete="CASCADE"), index=True
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    mailbox: Mapped[Mailbox] = relationship()
    message: Mapped[MailMessage] = relationship()
