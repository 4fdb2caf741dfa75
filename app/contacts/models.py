"""Contacts: one record per correspondent."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import UTCDateTime, enum_type, utcnow
from app.core.extensions import db


class ContactKind(enum.StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"


class Contact(db.Model):
    """A correspondent: a person or an organisation (fields as in CONTRACT.md)."""

    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ContactKind] = mapped_column(
        enum_type(ContactKind, "contact_kind"),
        default=ContactKind.PERSON,
    )
    civility: Mapped[str | None] = mapped_column(String(20))
    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    organisation_name: Mapped[str | None] = mapped_column(String(300))
    siret: Mapped[str | None] = mapped_column(String(14), index=True)
    rna: Mapped[str | None] = mapped_column(String(10), index=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    address_lines: Mapped[str | None] = mapped_column(Text)
    postal_code: Mapped[str | None] = mapped_column(String(10), index=True)
    city: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    # Set when this record was merged into another one (kept so the merge can be undone).
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL"), index=True
    )

    @property
    def display_name(self) -> str:
        """How the contact is named in lists: « Mme Claire DUPONT » or the organisation."""
        if self.kind == ContactKind.ORGANISATION:
            return self.organisation_name or ""
        parts = [self.civility, self.first_name, (self.last_name or "").upper()]
        return " ".join(p for p in parts if p)
