"""Who may use saved filters, and the absences that let a substitute act for a colleague."""

from __future__ import annotations

from app.core.permissions import policy
from app.engine.permissions import register_principals
from app.engine.runtime import on_task_created
from app.inbox.services import absent_ids_for, notify_new_task


@policy("saved_filter")
def saved_filter_policy(user, action: str, saved) -> bool:
    if saved.owner_id == user.id:
        return True
    if action != "use":
        return False
    if saved.visibility == "public":
        return True
    return saved.visibility == "group" and saved.group_id in {g.id for g in user.groups}


@register_principals
def absent_colleagues(user) -> list[int]:
    """The colleagues ``user`` substitutes today (their tasks become actionable)."""
    return absent_ids_for(user)


@on_task_created
def _notify_assignee(task, actor) -> None:
    notify_new_task(task, actor)
