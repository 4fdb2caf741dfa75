"""Contacts: one record per correspondent, with addresses, e-mails, phones and links.

``Contact`` keeps the fields of CONTRACT.md (``email``, ``phone``, ``address_lines``,
``postal_code``, ``city`` are the *preferred* ones, kept in step with the child rows by
the services); the child tables hold every address, e-mail and phone number.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

import app.contacts.normalise  # noqa: F401  (registers the SQLite text functions)
from app.core.db import JSONType, UTCDateTime, enum_type, utcnow
from app.core.extensions import db


def _search_text(length: int):
    """Folded text compared byte-wise: prefix ranges and ORDER BY use the B-tree everywhere."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class ContactKind(enum.StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"


class OrganisationType(enum.StrEnum):
    COMPANY = "company"  # entreprise: SIREN/SIRET
    ASSOCIATION = "association"  # association loi 1901: RNA
    PUBLIC_BODY = "public_body"  # collectivité, établissement public, service de l'État
    OTHER = "other"


class Channel(enum.StrEnum):
    POST = "post"
    EMAIL = "email"
    PHONE = "phone"
    SMS = "sms"


class ContactStatus(enum.StrEnum):
    ACTIVE = "active"
    MERGED = "merged"  # absorbed by another record (``merged_into_id``); can be undone
    ANONYMISED = "anonymised"  # identity erased on request or by retention; counts remain


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

    # Beyond the contract.
    organisation_type: Mapped[OrganisationType | None] = mapped_column(
        enum_type(OrganisationType, "organisation_type")
    )
    siren: Mapped[str | None] = mapped_column(String(9), index=True)
    public_body_code: Mapped[str | None] = mapped_column(String(20))  # SIREN or INSEE code
    birth_name: Mapped[str | None] = mapped_column(String(120))  # nom de naissance
    preferred_channel: Mapped[Channel | None] = mapped_column(enum_type(Channel, "contact_channel"))
    consent_email: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_sms: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_surveys: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notes: Mapped[str | None] = mapped_column(Text)
    status: Mapped[ContactStatus] = mapped_column(
        enum_type(ContactStatus, "contact_status"), default=ContactStatus.ACTIVE, index=True
    )
    commune_code: Mapped[str | None] = mapped_column(String(5), index=True)
    anonymised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Search columns, written by the services through ``normalise.fold``.
    search_name: Mapped[str] = mapped_column(_search_text(500), default="")
    search_city: Mapped[str] = mapped_column(_search_text(120), default="")

    created_by = relationship("User", foreign_keys=[created_by_id])
    addresses: Mapped[list[ContactAddress]] = relationship(
        back_populates="contact",
        cascade="all, delete-orphan",
        order_by="(ContactAddress.is_primary.desc(), ContactAddress.id)",
    )
    emails: Mapped[list[ContactEmail]] = relationship(
        back_populates="contact",
        cascade="all, delete-orphan",
        order_by="(ContactEmail.is_primary.desc(), ContactEmail.id)",
    )
    phones: Mapped[list[ContactPhone]] = relationship(
        back_populates="contact",
        cascade="all, delete-orphan",
        order_by="(ContactPhone.is_primary.desc(), ContactPhone.id)",
    )

    __table_args__ = (
        # PostgreSQL: trigram index (typo-tolerant and substring search); SQLite: B-tree.
        Index(
            "ix_contact_search_name",
            "search_name",
            postgresql_using="gin",
            postgresql_ops={"search_name": "gin_trgm_ops"},
        ),
        # Prefix search and ordering of lists.
        Index("ix_contact_status_search_name", "status", "search_name", "id"),
        # Everyone at a postal code, in name order (« 44000 »).
        Index("ix_contact_status_postal_code_name", "status", "postal_code", "search_name", "id"),
        # Everyone in a town, in name order (« nantes »).
        Index("ix_contact_status_city_name", "status", "search_city", "search_name", "id"),
    )

    # Optimistic concurrency: every UPDATE says « WHERE version = <the version read> »;
    # the services increment it themselves.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}

    @property
    def display_name(self) -> str:
        """How the contact is named in lists: « Mme Claire DUPONT » or the organisation."""
        if self.status == ContactStatus.ANONYMISED:
            return "Contact anonymisé"
        if self.kind == ContactKind.ORGANISATION:
            return self.organisation_name or ""
        parts = [self.civility, self.first_name, (self.last_name or "").upper()]
        return " ".join(p for p in parts if p)

    @property
    def is_person(self) -> bool:
        return self.kind == ContactKind.PERSON

    @property
    def primary_address(self) -> ContactAddress | None:
        return next((a for a in self.addresses if a.is_primary), None) or (
            self.addresses[0] if self.addresses else None
        )


class ContactSearchWord(db.Model):
    """Every word met in contact names, folded: the dictionary typo-tolerant search corrects
    query words against (a few thousand rows where the contact table has a million)."""

    __tablename__ = "contact_search_word"

    word: Mapped[str] = mapped_column(_search_text(120), primary_key=True)

    __table_args__ = (
        Index(
            "ix_contact_search_word_trgm",
            "word",
            postgresql_using="gin",
            postgresql_ops={"word": "gin_trgm_ops"},
        ),
    )


class ContactAddress(db.Model):
    """A postal address laid out as AFNOR NF Z10-011 lines (line 1, the name, is the contact)."""

    __tablename__ = "contact_address"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str | None] = mapped_column(String(60))  # domicile, siège, facturation…
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    line2: Mapped[str | None] = mapped_column(String(38))  # appartement, étage, « chez »
    line3: Mapped[str | None] = mapped_column(String(38))  # entrée, bâtiment, résidence
    line4: Mapped[str | None] = mapped_column(String(38))  # numéro et libellé de la voie
    line5: Mapped[str | None] = mapped_column(String(38))  # lieu-dit, BP, commune déléguée
    postal_code: Mapped[str] = mapped_column(String(10), index=True)
    city: Mapped[str] = mapped_column(String(38))  # localité (ligne 6 avec le code postal)
    country: Mapped[str] = mapped_column(String(2), default="FR")  # ISO 3166-1 alpha-2
    commune_code: Mapped[str | None] = mapped_column(String(5))
    search_street: Mapped[str] = mapped_column(String(200), default="")

    contact: Mapped[Contact] = relationship(back_populates="addresses")

    @property
    def body_lines(self) -> list[str]:
        """Lines 2 to 5 that are filled (what the contract calls ``address_lines``)."""
        return [line for line in (self.line2, self.line3, self.line4, self.line5) if line]


class ContactEmail(db.Model):
    __tablename__ = "contact_email"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254), index=True)  # lower-case
    label: Mapped[str | None] = mapped_column(String(60))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)

    contact: Mapped[Contact] = relationship(back_populates="emails")


class ContactPhone(db.Model):
    __tablename__ = "contact_phone"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(20), index=True)  # E.164
    label: Mapped[str | None] = mapped_column(String(60))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)

    contact: Mapped[Contact] = relationship(back_populates="phones")


class ContactLink(db.Model):
    """A person acts for an organisation (gérant, président d'association, mandataire…)."""

    __tablename__ = "contact_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    person: Mapped[Contact] = relationship(foreign_keys=[person_id])
    organisation: Mapped[Contact] = relationship(foreign_keys=[organisation_id])

    __table_args__ = (
        db.UniqueConstraint("person_id", "organisation_id", name="uq_contact_link_pair"),
    )


class DuplicateStatus(enum.StrEnum):
    OPEN = "open"
    DISMISSED = "dismissed"  # « pas un doublon »: never proposed again
    MERGED = "merged"


class DuplicateCandidate(db.Model):
    """A pair of contacts that may be the same correspondent, scored, awaiting review."""

    __tablename__ = "contact_duplicate"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )  # the lower id of the pair
    second_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list] = mapped_column(JSONType, default=list)
    status: Mapped[DuplicateStatus] = mapped_column(
        enum_type(DuplicateStatus, "duplicate_status"), default=DuplicateStatus.OPEN, index=True
    )
    found_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    first: Mapped[Contact] = relationship(foreign_keys=[first_id])
    second: Mapped[Contact] = relationship(foreign_keys=[second_id])
    reviewed_by = relationship("User")

    __table_args__ = (
        db.UniqueConstraint("first_id", "second_id", name="uq_contact_duplicate_pair"),
    )


class ContactMerge(db.Model):
    """An audited merge: who absorbed which record, what moved, enough to undo it."""

    __tablename__ = "contact_merge"

    id: Mapped[int] = mapped_column(primary_key=True)
    survivor_id: Mapped[int] = mapped_column(
        ForeignKey("contact.id", ondelete="CASCADE"), index=True
    )
    merged_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"), index=True)
    merged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    merged_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    # {"survivor_before": {...}, "survivor_after": {...}, "moved": {"table.column": [ids]}}
    snapshot: Mapped[dict] = mapped_column(JSONType, default=dict)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undone_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    survivor: Mapped[Contact] = relationship(foreign_keys=[survivor_id])
    merged: Mapped[Contact] = relationship(foreign_keys=[merged_id])
    merged_by = relationship("User", foreign_keys=[merged_by_id])
    undone_by = relationship("User", foreign_keys=[undone_by_id])


class RetentionAction(enum.StrEnum):
    ANONYMISE = "anonymise"
    DELETE = "delete"


class RetentionRule(db.Model):
    """How long the cases of one type are kept after they close, then what happens."""

    __tablename__ = "contact_retention_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_type: Mapped[str] = mapped_column(String(80), unique=True)
    label: Mapped[str | None] = mapped_column(String(200))
    months: Mapped[int] = mapped_column(Integer)
    action: Mapped[RetentionAction] = mapped_column(
        enum_type(RetentionAction, "retention_action"), default=RetentionAction.ANONYMISE
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
