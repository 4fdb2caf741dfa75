"""Drafts of circuits and decision tables that analysts edit in the studio before publishing."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import User
from app.core.db import JSONType, UTCDateTime, enum_type, utcnow
from app.core.extensions import db


class DraftKind(enum.StrEnum):
    BPMN = "bpmn"
    DMN = "dmn"


class ProcessDraft(db.Model):
    """The working copy of one BPMN or DMN file, shared by the analysts who edit it.

    ``revision`` grows by one on every save: a save based on an older revision is
    refused, so two analysts never overwrite each other silently.
    """

    __tablename__ = "process_draft"
    __table_args__ = (UniqueConstraint("kind", "key", name="uq_process_draft_kind_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[DraftKind] = mapped_column(
        enum_type(DraftKind, "draft_kind", length=10),
        default=DraftKind.BPMN,
    )
    key: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    filename: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    base_version: Mapped[int | None] = mapped_column(Integer)
    problems: Mapped[list] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    updated_by: Mapped[User | None] = relationship(foreign_keys=[updated_by_id])
