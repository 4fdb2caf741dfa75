"""The due date of a case: a pluggable rule (service target in calendar days by default).

The deadlines issue replaces the default with working days: ``set_due_rule(rule)``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from flask import current_app

from app.correspondence.models import CaseType

DueRule = Callable[[datetime, CaseType | None], datetime | None]
DEFAULT_TARGET_DAYS = 30


def calendar_days(start: datetime, case_type: CaseType | None) -> datetime:
    """Start of the legal clock plus the type's service target, in calendar days."""
    days = case_type.target_days if case_type is not None and case_type.target_days else None
    if days is None:
        days = int(current_app.config.get("MISSIVE_DEFAULT_TARGET_DAYS", DEFAULT_TARGET_DAYS))
    return start + timedelta(days=days)


_rule: DueRule = calendar_days


def set_due_rule(rule: DueRule) -> DueRule:
    """Replace the rule computing due dates; returns the previous one."""
    global _rule
    previous, _rule = _rule, rule
    return previous


def due_date(start: datetime, case_type: CaseType | None) -> datetime | None:
    """When an answer is due for a case whose legal clock started at ``start``."""
    return _rule(start, case_type)
