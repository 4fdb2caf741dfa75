"""Definitions, versions, instances and what the inbox and the worker read without the engine."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import User
from app.core.db import JSONType, UTCDateTime, enum_type, utcnow
from app.core.extensions import db


class ProcessDefinition(db.Model):
    """A process key (the BPMN process id) and whether new instances may start."""

    __tablename__ = "process_definition"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    versions: Mapped[list[ProcessVersion]] = relationship(
        back_populates="definition", order_by="ProcessVersion.version"
    )


class ProcessVersion(db.Model):
    """An immutable deployed version: its source, its compiled spec and its form snapshots."""

    __tablename__ = "process_version"
    __table_args__ = (
        UniqueConstraint("definition_id", "version", name="uq_process_version_number"),
        Index("ix_process_version_hash", "definition_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definition.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    version_tag: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(300))
    content_hash: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(300))
    # Large and rarely needed: loaded on access only (specs are cached once restored).
    source: Mapped[str] = mapped_column(Text, deferred=True)
    spec: Mapped[str] = mapped_column(Text, deferred=True)
    forms: Mapped[dict] = mapped_column(JSONType, default=dict)
    called_versions: Mapped[dict] = mapped_column(JSONType, default=dict)
    decision_keys: Mapped[list] = mapped_column(JSONType, default=list)
    starters: Mapped[dict] = mapped_column(JSONType, default=dict)
    start_form_key: Mapped[str | None] = mapped_column(String(100))
    initiator_variable: Mapped[str | None] = mapped_column(String(100))
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deployed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    definition: Mapped[ProcessDefinition] = relationship(back_populates="versions")
    deployed_by: Mapped[User | None] = relationship()

    @property
    def key(self) -> str:
        return self.definition.key


class DecisionVersion(db.Model):
    """A deployed DMN decision that diagrams reference by id (camunda:decisionRef)."""

    __tablename__ = "decision_version"
    __table_args__ = (UniqueConstraint("key", "version", name="uq_decision_version_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(300))
    content_hash: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(Text)
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deployed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )


class InstanceStatus(enum.StrEnum):
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class ProcessInstance(db.Model):
    """A running case of a definition version; its engine state is stored without the spec."""

    __tablename__ = "process_instance"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("process_version.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[InstanceStatus] = mapped_column(
        enum_type(InstanceStatus, "instance_status"), default=InstanceStatus.RUNNING, index=True
    )
    business_key: Mapped[str | None] = mapped_column(String(200), index=True)
    title: Mapped[str | None] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(Text)
    summary: Mapped[dict] = mapped_column(JSONType, default=dict)
    # What the derived rows (timers, subscriptions, jobs) were last synced from, so an
    # unchanged wait costs no statement.
    waiting: Mapped[dict] = mapped_column(JSONType, default=dict)
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    initiator_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True
    )
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("process_instance.id", ondelete="SET NULL")
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    version: Mapped[ProcessVersion] = relationship()
    initiator: Mapped[User | None] = relationship()


# The plain-search text of a task is capped: it lives in the inbox's b-tree indexes.
SEARCH_TEXT_MAX = 1000

# Undated tasks sort after every dated one: ``due_sort`` is ``due_at`` or this moment.
NO_DUE_DATE = datetime(9999, 12, 31, tzinfo=UTC)


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class HumanTask(db.Model):
    """A READY user task, materialised so the inbox never deserializes a workflow."""

    __tablename__ = "human_task"
    __table_args__ = (
        UniqueConstraint("instance_id", "spiff_task_id", name="uq_human_task_spiff"),
        # The inbox's "à traiter" page: one agent's open tasks in due order, from the index
        # alone (follow_up_at and search_text ride along so that snoozed tasks are skipped
        # and searches filtered without reading the table).
        Index(
            "ix_human_task_assignee_open",
            "assignee_id",
            "due_sort",
            "id",
            "follow_up_at",
            "search_text",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        Index("ix_human_task_status_created", "status", "created_at"),
        Index("ix_human_task_completed_by", "completed_by_id", "completed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), index=True
    )
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    title: Mapped[str] = mapped_column(String(500))
    process_key: Mapped[str] = mapped_column(String(200), index=True)
    form_key: Mapped[str | None] = mapped_column(String(100))
    lane: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[TaskStatus] = mapped_column(
        enum_type(TaskStatus, "task_status"), default=TaskStatus.OPEN
    )
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    priority: Mapped[int] = mapped_column(Integer, default=50)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # due_at, or NO_DUE_DATE: a non-null sort key the inbox's indexes and cursors use.
    due_sort: Mapped[datetime] = mapped_column(UTCDateTime, default=NO_DUE_DATE)
    follow_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the case reached the authority (the item's legal start date), for sorting.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Delegation (delegate and resolve): the owner gets the task back once resolved.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    delegation_state: Mapped[str | None] = mapped_column(String(20))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    candidate_groups: Mapped[list] = mapped_column(JSONType, default=list)
    candidate_users: Mapped[list] = mapped_column(JSONType, default=list)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONType, default=dict)
    search_text: Mapped[str] = mapped_column(String(SEARCH_TEXT_MAX), default="")
    documentation: Mapped[str | None] = mapped_column(Text)

    instance: Mapped[ProcessInstance] = relationship()
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    completed_by: Mapped[User | None] = relationship(foreign_keys=[completed_by_id])
    candidates: Mapped[list[TaskCandidate]] = relationship(
        back_populates="task", cascade="all, delete-orphan"
    )


class TaskCandidate(db.Model):
    """One candidate (a group name or a user) of an open task: the inbox's join table.

    ``due_sort``, ``unclaimed`` and ``search_text`` copy the task's so that one group's
    basket page — searched or not — is read from a partial index in due order, without
    touching the task table.
    """

    __tablename__ = "task_candidate"
    __table_args__ = (
        Index("ix_task_candidate_group", "group_name", "task_id"),
        Index("ix_task_candidate_user", "user_id", "task_id"),
        Index(
            "ix_task_candidate_group_basket",
            "group_name",
            "due_sort",
            "task_id",
            "search_text",
            postgresql_where=text("unclaimed"),
            sqlite_where=text("unclaimed"),
        ),
        Index(
            "ix_task_candidate_user_basket",
            "user_id",
            "due_sort",
            "task_id",
            "search_text",
            postgresql_where=text("unclaimed"),
            sqlite_where=text("unclaimed"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(
        ForeignKey("human_task.id", ondelete="CASCADE"), index=True
    )
    group_name: Mapped[str | None] = mapped_column(String(80))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    due_sort: Mapped[datetime] = mapped_column(UTCDateTime, default=NO_DUE_DATE)
    unclaimed: Mapped[bool] = mapped_column(Boolean, default=True)
    search_text: Mapped[str] = mapped_column(String(SEARCH_TEXT_MAX), default="")

    task: Mapped[HumanTask] = relationship(back_populates="candidates")


@event.listens_for(HumanTask, "before_insert")
def _set_due_sort(mapper, connection, task: HumanTask) -> None:
    task.due_sort = task.due_at or NO_DUE_DATE


@event.listens_for(HumanTask, "before_update")
def _keep_due_sort(mapper, connection, task: HumanTask) -> None:
    due_sort = task.due_at or NO_DUE_DATE
    if task.due_sort != due_sort:  # a new due date moves the task in every basket too
        task.due_sort = due_sort
        connection.execute(
            TaskCandidate.__table__.update()
            .where(TaskCandidate.task_id == task.id)
            .values(due_sort=due_sort)
        )


@event.listens_for(TaskCandidate, "before_insert")
def _copy_task_keys(mapper, connection, candidate: TaskCandidate) -> None:
    task = candidate.task
    if task is not None:
        candidate.due_sort = task.due_at or NO_DUE_DATE
        candidate.unclaimed = task.assignee_id is None
        candidate.search_text = task.search_text or ""


class EngineTimer(db.Model):
    """A timer an instance waits for; the worker fires the due ones."""

    __tablename__ = "engine_timer"
    __table_args__ = (Index("ix_engine_timer_due", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), index=True
    )
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(300))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MessageSubscription(db.Model):
    """A message an instance waits for, correlated by name and key."""

    __tablename__ = "message_subscription"
    __table_args__ = (Index("ix_message_subscription_lookup", "message_name", "correlation_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), index=True
    )
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    message_name: Mapped[str] = mapped_column(String(200))
    correlation_key: Mapped[str | None] = mapped_column(String(200))


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    FAILED = "failed"  # an incident: retries exhausted or waiting for a person
    DONE = "done"


class EngineJob(db.Model):
    """A service task to run in its own transaction; a failing one is an incident."""

    __tablename__ = "engine_job"
    __table_args__ = (
        UniqueConstraint("instance_id", "spiff_task_id", name="uq_engine_job_task"),
        Index("ix_engine_job_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), index=True
    )
    spiff_task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(200))
    handler: Mapped[str] = mapped_column(String(200))
    status: Mapped[JobStatus] = mapped_column(
        enum_type(JobStatus, "job_status"), default=JobStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Incident(db.Model):
    """Something an instance could not do by itself: a failed job, script, timer or message."""

    __tablename__ = "engine_incident"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(
        ForeignKey("process_instance.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[int | None] = mapped_column(ForeignKey("engine_job.id", ondelete="SET NULL"))
    element_id: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    instance: Mapped[ProcessInstance] = relationship()
