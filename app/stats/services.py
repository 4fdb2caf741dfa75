"""Service-quality indicators (charte Marianne): volumes, acknowledgements and answers in
time, delays in working days, backlog and overdue cases — per service, délégation,
channel or type, within what the reader may see.

Definitions (shown on the dashboard):
- *volume*: incoming cases received in the period;
- *accusés dans les délais*: among the cases whose acknowledgement is due (required, and
  either sent or past its deadline), those sent (e-mailed or printed) by the deadline;
- *réponses dans le délai*: among the cases answered or already overdue, those answered
  by their due date — answered when the signed answer left (e-mailed or put in the print
  batch), else when the case was closed (closed without a written answer);
- *délai médian / 90e centile*: working days from receipt to that answer, answered cases
  only (90th percentile by the nearest-rank method);
- *stock* and *en retard*: cases still open at the end of the period (whatever their
  receipt date), and those of them past their due date.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import or_, select

from app.auth.models import OrgUnit, OrgUnitKind, User
from app.core.db import utcnow
from app.core.errors import PermissionDenied, ValidationFailed
from app.core.extensions import db
from app.core.i18n import N_
from app.correspondence.models import (
    CHANNEL_LABELS,
    CaseStatus,
    CaseType,
    Channel,
    Correspondence,
    Direction,
)
from app.correspondence.permissions import visible_condition
from app.deadlines.calendar import PARIS, local_day, working_calendar
from app.deadlines.models import AckStatus, CaseClock

DIMENSIONS = {
    "service": N_("Service"),
    "delegation": N_("Délégation"),
    "channel": N_("Canal"),
    "type": N_("Type"),
}
HEADQUARTERS = "Siège"
NOT_DISTRIBUTED = "Non distribué"
UNTYPED = "Non qualifié"
MAX_PERIOD_DAYS = 366 * 3
LIST_LIMIT = 200


@dataclass
class Period:
    """Receipt dates of the cases counted, Paris days, both included."""

    start: date
    end: date

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time(0), PARIS).astimezone(UTC)

    @property
    def end_at(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time(0), PARIS).astimezone(UTC)


@dataclass
class Indicators:
    """The figures of one group of cases."""

    key: str
    label: str
    volume: int = 0
    ack_measured: int = 0
    ack_in_time: int = 0
    answers_measured: int = 0
    answered_in_time: int = 0
    delays: list[int] = field(default_factory=list)
    backlog: int = 0
    overdue: int = 0

    @property
    def closed(self) -> int:
        return len(self.delays)

    @property
    def ack_rate(self) -> float | None:
        return _share(self.ack_in_time, self.ack_measured)

    @property
    def answer_rate(self) -> float | None:
        return _share(self.answered_in_time, self.answers_measured)

    @property
    def median_delay(self) -> float | None:
        return statistics.median(self.delays) if self.delays else None

    @property
    def p90_delay(self) -> int | None:
        return percentile(self.delays, 90)

    def as_dict(self) -> dict:
        """The figures as plain values (exports, API)."""
        return {
            "key": self.key,
            "label": self.label,
            "volume": self.volume,
            "ack_measured": self.ack_measured,
            "ack_in_time": self.ack_in_time,
            "ack_rate": self.ack_rate,
            "answers_measured": self.answers_measured,
            "answered_in_time": self.answered_in_time,
            "answer_rate": self.answer_rate,
            "closed": self.closed,
            "median_delay": self.median_delay,
            "p90_delay": self.p90_delay,
            "backlog": self.backlog,
            "overdue": self.overdue,
        }


@dataclass
class Report:
    """The dashboard: one row per group and the total."""

    period: Period
    dimension: str
    rows: list[Indicators]
    total: Indicators
    computed_at: datetime


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def percentile(values: Iterable[int], rank: int) -> int | None:
    """Nearest-rank percentile: the smallest value with ``rank`` % of values at or below."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]


def default_period(today: date | None = None) -> Period:
    """The last three full months and the current one."""
    today = today or local_day(utcnow())
    month = today.month - 3
    year = today.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    return Period(date(year, month, 1), today)


def parse_period(start: str | None, end: str | None) -> Period:
    """A period from ISO dates (defaults: the last three months); refused when backwards
    or longer than three years."""
    fallback = default_period()
    try:
        period = Period(
            date.fromisoformat(start) if start else fallback.start,
            date.fromisoformat(end) if end else fallback.end,
        )
    except ValueError as exc:
        raise ValidationFailed(
            "Date invalide.",
            errors=[{"field": "from", "message": "Dates au format AAAA-MM-JJ."}],
        ) from exc
    if period.end < period.start or (period.end - period.start).days > MAX_PERIOD_DAYS:
        raise ValidationFailed(
            "Période invalide.",
            errors=[{"field": "to", "message": "Fin après le début, trois ans au plus."}],
        )
    return period


# --- who sees what ------------------------------------------------------------------------


def scope(user: User) -> set[int] | None:
    """The org units whose figures the user may see; None means all of them.

    Admins and analysts see the whole organisation; a head sees the units under the one
    they head; an agent sees their own unit and their groups' units.
    """
    if user.is_admin or user.has_role("analyst"):
        return None
    units = {user.org_unit_id} if user.org_unit_id else set()
    units |= {g.org_unit_id for g in user.groups if g.org_unit_id}
    headed = list(
        db.session.execute(select(OrgUnit.id).where(OrgUnit.head_id == user.id)).scalars()
    )
    units |= set(headed)
    if headed:
        children = _children_index()
        frontier = list(headed)
        while frontier:
            unit_id = frontier.pop()
            for child in children.get(unit_id, []):
                if child not in units:
                    units.add(child)
                    frontier.append(child)
    return units


def _children_index() -> dict[int, list[int]]:
    index: dict[int, list[int]] = {}
    for unit_id, parent_id in db.session.execute(select(OrgUnit.id, OrgUnit.parent_id)):
        if parent_id is not None:
            index.setdefault(parent_id, []).append(unit_id)
    return index


def visible_units(user: User) -> list[OrgUnit]:
    """The units the user may pick in the dashboard's filter."""
    allowed = scope(user)
    stmt = select(OrgUnit).where(OrgUnit.active.is_(True)).order_by(OrgUnit.name)
    if allowed is not None:
        stmt = stmt.where(OrgUnit.id.in_(allowed or {-1}))
    return list(db.session.execute(stmt).scalars())


def _check_unit(user: User, unit_id: int | None) -> None:
    allowed = scope(user)
    if unit_id is not None and allowed is not None and unit_id not in allowed:
        raise PermissionDenied("Vous n'avez pas accès aux indicateurs de ce service.")


# --- computing ----------------------------------------------------------------------------


@dataclass
class _Case:
    id: int
    channel: str
    type_code: str | None
    type_label: str | None
    service_id: int | None
    received_at: datetime
    due_at: datetime | None
    closed_at: datetime | None
    answered_at: datetime | None  # the signed answer left; else the closing counts
    status: str
    acknowledge: bool
    ack_due_at: datetime | None
    ack_sent_at: datetime | None


def _cases(period: Period, unit_ids: set[int] | None, filters: dict) -> list[_Case]:
    stmt = (
        select(
            Correspondence.id,
            Correspondence.channel,
            CaseType.code,
            CaseType.label,
            Correspondence.service_id,
            Correspondence.received_at,
            Correspondence.due_at,
            Correspondence.closed_at,
            Correspondence.status,
            Correspondence.answered_at,
            CaseClock.acknowledge,
            CaseClock.ack_due_at,
            CaseClock.ack_sent_at,
            CaseClock.ack_status,
        )
        .outerjoin(CaseType, CaseType.id == Correspondence.type_id)
        .outerjoin(CaseClock, CaseClock.correspondence_id == Correspondence.id)
        .where(
            Correspondence.direction == Direction.INCOMING,
            Correspondence.received_at < period.end_at,
            or_(
                Correspondence.received_at >= period.start_at,
                Correspondence.status != CaseStatus.CLOSED,
            ),
        )
    )
    if unit_ids is not None:
        stmt = stmt.where(Correspondence.service_id.in_(unit_ids or {-1}))
    if filters.get("service"):
        stmt = stmt.where(Correspondence.service_id == filters["service"])
    if filters.get("channel"):
        stmt = stmt.where(Correspondence.channel == Channel(filters["channel"]))
    if filters.get("type"):
        stmt = stmt.where(CaseType.code == filters["type"])
    cases = []
    for row in db.session.execute(stmt):
        cases.append(
            _Case(
                id=row[0],
                channel=str(row[1]),
                type_code=row[2],
                type_label=row[3],
                service_id=row[4],
                received_at=row[5],
                due_at=row[6],
                closed_at=row[7],
                answered_at=row[9] or row[7],
                status=str(row[8]),
                acknowledge=bool(row[10]) and row[13] != AckStatus.NOT_REQUIRED,
                ack_due_at=row[11],
                ack_sent_at=row[12],
            )
        )
    return cases


def _units_by_id() -> dict[int, OrgUnit]:
    return {u.id: u for u in db.session.execute(select(OrgUnit)).scalars()}


def _delegation_of(unit: OrgUnit | None, units: dict[int, OrgUnit]) -> OrgUnit | None:
    while unit is not None:
        if unit.kind == OrgUnitKind.DELEGATION:
            return unit
        unit = units.get(unit.parent_id) if unit.parent_id else None
    return None


def _grouping(dimension: str, units: dict[int, OrgUnit]):
    def by_service(case: _Case) -> tuple[str, str]:
        unit = units.get(case.service_id) if case.service_id else None
        return (unit.code, unit.name) if unit else ("-", NOT_DISTRIBUTED)

    def by_delegation(case: _Case) -> tuple[str, str]:
        unit = units.get(case.service_id) if case.service_id else None
        delegation = _delegation_of(unit, units)
        return (delegation.code, delegation.name) if delegation else ("siege", HEADQUARTERS)

    def by_channel(case: _Case) -> tuple[str, str]:
        return case.channel, CHANNEL_LABELS[Channel(case.channel)]

    def by_type(case: _Case) -> tuple[str, str]:
        return (case.type_code, case.type_label) if case.type_code else ("-", UNTYPED)

    return {
        "service": by_service,
        "delegation": by_delegation,
        "channel": by_channel,
        "type": by_type,
    }[dimension]


def _count(row: Indicators, case: _Case, period: Period, now: datetime, calendar) -> None:
    in_period = period.start_at <= case.received_at < period.end_at
    open_at_end = case.closed_at is None or case.closed_at >= period.end_at
    moment = min(now, period.end_at)
    if open_at_end:
        row.backlog += 1
        if case.due_at is not None and case.due_at < moment:
            row.overdue += 1
    if not in_period:
        return
    row.volume += 1
    if case.acknowledge and case.ack_due_at is not None:
        sent = case.ack_sent_at
        if sent is not None or case.ack_due_at < now:
            row.ack_measured += 1
            if sent is not None and sent <= case.ack_due_at:
                row.ack_in_time += 1
    if case.due_at is not None:
        if case.answered_at is not None:
            row.answers_measured += 1
            if case.answered_at <= case.due_at:
                row.answered_in_time += 1
        elif case.due_at < now:
            row.answers_measured += 1
    if case.answered_at is not None:
        row.delays.append(
            calendar.working_days_between(local_day(case.received_at), local_day(case.answered_at))
        )


def report(
    user: User,
    period: Period,
    dimension: str = "service",
    *,
    service: int | None = None,
    channel: str | None = None,
    type_code: str | None = None,
) -> Report:
    """The indicators of the cases the user may see, grouped by ``dimension``."""
    if dimension not in DIMENSIONS:
        raise ValidationFailed(
            "Regroupement inconnu.",
            errors=[{"field": "group_by", "message": "service, delegation, channel ou type."}],
        )
    if channel and channel not in {c.value for c in Channel}:
        raise ValidationFailed(
            "Canal inconnu.", errors=[{"field": "channel", "message": "Canal inconnu."}]
        )
    _check_unit(user, service)
    cases = _cases(period, scope(user), {"service": service, "channel": channel, "type": type_code})
    units = _units_by_id()
    key_of = _grouping(dimension, units)
    calendar = working_calendar()
    now = utcnow()
    rows: dict[str, Indicators] = {}
    total = Indicators("total", "Total")
    for case in cases:
        key, label = key_of(case)
        row = rows.get(key)
        if row is None:
            row = rows[key] = Indicators(key, label)
        _count(row, case, period, now, calendar)
        _count(total, case, period, now, calendar)
    ordered = sorted(rows.values(), key=lambda r: (-r.volume, r.label))
    return Report(period, dimension, ordered, total, now)


def case_lists(
    user: User,
    period: Period,
    *,
    service: int | None = None,
    channel: str | None = None,
    type_code: str | None = None,
) -> tuple[list[Correspondence], list[Correspondence]]:
    """The open cases (backlog) and the overdue ones, soonest due first, among those the
    user may open."""
    _check_unit(user, service)
    allowed = scope(user)
    stmt = (
        select(Correspondence)
        .outerjoin(CaseType, CaseType.id == Correspondence.type_id)
        .where(
            Correspondence.direction == Direction.INCOMING,
            Correspondence.status != CaseStatus.CLOSED,
            Correspondence.received_at < period.end_at,
            visible_condition(user),
        )
        .order_by(Correspondence.due_at, Correspondence.id)
        .limit(LIST_LIMIT)
    )
    if allowed is not None:
        stmt = stmt.where(Correspondence.service_id.in_(allowed or {-1}))
    if service:
        stmt = stmt.where(Correspondence.service_id == service)
    if channel:
        stmt = stmt.where(Correspondence.channel == Channel(channel))
    if type_code:
        stmt = stmt.where(CaseType.code == type_code)
    backlog = list(db.session.execute(stmt).scalars())
    now = utcnow()
    overdue = [c for c in backlog if c.due_at is not None and c.due_at < now]
    return backlog, overdue


# --- open data ----------------------------------------------------------------------------


def open_data(months: int = 12, today: date | None = None) -> list[dict]:
    """Indicators per month and service over the last complete months, without any
    personal data (the open-data file)."""
    today = today or local_day(utcnow())
    first_of_month = today.replace(day=1)
    rows: list[dict] = []
    units = _units_by_id()
    calendar = working_calendar()
    now = utcnow()
    start = first_of_month
    for _ in range(months):
        start = (start - timedelta(days=1)).replace(day=1)
    month_start = start
    while month_start < first_of_month:
        next_month = (month_start + timedelta(days=32)).replace(day=1)
        period = Period(month_start, next_month - timedelta(days=1))
        groups: dict[str, Indicators] = {}
        for case in _cases(period, None, {}):
            if not period.start_at <= case.received_at < period.end_at:
                continue
            unit = units.get(case.service_id) if case.service_id else None
            key = unit.code if unit else "-"
            row = groups.setdefault(key, Indicators(key, unit.name if unit else NOT_DISTRIBUTED))
            _count(row, case, period, now, calendar)
        for row in sorted(groups.values(), key=lambda r: r.label):
            figures = row.as_dict()
            rows.append(
                {
                    "periode": month_start.strftime("%Y-%m"),
                    "service": row.label,
                    "code_service": row.key,
                    "volume": figures["volume"],
                    "accuses_mesures": figures["ack_measured"],
                    "accuses_dans_les_delais": figures["ack_in_time"],
                    "taux_accuses_dans_les_delais": figures["ack_rate"],
                    "reponses_mesurees": figures["answers_measured"],
                    "reponses_dans_le_delai": figures["answered_in_time"],
                    "taux_reponses_dans_le_delai": figures["answer_rate"],
                    "delai_median_jours_ouvres": figures["median_delay"],
                    "delai_90e_centile_jours_ouvres": figures["p90_delay"],
                }
            )
        month_start = next_month
    return rows
