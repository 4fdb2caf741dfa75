"""Chrono numbers: unique, gapless, per year and register, also under concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from app.core.extensions import db
from app.correspondence import numbering, services
from app.correspondence.models import Channel, Direction
from tests.intake_helpers import setup_registry


def test_numbers_are_per_register_and_restart_each_year(app):
    with app.app_context():
        at = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # already 2027 in Paris
        assert numbering.next_number("A", at)[2] == "2027-A-000001"
        assert numbering.next_number("A", at)[2] == "2027-A-000002"
        assert numbering.next_number("D", at)[2] == "2027-D-000001"
        assert numbering.next_number("A", datetime(2026, 6, 1, tzinfo=UTC))[2] == "2026-A-000001"
        db.session.commit()


def test_a_failed_registration_leaves_no_gap(app):
    from app.core.errors import ValidationFailed

    setup_registry(app, deploy=False)
    with app.app_context():
        first = services.register_case(
            services.Intake(channel=Channel.PAPER, subject="Un"), None, distribute=False
        )
        with pytest.raises(ValidationFailed):
            services.register_case(
                services.Intake(channel=Channel.PAPER, subject="Deux", type_code="inconnu"),
                None,
                distribute=False,
            )
        third = services.register_case(
            services.Intake(channel=Channel.PAPER, subject="Trois"), None, distribute=False
        )
        assert (first.sequence, third.sequence) == (1, 2)
        internal = services.register_case(
            services.Intake(channel=Channel.INTERNAL, subject="Note", direction=Direction.INTERNAL),
            None,
            distribute=False,
        )
        assert "-I-000001" in internal.chrono


@pytest.mark.postgresql
def test_fifty_concurrent_registrations_get_fifty_consecutive_numbers(app):
    assert app.config["DB_BACKEND"] == "postgresql"
    setup_registry(app, deploy=False)
    chronos: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def register(i: int) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=30)
                case = services.register_case(
                    services.Intake(channel=Channel.API, subject=f"Concurrent {i}"),
                    None,
                    distribute=False,
                )
                chronos.append(case.chrono)
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    year = datetime.now(numbering.PARIS).year
    assert sorted(chronos) == [f"{year}-A-{n:06d}" for n in range(1, 51)]
