"""What the inbox keeps beside the engine's task rows: absences, comments, follows,
drafts, saved filters, per-view settings, notifications and their preferences."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import Group, User
from app.core.db import JSONType, UTCDateTime, utcnow
from app.core.extensions import db


class Substitution(db.Model):
    """An absence: from ``starts_on`` to ``ends_on`` (inclusive), ``substitute`` acts for
    ``absent`` on the tasks assigned or offered by name to them."""

    __tablename__ = "inbox_substitution"
    __table_args__ = (Index("ix_inbox_substitution_substitute", "substitute_id", "ends_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    absent_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    substitute_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    absent: Mapped[User] = relationship(foreign_keys=[absent_id])
    substitute: Mapped[User] = relationship(foreign_keys=[substitute_id])


class TaskComment(db.Model):
    """A comment on a task; ``mentions`` holds the ids of the colleagues it @mentions."""

    __tablename__ = "inbox_comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(
        ForeignKey("human_task.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    body: Mapped[str] = mapped_column(Text)
    mentions: Mapped[list] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User | None] = relationship()


class CaseFollow(db.Model):
    """A case (process instance) an agent follows: its tasks show in « Suivis »."""

    __tablename__ = "inbox_follow"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TaskDraft(db.Model):
    """The form data an agent saved without completing the task."""

    __tablename__ = "inbox_draft"

    task_id: Mapped[int] = mapped_column(
        ForeignKey("human_task.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SavedFilter(db.Model):
    """A named search kept on the server: parameters only (``me``, ``mes groupes``,
    ``aujourd'hui``… resolved when it runs), shared with its owner, a group or everyone."""

    __tablename__ = "inbox_saved_filter"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    owner_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    visibility: Mapped[str] = mapped_column(String(20), default="private")
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_group.id", ondelete="CASCADE"), index=True
    )
    view: Mapped[str] = mapped_column(String(20), default="mine")
    params: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner: Mapped[User] = relationship()
    group: Mapped[Group | None] = relationship()


class ViewSettings(db.Model):
    """The columns and sort order an agent chose for one view of the inbox."""

    __tablename__ = "inbox_view_settings"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    view: Mapped[str] = mapped_column(String(20), primary_key=True)
    columns: Mapped[list] = mapped_column(JSONType, default=list)
    sort: Mapped[str | None] = mapped_column(String(20))


class Notification(db.Model):
    """Something an agent should know (a task given to them, a mention); ``email_state``
    is the outbox of the assignment and mention e-mails (``pending``, ``sent``, ``none``)."""

    __tablename__ = "inbox_notification"
    __table_args__ = (
        Index("ix_inbox_notification_unread", "user_id", "read_at"),
        Index(
            "ix_inbox_notification_outbox",
            "id",
            postgresql_where=text("email_state = 'pending'"),
            sqlite_where=text("email_state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("human_task.id", ondelete="SET NULL"), index=True
    )
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    message: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    email_state: Mapped[str] = mapped_column(String(10), default="none")

    user: Mapped[User] = relationship(foreign_keys=[user_id])
    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])


class NotificationPreference(db.Model):
    """Which e-mails an agent wants: on assignment, on mention, a daily digest."""

    __tablename__ = "inbox_notification_preference"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    email_on_assignment: Mapped[bool] = mapped_column(Boolean, default=True)
    email_on_mention: Mapped[bool] = mapped_column(Boolean, default=True)
    daily_digest: Mapped[bool] = mapped_column(Boolean, default=True)
    last_digest_on: Mapped[date | None] = mapped_column(Date)
