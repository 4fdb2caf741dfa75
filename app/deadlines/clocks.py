"""The two clocks of a case, as pure computations over a calendar.

- The **service target** (charte Marianne): ``target_days`` working days counted from the
  day after receipt; the acknowledgement within ``ack_days`` calendar days.
- The **legal clock** (CRPA L231-1): ``silence_months`` months after receipt by the
  competent service (L114-2, L114-3) an implicit decision arises; the days during which
  requested documents were missing do not count (L114-5).
"""

from __future__ import annotations

import calendar as _months
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import or_, select

from app.core.extensions import db
from app.deadlines.calendar import WorkingCalendar, local_day
from app.deadlines.models import DeadlineRule, ImplicitDecision


@dataclass(frozen=True)
class Rule:
    """The delays that apply to one case."""

    target_days: int
    ack_days: int
    acknowledge: bool
    reminder_days: int
    silence_months: int
    implicit_decision: str
    source: str  # which rule matched: type+canal, type, canal, défaut


# Defaults per channel when no rule is configured: letters 15 working days and 2 weeks
# to acknowledge; e-mails and web forms 5 working days and 1 week. Items from business
# applications and internal notes are not requests of the public: no acknowledgement.
CHANNEL_DEFAULTS = {
    "paper": Rule(15, 14, True, 2, 2, ImplicitDecision.NONE, "défaut"),
    "email": Rule(5, 7, True, 2, 2, ImplicitDecision.NONE, "défaut"),
    "web": Rule(5, 7, True, 2, 2, ImplicitDecision.NONE, "défaut"),
    "api": Rule(15, 7, False, 2, 2, ImplicitDecision.NONE, "défaut"),
    "internal": Rule(15, 7, False, 2, 2, ImplicitDecision.NONE, "défaut"),
}
ELECTRONIC_CHANNELS = frozenset({"email", "web", "api"})


RULE_FIELDS = (
    "target_days",
    "ack_days",
    "acknowledge",
    "reminder_days",
    "silence_months",
    "implicit_decision",
)


def resolve_rule(case_type_id: int | None, channel: str) -> Rule:
    """The delays of a case: the channel's defaults, overridden field by field by the
    general rule, the channel's rule, the type's rule, then the type-and-channel rule."""
    stmt = select(DeadlineRule).where(
        or_(DeadlineRule.case_type_id.is_(None), DeadlineRule.case_type_id == case_type_id)
        if case_type_id is not None
        else DeadlineRule.case_type_id.is_(None),
        or_(DeadlineRule.channel.is_(None), DeadlineRule.channel == channel),
    )

    def rank(rule: DeadlineRule) -> int:
        return (2 if rule.case_type_id is not None else 0) + (1 if rule.channel else 0)

    base = CHANNEL_DEFAULTS.get(channel, CHANNEL_DEFAULTS["paper"])
    values = {name: getattr(base, name) for name in RULE_FIELDS}
    sources = []
    for rule in sorted(db.session.execute(stmt).scalars(), key=rank):
        for name in RULE_FIELDS:
            if getattr(rule, name) is not None:
                values[name] = getattr(rule, name)
        sources.append(RULE_SOURCES[rank(rule)])
    return Rule(**values, source=" + ".join(["défaut", *sources]))


RULE_SOURCES = {3: "type et canal", 2: "type", 1: "canal", 0: "général"}


def add_months(day: date, months: int) -> date:
    """The same day ``months`` months later (the month's last day when it is shorter)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, _months.monthrange(year, month)[1]))


def service_due_on(calendar: WorkingCalendar, received: date, target_days: int) -> date:
    """The day an answer is due: ``target_days`` working days after the day of receipt."""
    return calendar.add_working_days(received, target_days)


def reminder_on(calendar: WorkingCalendar, received: date, due: date, days_before: int) -> date:
    """The working day ``days_before`` working days before the due date (not before the
    first working day after receipt)."""
    first = calendar.add_working_days(received, 1)
    return max(calendar.subtract_working_days(due, days_before), min(first, due))


@dataclass(frozen=True)
class Interval:
    """A suspension of the legal clock: from a request of documents to their receipt."""

    start: datetime
    end: datetime | None


def suspended_days(legal_start: date, intervals: Iterable[Interval]) -> int:
    """Calendar days the legal clock stood still after it started (closed suspensions)."""
    total = 0
    for interval in intervals:
        if interval.end is None:
            continue
        begin = max(local_day(interval.start), legal_start)
        end = local_day(interval.end)
        if end > begin:
            total += (end - begin).days
    return total


def implicit_decision_on(
    legal_start: date,
    silence_months: int,
    intervals: Iterable[Interval],
    kind: str,
) -> date | None:
    """The day silence becomes a decision; None when the request leads to none or while
    documents are awaited."""
    intervals = list(intervals)
    if kind == ImplicitDecision.NONE or any(i.end is None for i in intervals):
        return None
    pause = timedelta(days=suspended_days(legal_start, intervals))
    return add_months(legal_start, silence_months) + pause
