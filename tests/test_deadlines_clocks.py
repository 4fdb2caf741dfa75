"""The two clocks of a case: service target per type and channel, legal clock suspended
while documents are missing and restarted after a transfer."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import time_machine

from app.core.errors import Conflict, ValidationFailed
from app.core.extensions import db
from app.correspondence import services as intake
from app.correspondence.models import Channel, Direction
from app.deadlines import services
from app.deadlines.calendar import local_day
from app.deadlines.models import AckStatus
from tests.deadlines_helpers import admin, paris, register, rule, setup_office


@pytest.fixture
def office(app, make_user):
    return setup_office(app, make_user, deploy=False)


def test_letter_received_friday_18_december_is_due_tuesday_12_january(app, office):
    with app.app_context():
        case = register(paris(2026, 12, 18), channel=Channel.PAPER)
        assert local_day(case.due_at) == date(2027, 1, 12)
        assert case.clock.target_days == 15
        # acknowledgement within two weeks for a letter
        assert local_day(case.clock.ack_due_at) == date(2027, 1, 1)
        assert local_day(case.clock.reminder_at) == date(2027, 1, 8)


def test_emails_and_web_forms_get_five_working_days_and_one_week_to_acknowledge(app, office):
    with app.app_context():
        for channel in (Channel.EMAIL, Channel.WEB):
            case = register(paris(2026, 12, 18), channel=channel)
            assert local_day(case.due_at) == date(2026, 12, 28)
            assert local_day(case.clock.ack_due_at) == date(2026, 12, 25)


def test_outgoing_items_have_no_clock(app, office):
    with app.app_context():
        case = intake.register_case(
            intake.Intake(channel=Channel.PAPER, direction=Direction.OUTGOING, subject="Réponse"),
            None,
            distribute=False,
        )
        assert case.due_at is None
        assert case.clock is None


def test_internal_notes_get_a_service_target_but_no_acknowledgement(app, office):
    with app.app_context():
        note = intake.register_case(
            intake.Intake(
                channel=Channel.INTERNAL,
                direction=Direction.INTERNAL,
                subject="Note",
                received_at=paris(2026, 12, 18),
            ),
            None,
            distribute=False,
        )
        assert local_day(note.due_at) == date(2027, 1, 12)
        assert note.clock.ack_status == AckStatus.NOT_REQUIRED
        assert services.timer_data(note)["due_at"] == note.due_at.isoformat()


def test_most_specific_rule_wins_type_and_channel_over_type_over_channel(app, office):
    with app.app_context():
        rule(None, "paper", target_days=20)
        rule("reclamation", None, target_days=10, implicit_decision="rejection")
        rule("reclamation", "email", target_days=3, ack_days=2)
        letter = register(paris(2026, 3, 2), type_code="demande_information")
        complaint = register(paris(2026, 3, 2), type_code="reclamation")
        emailed = register(paris(2026, 3, 2), type_code="reclamation", channel=Channel.EMAIL)
        assert (letter.clock.target_days, complaint.clock.target_days) == (20, 10)
        assert (emailed.clock.target_days, emailed.clock.ack_days) == (3, 2)
        assert complaint.clock.implicit_decision == "rejection"


def test_a_type_rule_naming_only_the_silence_keeps_each_channels_delays(app, office):
    from app.deadlines.services import save_rule

    with app.app_context():
        save_rule(admin(), type_code="reclamation", channel=None, implicit_decision="rejection")
        letter = register(paris(2026, 12, 18), type_code="reclamation")
        email = register(paris(2026, 12, 18), type_code="reclamation", channel=Channel.EMAIL)
        assert (letter.clock.target_days, letter.clock.ack_days) == (15, 14)
        assert (email.clock.target_days, email.clock.ack_days) == (5, 7)
        assert letter.clock.implicit_decision == email.clock.implicit_decision == "rejection"


def test_an_empty_rule_is_refused(app, office):
    from app.deadlines.services import save_rule

    with app.app_context(), pytest.raises(ValidationFailed) as error:
        save_rule(admin(), type_code="reclamation", channel=None)
    assert error.value.errors == [
        {"field": "target_days", "message": "Renseignez au moins un délai."}
    ]


def test_rule_changes_never_move_the_deadlines_of_cases_already_received(app, office):
    with app.app_context():
        case = register(paris(2026, 3, 2))
        due = case.due_at
        rule(None, "paper", target_days=30)
        db.session.refresh(case)
        assert case.due_at == due


def test_qualification_with_another_type_applies_its_rule(app, office):
    with app.app_context():
        rule("reclamation", None, target_days=10, implicit_decision="rejection")
        case = register(paris(2026, 3, 2), type_code="demande_information")
        intake.qualify_case(case, None, type_code="reclamation")
        db.session.commit()
        assert local_day(case.due_at) == date(2026, 3, 16)
        assert case.clock.implicit_decision_on == date(2026, 5, 2)


def test_types_without_acknowledgement_are_marked_not_required(app, office):
    with app.app_context():
        rule("facture", None, acknowledge=False)
        case = register(paris(2026, 3, 2), type_code="facture")
        assert case.clock.ack_status == AckStatus.NOT_REQUIRED


def test_invalid_rule_is_refused_with_field_errors(app, office):
    with app.app_context(), pytest.raises(ValidationFailed) as error:
        rule("inconnu", "fax", target_days=0, reminder_days=40, implicit_decision="peut-être")
    fields = {e["field"] for e in error.value.errors}
    assert fields == {"type_code", "channel", "target_days", "reminder_days", "implicit_decision"}


# --- legal clock ----------------------------------------------------------------------------


def test_silence_of_two_months_gives_the_implicit_decision_date(app, office):
    with app.app_context():
        rule("demande_information", None, implicit_decision="acceptance")
        case = register(paris(2026, 12, 18))
        assert case.clock.implicit_decision_on == date(2027, 2, 18)


def test_requests_leading_to_no_decision_have_no_implicit_date(app, office):
    with app.app_context():
        case = register(paris(2026, 12, 18))
        assert case.clock.implicit_decision == "none"
        assert case.clock.implicit_decision_on is None


def test_missing_documents_suspend_the_legal_clock_until_they_arrive(app, office):
    with app.app_context():
        rule("demande_information", None, implicit_decision="rejection")
        case = register(paris(2026, 3, 2), service_group="routes")
        assert case.clock.implicit_decision_on == date(2026, 5, 2)
        with time_machine.travel(paris(2026, 3, 10), tick=False):
            services.request_missing_documents(
                case, ["Justificatif de domicile"], date(2026, 4, 10), admin()
            )
        assert case.clock.implicit_decision_on is None  # while documents are awaited
        with time_machine.travel(paris(2026, 3, 30), tick=False):
            services.record_documents_received(case, admin())
        # 20 days stood still: 2 May + 20 days
        assert case.clock.implicit_decision_on == date(2026, 5, 22)
        # the service target is not suspended
        assert local_day(case.due_at) == date(2026, 3, 23)
        history = [e.action for e in intake.case_history(case)]
        assert history[-2:] == ["deadline.suspend", "deadline.resume"]


def test_documents_missing_at_receipt_start_the_clock_on_their_receipt(app, office):
    with app.app_context():
        rule("demande_information", None, implicit_decision="acceptance")
        with time_machine.travel(paris(2026, 3, 2, 11), tick=False):
            case = register(paris(2026, 3, 2))
            services.request_missing_documents(case, ["Devis"], date(2026, 3, 20), admin())
        with time_machine.travel(paris(2026, 3, 12), tick=False):
            services.record_documents_received(case, admin())
        assert case.clock.implicit_decision_on == date(2026, 5, 12)


def test_a_second_suspension_while_one_is_open_is_refused(app, office):
    with app.app_context(), time_machine.travel(paris(2026, 3, 3), tick=False):
        case = register(paris(2026, 3, 2))
        services.request_missing_documents(case, ["Devis"], date(2026, 3, 20), admin())
        with pytest.raises(Conflict):
            services.request_missing_documents(case, ["RIB"], date(2026, 3, 20), admin())
        services.record_documents_received(case, admin())
        with pytest.raises(Conflict):
            services.record_documents_received(case, admin())


def test_missing_documents_request_needs_items_and_a_future_date(app, office):
    with app.app_context(), time_machine.travel(paris(2026, 3, 3), tick=False):
        case = register(paris(2026, 3, 2))
        with pytest.raises(ValidationFailed) as error:
            services.request_missing_documents(case, [" "], date(2026, 3, 1), admin())
        assert {e["field"] for e in error.value.errors} == {
            "missing_documents",
            "documents_due_on",
        }


def test_transfer_restarts_the_legal_clock_from_receipt_by_the_competent_service(app, office):
    with app.app_context():
        rule("demande_information", None, implicit_decision="rejection")
        case = register(paris(2026, 3, 2), service_group="colleges")
        assert case.clock.implicit_decision_on == date(2026, 5, 2)
        intake.redirect_case(
            case, "routes", "Hors compétence", None, received_at=paris(2026, 3, 16)
        )
        db.session.commit()
        assert case.legal_start_at == paris(2026, 3, 16)
        assert case.clock.implicit_decision_on == date(2026, 5, 16)
        # 15 working days from Monday 16 March
        assert local_day(case.due_at) == date(2026, 4, 7)


def test_suspension_before_a_transfer_does_not_count_after_it(app, office):
    with app.app_context():
        rule("demande_information", None, implicit_decision="acceptance")
        case = register(paris(2026, 3, 2), service_group="colleges")
        with time_machine.travel(paris(2026, 3, 3), tick=False):
            services.request_missing_documents(case, ["Devis"], date(2026, 3, 20), admin())
        with time_machine.travel(paris(2026, 3, 9), tick=False):
            services.record_documents_received(case, admin())
        intake.redirect_case(case, "routes", "Hors compétence", None, paris(2026, 3, 16))
        db.session.commit()
        assert case.clock.implicit_decision_on == date(2026, 5, 16)


def test_working_days_helper_is_available_to_diagrams(app):
    from app.engine.sandbox import evaluate

    with app.app_context():
        assert evaluate("working_days_after('2026-12-18', 15)", {}) == date(2027, 1, 12)
        assert evaluate("working_days_after(d, 1)", {"d": date(2026, 5, 13)}) == date(2026, 5, 15)


def test_receipt_day_is_read_in_paris_time(app, office):
    with app.app_context():
        # 23:30 in Paris on Friday 18 December is still the 18th (22:30 UTC)
        case = register(paris(2026, 12, 18, 23) + timedelta(minutes=30))
        assert local_day(case.due_at) == date(2027, 1, 12)
