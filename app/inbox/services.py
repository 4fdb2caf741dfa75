"""Inbox queries: the tasks an agent works on, read from the materialised task rows."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Select, or_, select

from app.auth.models import User
from app.core.pagination import keyset_page
from app.engine.models import HumanTask, TaskCandidate, TaskStatus

SCOPES = ("mine", "candidate", "all")


def task_query(user: User, scope: str) -> Select:
    """Open tasks of a scope: mine (assigned to me), candidate (unclaimed in my baskets),
    all (both, or every open task for an admin)."""
    stmt = select(HumanTask).where(HumanTask.status == TaskStatus.OPEN)
    mine = HumanTask.assignee_id == user.id
    candidate_ids = select(TaskCandidate.task_id).where(
        or_(
            TaskCandidate.user_id == user.id,
            TaskCandidate.group_name.in_(user.group_names) if user.group_names else False,
        )
    )
    basket = HumanTask.assignee_id.is_(None) & HumanTask.id.in_(candidate_ids)
    if scope == "mine":
        return stmt.where(mine)
    if scope == "candidate":
        return stmt.where(basket)
    if user.is_admin:
        return stmt
    return stmt.where(or_(mine, basket))


def list_tasks(
    user: User, scope: str, *, cursor: str | None, limit: int, process_key: str | None = None
) -> tuple[list[HumanTask], str | None]:
    """One page of tasks ordered by due date (undated last), then id."""
    stmt = task_query(user, scope)
    if process_key:
        stmt = stmt.where(HumanTask.process_key == process_key)
    far = datetime(9999, 12, 31, tzinfo=UTC)
    from sqlalchemy import func

    due = func.coalesce(HumanTask.due_at, far)
    return keyset_page(
        stmt,
        [due, HumanTask.id],
        cursor=cursor,
        limit=limit,
        key=lambda t: [(t.due_at or far).isoformat(), t.id],
        convert=lambda v: [datetime.fromisoformat(v[0]), int(v[1])],
    )
