"""Who may act on tasks and instances (registered with the one permission check)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import or_, select

from app.core.extensions import db
from app.core.permissions import policy
from app.engine.models import HumanTask, ProcessInstance, TaskCandidate, TaskStatus

# Who else a user may act for right now (an absent colleague they substitute): other
# domains register ``provider(user) -> user ids``; the task policy lets the user act on
# the tasks assigned to those colleagues, or offered to them by name.
PrincipalProvider = Callable[[object], Iterable[int]]
_principal_providers: list[PrincipalProvider] = []


def register_principals(provider: PrincipalProvider) -> PrincipalProvider:
    """Register a function naming the users someone may currently act for."""
    _principal_providers.append(provider)
    return provider


def principals(user) -> set[int]:
    """The user's id and the ids of the users they currently act for."""
    ids = {user.id}
    for provider in _principal_providers:
        ids.update(provider(user))
    return ids


def acts_for(user, task: HumanTask) -> int | None:
    """The colleague on whose behalf ``user`` would act on ``task`` (None: their own)."""
    if task.assignee_id == user.id or is_candidate(user, task):
        return None
    others = principals(user) - {user.id}
    if task.assignee_id in others:
        return task.assignee_id
    named = {c.user_id for c in task.candidates if c.user_id} & others
    return min(named) if named else None


# Other domains make more people candidates of some tasks: ``rule(user, task) -> bool``
# (a signature delegate is a candidate of the delegator's signature tasks). A rule may
# come with ``offers``: the same rule as SQL, for lists (the inbox's baskets) — a function
# returning a condition on ``task_candidate`` rows joined to their ``human_task``, with the
# bound parameters ``me`` (the reader's id) and ``day`` (today in Paris).
CandidateRule = Callable[[Any, HumanTask], bool]
OfferCondition = Callable[[], Any]
_candidate_rules: list[CandidateRule] = []
_offer_conditions: list[OfferCondition] = []


def register_candidate_rule(
    rule: CandidateRule, *, offers: OfferCondition | None = None
) -> CandidateRule:
    """Register a rule that makes a user a candidate of a task beyond its own candidates
    (and, with ``offers``, the SQL that lists the tasks it offers)."""
    if rule not in _candidate_rules:
        _candidate_rules.append(rule)
    if offers is not None and offers not in _offer_conditions:
        _offer_conditions.append(offers)
    return rule


def offer_conditions() -> list[OfferCondition]:
    """The SQL forms of the candidate rules (see ``register_candidate_rule``)."""
    return list(_offer_conditions)


def is_candidate(user, task: HumanTask) -> bool:
    """True when the user is a candidate of the task (by group, by name or by a rule)."""
    if user.email in (task.candidate_users or []):
        return True
    if set(user.group_names) & set(task.candidate_groups or []):
        return True
    return any(rule(user, task) for rule in _candidate_rules)


def _holds_or_may_take(user, task: HumanTask) -> bool:
    # The user's own rights first: the colleagues they stand in for cost a query.
    if task.assignee_id == user.id or task.owner_id == user.id or is_candidate(user, task):
        return True
    ids = principals(user) - {user.id}
    if not ids:
        return False
    return (
        task.assignee_id in ids
        or task.owner_id in ids
        or bool(ids & {c.user_id for c in task.candidates if c.user_id})
    )


@policy("task")
def task_policy(user, action: str, task: HumanTask) -> bool:
    if action == "view":
        return (
            _holds_or_may_take(user, task)
            or task.completed_by_id == user.id
            or task.instance.initiator_id == user.id
        )
    if task.status != TaskStatus.OPEN:
        return False
    if action in ("claim", "complete", "unclaim", "assign"):
        return _holds_or_may_take(user, task)
    return False


@policy("instance")
def instance_policy(user, action: str, instance: ProcessInstance) -> bool:
    if action != "view":
        return False  # suspend, resume, terminate: admins only
    if instance.initiator_id == user.id:
        return True
    groups = user.group_names
    participation = (
        select(HumanTask.id)
        .where(
            HumanTask.instance_id == instance.id,
            or_(
                HumanTask.assignee_id == user.id,
                HumanTask.completed_by_id == user.id,
                HumanTask.id.in_(
                    select(TaskCandidate.task_id).where(
                        or_(
                            TaskCandidate.user_id == user.id,
                            TaskCandidate.group_name.in_(groups) if groups else False,
                        )
                    )
                ),
            ),
        )
        .limit(1)
    )
    return db.session.execute(participation).first() is not None


@policy("process")
def process_policy(user, action: str, version) -> bool:
    if action in ("deploy", "manage"):
        return user.has_role("analyst")
    if action == "view":
        return True
    if action == "start":
        starters = (version.starters if version is not None else None) or {}
        groups, users = starters.get("groups") or [], starters.get("users") or []
        if not groups and not users:
            return True
        return user.email in users or bool(set(user.group_names) & set(groups))
    return False
