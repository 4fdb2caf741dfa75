"""Chrono numbers: unique and gapless per year and register, also under concurrency.

The counter row of a (year, register) is incremented with one ``UPDATE … RETURNING``
inside the registering transaction: PostgreSQL holds that row's lock until the
transaction ends, SQLite's ``BEGIN IMMEDIATE`` serialises writers. A rolled-back
registration rolls its increment back too, so no number is ever skipped or repeated.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.core.db import is_postgresql
from app.core.extensions import db
from app.correspondence.models import ChronoCounter, Direction

PARIS = ZoneInfo("Europe/Paris")
REGISTERS = {Direction.INCOMING: "A", Direction.OUTGOING: "D", Direction.INTERNAL: "I"}


def register_for(direction: Direction | str) -> str:
    """The register letter of a direction: A (arrivée), D (départ), I (interne)."""
    return REGISTERS[Direction(direction)]


def format_chrono(year: int, register: str, sequence: int) -> str:
    """``2026-A-004213``."""
    return f"{year}-{register}-{sequence:06d}"


def next_number(register: str, at: datetime) -> tuple[int, int, str]:
    """Take the next number of ``register`` for the year of ``at`` (Paris time).

    Returns ``(year, sequence, chrono)``; runs in the caller's transaction.
    """
    return next_numbers(register, at, 1)[0]


def next_numbers(register: str, at: datetime, count: int) -> list[tuple[int, int, str]]:
    """Take the next ``count`` numbers of ``register`` at once (one statement for a batch
    of registrations); each must be used, or the caller's transaction rolled back."""
    if count < 1:
        return []
    year = at.astimezone(PARIS).year
    increment = (
        update(ChronoCounter)
        .where(ChronoCounter.year == year, ChronoCounter.register == register)
        .values(last_value=ChronoCounter.last_value + count)
        .returning(ChronoCounter.last_value)
        .execution_options(synchronize_session=False)
    )
    last = db.session.execute(increment).scalar()
    if last is None:
        insert = pg_insert if is_postgresql() else sqlite_insert
        db.session.execute(
            insert(ChronoCounter)
            .values(year=year, register=register, last_value=0)
            .on_conflict_do_nothing()
        )
        last = db.session.execute(increment).scalar_one()
    return [
        (year, value, format_chrono(year, register, value))
        for value in range(last - count + 1, last + 1)
    ]
