"""Working days: weekends, French public holidays (moving ones too) and closures."""

from __future__ import annotations

from datetime import date

import pytest

from app.deadlines.calendar import WorkingCalendar, working_calendar
from app.deadlines.clocks import add_months, reminder_on, service_due_on

FRANCE = WorkingCalendar()


def test_letter_received_friday_18_december_2026_is_due_tuesday_12_january_2027():
    # 15 working days from Monday 21: Christmas and New Year's Day are skipped
    assert service_due_on(FRANCE, date(2026, 12, 18), 15) == date(2027, 1, 12)


def test_email_received_friday_18_december_2026_is_due_after_christmas():
    # 5 working days: 21, 22, 23, 24, (25 is Christmas) 28
    assert service_due_on(FRANCE, date(2026, 12, 18), 5) == date(2026, 12, 28)


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2026, 4, 6), "Easter Monday"),
        (date(2027, 3, 29), "Easter Monday"),
        (date(2026, 5, 14), "Ascension Day"),
        (date(2027, 5, 6), "Ascension Day"),
        (date(2026, 5, 25), "Whit Monday"),
        (date(2027, 5, 17), "Whit Monday"),
        (date(2026, 7, 14), "National Day"),
    ],
)
def test_moving_and_fixed_public_holidays_are_not_working_days(day, name):
    assert not FRANCE.is_working_day(day), name
    assert FRANCE.holiday_name(day)


def test_counting_skips_easter_monday():
    # received Thursday 2 April 2026: 3, (6 Easter Monday) 7, 8 → third working day is the 8th
    assert FRANCE.add_working_days(date(2026, 4, 2), 3) == date(2026, 4, 8)


def test_counting_skips_ascension_and_its_bridge_when_declared_closed():
    plain = FRANCE.add_working_days(date(2026, 5, 13), 1)
    assert plain == date(2026, 5, 15)  # Thursday 14 is Ascension
    bridge = WorkingCalendar(closures=[date(2026, 5, 15)])
    assert bridge.add_working_days(date(2026, 5, 13), 1) == date(2026, 5, 18)


def test_counting_skips_whit_monday_and_14_july():
    assert FRANCE.add_working_days(date(2026, 5, 22), 1) == date(2026, 5, 26)
    assert FRANCE.add_working_days(date(2026, 7, 13), 1) == date(2026, 7, 15)


def test_receipt_on_a_saturday_starts_counting_on_monday():
    assert FRANCE.add_working_days(date(2026, 3, 7), 1) == date(2026, 3, 9)


def test_moselle_adds_saint_stephen_and_good_friday_when_configured():
    moselle = WorkingCalendar(subdiv="57")
    # Friday 26 December 2025 and Good Friday 3 April 2026
    assert FRANCE.add_working_days(date(2025, 12, 24), 1) == date(2025, 12, 26)
    assert moselle.add_working_days(date(2025, 12, 24), 1) == date(2025, 12, 29)
    assert FRANCE.is_working_day(date(2026, 4, 3))
    assert not moselle.is_working_day(date(2026, 4, 3))


def test_working_days_between_counts_the_days_after_the_first_up_to_the_last():
    assert FRANCE.working_days_between(date(2026, 12, 18), date(2027, 1, 12)) == 15
    assert FRANCE.working_days_between(date(2026, 12, 18), date(2026, 12, 18)) == 0
    assert FRANCE.working_days_between(date(2027, 1, 12), date(2026, 12, 18)) == 0
    assert FRANCE.working_days_between(date(2026, 5, 13), date(2026, 5, 18)) == 2


def test_reminder_is_two_working_days_before_the_due_date():
    assert reminder_on(FRANCE, date(2026, 12, 18), date(2027, 1, 12), 2) == date(2027, 1, 8)


def test_reminder_never_falls_before_the_first_working_day():
    assert reminder_on(FRANCE, date(2026, 12, 18), date(2026, 12, 22), 5) == date(2026, 12, 21)


def test_two_months_keep_the_day_or_take_the_end_of_a_shorter_month():
    assert add_months(date(2026, 12, 18), 2) == date(2027, 2, 18)
    assert add_months(date(2026, 12, 31), 2) == date(2027, 2, 28)
    assert add_months(date(2027, 12, 31), 2) == date(2028, 2, 29)


def test_closures_configured_by_the_organisation_stop_counting(app, make_user):
    from app.auth.services import find_user_by_email
    from app.deadlines.services import add_closure, remove_closure

    make_user(role="admin", email="admin@example.test")
    with app.test_request_context():
        admin = find_user_by_email("admin@example.test")
        assert working_calendar().add_working_days(date(2026, 12, 18), 15) == date(2027, 1, 12)
        closure = add_closure(date(2026, 12, 31), "Fermeture de fin d'année", admin)
        assert working_calendar().add_working_days(date(2026, 12, 18), 15) == date(2027, 1, 13)
        remove_closure(closure.id, admin)
        assert working_calendar().add_working_days(date(2026, 12, 18), 15) == date(2027, 1, 12)


def test_only_admins_declare_closures(app, make_user):
    from app.auth.services import find_user_by_email
    from app.core.errors import PermissionDenied
    from app.deadlines.services import add_closure

    make_user(email="agent@example.test")
    with app.app_context(), pytest.raises(PermissionDenied):
        add_closure(date(2026, 12, 31), "Fermeture", find_user_by_email("agent@example.test"))
