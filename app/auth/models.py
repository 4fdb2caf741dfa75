"""Organisation tree, users, functional groups and sign-in attempts."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.db import UTCDateTime, enum_type, utcnow
from app.core.extensions import db
from app.core.i18n import N_


class OrgUnitKind(enum.StrEnum):
    DEPARTEMENT = "departement"
    DGS = "dgs"
    DIRECTION = "direction"
    SERVICE = "service"
    DELEGATION = "delegation"


ORG_UNIT_KIND_LABELS = {
    OrgUnitKind.DEPARTEMENT: N_("Département"),
    OrgUnitKind.DGS: N_("Direction générale des services"),
    OrgUnitKind.DIRECTION: N_("Direction"),
    OrgUnitKind.SERVICE: N_("Service"),
    OrgUnitKind.DELEGATION: N_("Délégation territoriale"),
}


class Role(enum.StrEnum):
    AGENT = "agent"
    ANALYST = "analyst"
    ADMIN = "admin"


ROLE_LABELS = {
    Role.AGENT: N_("Agent"),
    Role.ANALYST: N_("Analyste"),
    Role.ADMIN: N_("Administrateur"),
}
_ROLE_RANK = {Role.AGENT: 0, Role.ANALYST: 1, Role.ADMIN: 2}


class OrgUnit(db.Model):
    __tablename__ = "org_unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[OrgUnitKind] = mapped_column(enum_type(OrgUnitKind, "org_unit_kind"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("org_unit.id", ondelete="RESTRICT"), index=True
    )
    head_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL", use_alter=True)
    )
    address_lines: Mapped[str | None] = mapped_column(Text)
    postal_code: Mapped[str | None] = mapped_column(String(10))
    city: Mapped[str | None] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    parent: Mapped[OrgUnit | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[OrgUnit]] = relationship(back_populates="parent", order_by="OrgUnit.name")
    head: Mapped[User | None] = relationship(foreign_keys=[head_id])

    @property
    def kind_label(self) -> str:
        return ORG_UNIT_KIND_LABELS[self.kind]

    def ancestors(self) -> list[OrgUnit]:
        """Return the chain from the root down to this unit's parent."""
        chain, unit = [], self.parent
        while unit is not None:
            chain.append(unit)
            unit = unit.parent
        return list(reversed(chain))

    def __repr__(self) -> str:
        return f"<OrgUnit {self.code}>"


group_membership = Table(
    "group_membership",
    db.metadata,
    Column("group_id", ForeignKey("user_group.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "user_id", ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True, index=True
    ),
)


class User(UserMixin, db.Model):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    org_unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("org_unit.id", ondelete="SET NULL"), index=True
    )
    role: Mapped[Role] = mapped_column(enum_type(Role, "user_role"), default=Role.AGENT)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped when the password changes or the account is disabled: old sessions die.
    session_version: Mapped[int] = mapped_column(default=1)

    org_unit: Mapped[OrgUnit | None] = relationship(foreign_keys=[org_unit_id])
    groups: Mapped[list[Group]] = relationship(
        secondary=group_membership, back_populates="members", order_by="Group.name"
    )

    @property
    def is_active(self) -> bool:  # flask-login: disabled accounts cannot sign in
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    def has_role(self, role: Role | str) -> bool:
        """True when the user's role is at least ``role`` (agent < analyst < admin)."""
        return _ROLE_RANK[Role(self.role)] >= _ROLE_RANK[Role(role)]

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def group_names(self) -> list[str]:
        return [g.name for g in self.groups]

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[Role(self.role)]

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class Group(db.Model):
    """A functional group that BPMN circuits name as candidate group (e.g. ``dgs``)."""

    __tablename__ = "user_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    label: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    org_unit_id: Mapped[int | None] = mapped_column(
        ForeignKey("org_unit.id", ondelete="SET NULL"), index=True
    )

    org_unit: Mapped[OrgUnit | None] = relationship()
    members: Mapped[list[User]] = relationship(
        secondary=group_membership, back_populates="groups", order_by="User.name"
    )

    def __repr__(self) -> str:
        return f"<Group {self.name}>"


class LoginAttempt(db.Model):
    """A failed sign-in, kept a short while to throttle guessing per account and address."""

    __tablename__ = "login_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    ip: Mapped[str | None] = mapped_column(String(64), index=True)
