"""Document records: metadata over content-addressed files."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import User
from app.core.db import JSONType, UTCDateTime, utcnow
from app.core.extensions import db


class Document(db.Model):
    """A file known to Missive. Versions (a signed PDF, an OCR'd scan) point to their parent."""

    __tablename__ = "document"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mime_type: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(40), default="original")
    description: Mapped[str | None] = mapped_column(String(500))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("document.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    flags: Mapped[dict] = mapped_column(JSONType, default=dict)
    text: Mapped[str | None] = mapped_column(Text)

    created_by: Mapped[User | None] = relationship()
    parent: Mapped[Document | None] = relationship(remote_side=[id])
