"""Working days: weekdays that are neither French public holidays (moving ones included,
from the ``holidays`` package) nor days the organisation declared closed."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
from flask import current_app, g, has_app_context
from sqlalchemy import select

PARIS = ZoneInfo("Europe/Paris")


class WorkingCalendar:
    """French public holidays (optionally of one subdivision, e.g. ``57`` for Moselle) plus
    the organisation's closures."""

    def __init__(self, closures: Iterable[date] = (), subdiv: str | None = None):
        self._subdiv = subdiv or None
        self._public = holidays.France(subdiv=self._subdiv)
        self._closures = frozenset(closures)
        self._off_by_year: dict[int, list[date]] = {}

    def holiday_name(self, day: date) -> str | None:
        """The public holiday's name (French), the closure, or None for an ordinary day."""
        if day in self._closures:
            return "Fermeture des services"
        return self._public.get(day)

    def is_working_day(self, day: date) -> bool:
        """Monday to Friday, not a public holiday, not a closure."""
        return day.weekday() < 5 and day not in self._public and day not in self._closures

    def add_working_days(self, start: date, count: int) -> date:
        """The ``count``-th working day after ``start`` (the day after is the first one)."""
        day = start
        remaining = count
        while remaining > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def subtract_working_days(self, end: date, count: int) -> date:
        """The working day ``count`` working days before ``end``."""
        day = end
        remaining = count
        while remaining > 0:
            day -= timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """How many working days lie after ``start`` up to ``end`` included (0 if earlier)."""
        if end <= start:
            return 0
        weekdays = _weekdays_until(end) - _weekdays_until(start)
        off = 0
        for year in range(start.year, end.year + 1):
            days = self._days_off(year)
            off += bisect_right(days, end) - bisect_left(days, start + timedelta(days=1))
        return weekdays - off

    def _days_off(self, year: int) -> list[date]:
        """Weekdays of ``year`` that are holidays or closures, sorted."""
        found = self._off_by_year.get(year)
        if found is None:
            public = holidays.France(subdiv=self._subdiv, years=year)
            candidates = set(public) | {d for d in self._closures if d.year == year}
            found = sorted(d for d in candidates if d.weekday() < 5)
            self._off_by_year[year] = found
        return found


def _weekdays_until(day: date) -> int:
    """Monday-to-Friday days from a fixed Monday up to ``day`` included."""
    ordinal = day.toordinal() - 1  # 0001-01-01 is a Monday: ordinal 1
    weeks, rest = divmod(ordinal + 1, 7)
    return weeks * 5 + min(rest, 5)


def working_calendar() -> WorkingCalendar:
    """The organisation's calendar (closures read once per request or job)."""
    if has_app_context() and "working_calendar" in g:
        return g.working_calendar
    from app.core.extensions import db
    from app.deadlines.models import Closure

    closures = list(db.session.execute(select(Closure.day)).scalars())
    calendar = WorkingCalendar(closures, current_app.config.get("MISSIVE_HOLIDAYS_SUBDIV"))
    if has_app_context():
        g.working_calendar = calendar
    return calendar


def forget_calendar() -> None:
    """Drop the cached calendar (after a closure was added or removed)."""
    if has_app_context():
        g.pop("working_calendar", None)


def local_day(moment: datetime) -> date:
    """The day a moment falls on in metropolitan France."""
    return moment.astimezone(PARIS).date()


def end_of_day(day: date) -> datetime:
    """The last second of a day in Paris, in UTC."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=PARIS).astimezone(UTC)


def morning_of(day: date, hour: int = 8) -> datetime:
    """A day's opening hour in Paris, in UTC."""
    return datetime.combine(day, time(hour, 0), tzinfo=PARIS).astimezone(UTC)
