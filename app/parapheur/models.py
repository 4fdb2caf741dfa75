"""Folders, their documents and steps, signatures, signing certificates and delegations."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import User
from app.core.db import JSONType, UTCDateTime, utcnow
from app.core.extensions import db
from app.core.i18n import N_
from app.documents.models import Document
from app.engine.models import ProcessInstance


def _enum(cls, name):
    return Enum(
        cls, name=name, native_enum=False, length=30, values_callable=lambda e: [m.value for m in e]
    )


class FolderType(enum.StrEnum):
    """What a folder carries; circuits, delegations and the DMN test it."""

    COURRIER_SORTANT = "courrier_sortant"
    NOTE_INTERNE = "note_interne"
    FACTURE = "facture"
    ATTESTATION_SERVICE_FAIT = "attestation_service_fait"
    NOTIFICATION_MARCHE = "notification_marche"
    ARRETE = "arrete"
    CONVENTION = "convention"


FOLDER_TYPE_LABELS = {
    FolderType.COURRIER_SORTANT: N_("Courrier sortant"),
    FolderType.NOTE_INTERNE: N_("Note interne"),
    FolderType.FACTURE: N_("Facture"),
    FolderType.ATTESTATION_SERVICE_FAIT: N_("Attestation de service fait"),
    FolderType.NOTIFICATION_MARCHE: N_("Notification de marché"),
    FolderType.ARRETE: N_("Arrêté"),
    FolderType.CONVENTION: N_("Convention"),
}


class FolderStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    REJECTED = "rejected"  # back with the drafter, who corrects and resubmits
    COMPLETED = "completed"
    ABANDONED = "abandoned"


FOLDER_STATUS_LABELS = {
    FolderStatus.IN_PROGRESS: N_("En circulation"),
    FolderStatus.REJECTED: N_("Refusé — en correction"),
    FolderStatus.COMPLETED: N_("Terminé"),
    FolderStatus.ABANDONED: N_("Abandonné"),
}


class Folder(db.Model):
    """A parapheur: documents, a type, a circuit (a process instance) and its history."""

    __tablename__ = "parapheur_folder"
    __table_args__ = (Index("ix_parapheur_folder_status_updated", "status", "updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    type: Mapped[FolderType] = mapped_column(_enum(FolderType, "folder_type"), index=True)
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[FolderStatus] = mapped_column(
        _enum(FolderStatus, "folder_status"), default=FolderStatus.IN_PROGRESS
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    process_key: Mapped[str] = mapped_column(String(200))
    process_instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("process_instance.id", ondelete="SET NULL"), unique=True
    )
    circuit: Mapped[list] = mapped_column(JSONType, default=list)
    seal: Mapped[bool] = mapped_column(Boolean, default=False)
    drafter_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="RESTRICT"), index=True
    )
    origin_type: Mapped[str | None] = mapped_column(String(40))
    origin_id: Mapped[str | None] = mapped_column(String(80))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    rejected_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejected_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    drafter: Mapped[User] = relationship(foreign_keys=[drafter_id])
    rejected_by: Mapped[User | None] = relationship(foreign_keys=[rejected_by_id])
    instance: Mapped[ProcessInstance | None] = relationship()
    documents: Mapped[list[FolderDocument]] = relationship(
        back_populates="folder",
        order_by="(FolderDocument.version, FolderDocument.id)",
        cascade="all, delete-orphan",
    )
    steps: Mapped[list[FolderStep]] = relationship(
        back_populates="folder", order_by="FolderStep.id", cascade="all, delete-orphan"
    )

    @property
    def type_label(self) -> str:
        return FOLDER_TYPE_LABELS[FolderType(self.type)]

    @property
    def status_label(self) -> str:
        return FOLDER_STATUS_LABELS[FolderStatus(self.status)]

    @property
    def amount(self) -> float | None:
        """The amount in euros (invoices, contracts), or None."""
        return None if self.amount_cents is None else self.amount_cents / 100

    def current_documents(self, role: str | None = None) -> list[FolderDocument]:
        """The documents of the folder's current version (main documents, then annexes)."""
        return [
            d
            for d in self.documents
            if d.version == self.version and (role is None or d.role == role)
        ]


class FolderDocument(db.Model):
    """One PDF of one version of a folder: the original and its latest signed state."""

    __tablename__ = "parapheur_folder_document"
    __table_args__ = (Index("ix_parapheur_folder_document_folder", "folder_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("parapheur_folder.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    role: Mapped[str] = mapped_column(String(20), default="main")  # "main" or "annex"
    position: Mapped[int] = mapped_column(Integer, default=0)
    original_id: Mapped[int] = mapped_column(
        ForeignKey("document.id", ondelete="RESTRICT"), index=True
    )
    current_id: Mapped[int] = mapped_column(
        ForeignKey("document.id", ondelete="RESTRICT"), index=True
    )
    # Read once at upload (signing never re-reads the text): page count, size of the last
    # page and where "[[signature]]" is printed ({"page", "box": [x1, y1, x2, y2]}).
    layout: Mapped[dict] = mapped_column(JSONType, default=dict)

    folder: Mapped[Folder] = relationship(back_populates="documents")
    original: Mapped[Document] = relationship(foreign_keys=[original_id])
    current: Mapped[Document] = relationship(foreign_keys=[current_id])


class FolderStep(db.Model):
    """What happened to a folder: submitted, viewed, signed, rejected, corrected, sealed."""

    __tablename__ = "parapheur_folder_step"

    id: Mapped[int] = mapped_column(primary_key=True)
    folder_id: Mapped[int] = mapped_column(
        ForeignKey("parapheur_folder.id", ondelete="CASCADE"), index=True
    )
    folder_version: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(20))  # submit, visa, signature, correction, seal
    task_id: Mapped[int | None] = mapped_column(ForeignKey("human_task.id", ondelete="SET NULL"))
    element_id: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    on_behalf_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    delegation_id: Mapped[int | None] = mapped_column(
        ForeignKey("parapheur_delegation.id", ondelete="SET NULL")
    )
    decision: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    folder: Mapped[Folder] = relationship(back_populates="steps")
    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])
    on_behalf_of: Mapped[User | None] = relationship(foreign_keys=[on_behalf_of_id])


class CertificateKind(enum.StrEnum):
    PERSONAL = "personal"
    SEAL = "seal"


class KeySource(enum.StrEnum):
    PKCS12 = "pkcs12"
    PKCS11 = "pkcs11"


class SigningCertificate(db.Model):
    """A signer's (or the server seal's) certificate and where its private key lives.

    A PKCS#12 key is kept encrypted with the installation's keystore key (never with the
    import passphrase, which is not stored); a PKCS#11 key stays in its token and only the
    token PIN is kept, encrypted the same way.
    """

    __tablename__ = "parapheur_certificate"
    __table_args__ = (Index("ix_parapheur_certificate_owner", "kind", "user_id", "active"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[CertificateKind] = mapped_column(_enum(CertificateKind, "certificate_kind"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    source: Mapped[KeySource] = mapped_column(_enum(KeySource, "key_source"))
    subject: Mapped[str] = mapped_column(String(500))
    issuer: Mapped[str] = mapped_column(String(500))
    serial: Mapped[str] = mapped_column(String(80))
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    chain_der: Mapped[list] = mapped_column(JSONType, default=list)  # base64 DER, issuer first
    key_id: Mapped[str] = mapped_column(String(16))  # which keystore key encrypted the secret
    encrypted_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    pkcs11_module: Mapped[str | None] = mapped_column(String(500))
    pkcs11_token: Mapped[str | None] = mapped_column(String(200))
    pkcs11_key_label: Mapped[str | None] = mapped_column(String(200))
    encrypted_pin: Mapped[bytes | None] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User | None] = relationship()


class SignatureKind(enum.StrEnum):
    SIGNATURE = "signature"
    SEAL = "seal"


class SignatureRecord(db.Model):
    """One signature or seal applied to one PDF: input and output documents and their hashes."""

    __tablename__ = "parapheur_signature"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[SignatureKind] = mapped_column(_enum(SignatureKind, "signature_kind"))
    folder_id: Mapped[int | None] = mapped_column(
        ForeignKey("parapheur_folder.id", ondelete="CASCADE"), index=True
    )
    folder_document_id: Mapped[int | None] = mapped_column(
        ForeignKey("parapheur_folder_document.id", ondelete="CASCADE")
    )
    step_id: Mapped[int | None] = mapped_column(
        ForeignKey("parapheur_folder_step.id", ondelete="SET NULL")
    )
    input_document_id: Mapped[int] = mapped_column(ForeignKey("document.id", ondelete="RESTRICT"))
    output_document_id: Mapped[int] = mapped_column(
        ForeignKey("document.id", ondelete="RESTRICT"), index=True
    )
    input_sha256: Mapped[str] = mapped_column(String(64))
    output_sha256: Mapped[str] = mapped_column(String(64))
    certificate_id: Mapped[int] = mapped_column(
        ForeignKey("parapheur_certificate.id", ondelete="RESTRICT")
    )
    signer_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    on_behalf_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    delegation_id: Mapped[int | None] = mapped_column(
        ForeignKey("parapheur_delegation.id", ondelete="SET NULL")
    )
    level: Mapped[str] = mapped_column(String(10))  # B-B, B-T, B-LT, B-LTA
    field_name: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(String(300))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    certificate: Mapped[SigningCertificate] = relationship()
    signer: Mapped[User | None] = relationship(foreign_keys=[signer_id])
    on_behalf_of: Mapped[User | None] = relationship(foreign_keys=[on_behalf_of_id])
    output_document: Mapped[Document] = relationship(foreign_keys=[output_document_id])


class Delegation(db.Model):
    """A delegation of signature: the delegate signs for the delegator, within a scope."""

    __tablename__ = "parapheur_delegation"
    __table_args__ = (Index("ix_parapheur_delegation_delegate", "delegate_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delegator_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    delegate_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    document_types: Mapped[list] = mapped_column(JSONType, default=list)  # empty: every type
    amount_ceiling_cents: Mapped[int | None] = mapped_column(BigInteger)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    mention: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    delegator: Mapped[User] = relationship(foreign_keys=[delegator_id])
    delegate: Mapped[User] = relationship(foreign_keys=[delegate_id])

    @property
    def amount_ceiling(self) -> float | None:
        return None if self.amount_ceiling_cents is None else self.amount_ceiling_cents / 100

    @property
    def type_labels(self) -> list[str]:
        return [FOLDER_TYPE_LABELS.get(FolderType(t), t) for t in self.document_types or []]
