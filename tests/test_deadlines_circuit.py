"""The shipped incoming-mail circuit keeps its deadlines: acknowledgement in parallel,
reminder before the due date and escalation to the head of service once it has passed,
both as non-interrupting timers fired by the engine's worker."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import time_machine

from app.auth.services import find_user_by_email
from app.core.extensions import db
from app.core.worker import run_once
from app.correspondence.models import CaseStatus, Correspondence
from app.deadlines.calendar import local_day
from app.deadlines.models import AckStatus, DeadlineNotice
from app.engine.models import EngineTimer, HumanTask, InstanceStatus, ProcessInstance, TaskStatus
from app.engine.services import complete_task, fire_due_timers
from tests.deadlines_helpers import citizen, paris, register, setup_office
from tests.smtp_sink import SmtpSink


@pytest.fixture
def office(app, make_user):
    return setup_office(app, make_user)


def open_tasks(case: Correspondence) -> dict[str, HumanTask]:
    rows = db.session.query(HumanTask).filter_by(
        instance_id=case.process_instance_id, status=TaskStatus.OPEN
    )
    return {row.element_id: row for row in rows}


def timers(case: Correspondence) -> dict[str, object]:
    rows = db.session.query(EngineTimer).filter_by(instance_id=case.process_instance_id)
    return {row.element_id: row.due_at for row in rows}


def letter_for_routes():
    return register(
        paris(2026, 12, 18),
        service_group="routes",
        sender=citizen(),
        subject="Nids de poule",
        distribute=True,
    )


def test_circuit_acknowledges_and_arms_reminder_and_escalation_timers(app, office):
    with app.app_context(), time_machine.travel(paris(2026, 12, 18, 11), tick=False):
        case = letter_for_routes()
        assert case.clock.ack_status == AckStatus.TO_PRINT
        assert any(link.role == "accuse_reception" for link in case.attachments)
        task = open_tasks(case)["Task_traiter"]
        assert task.due_at == case.due_at
        assert local_day(case.due_at) == date(2027, 1, 12)
        assert timers(case) == {
            "Timer_relance": case.clock.reminder_at,
            "Timer_escalade": case.due_at,
        }
        assert local_day(case.clock.reminder_at) == date(2027, 1, 8)


def test_reminder_fires_two_working_days_before_and_mails_the_service(app, office):
    with SmtpSink() as sink, app.app_context():
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port)
        with time_machine.travel(paris(2026, 12, 18, 11), tick=False) as clock:
            case = letter_for_routes()
            routes = find_user_by_email(office["routes"])
            task = open_tasks(case)["Task_traiter"]
            from app.engine.services import claim_task

            claim_task(task.id, routes)
            clock.move_to(paris(2027, 1, 8, 7))
            assert fire_due_timers() == 0
            clock.move_to(paris(2027, 1, 8, 8) + timedelta(minutes=1))
            run_once()  # the worker fires the timer, runs the step, sends the e-mail
            db.session.refresh(case.clock)
            assert case.clock.reminded_at is not None
            reminder = [m for m in sink.messages if m["Subject"].startswith("Relance")]
            assert len(reminder) == 1
            assert reminder[0]["Subject"] == (
                f"Relance : courrier {case.chrono} à traiter avant le 12 janvier 2027"
            )
            assert {address.addr_spec for address in reminder[0]["To"].addresses} == {
                "routes@departement.test",
                office["routes"],
            }
            # non-interrupting: the agent still holds the task
            assert set(open_tasks(case)) == {"Task_traiter"}


def test_overdue_case_escalates_to_the_head_of_service(app, office):
    with SmtpSink() as sink, app.app_context():
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port)
        with time_machine.travel(paris(2026, 12, 18, 11), tick=False) as clock:
            case = letter_for_routes()
            clock.move_to(paris(2027, 1, 12, 23))
            fire_due_timers()
            assert "Task_suivi_retard" not in open_tasks(case)
            clock.move_to(paris(2027, 1, 13, 0) + timedelta(minutes=1))
            run_once()
            tasks = open_tasks(case)
            assert set(tasks) == {"Task_traiter", "Task_suivi_retard"}
            head = find_user_by_email(office["chef_routes"])
            assert tasks["Task_suivi_retard"].assignee_id == head.id
            db.session.refresh(case.clock)
            assert case.clock.escalated_to_id == head.id
            escalation = [m for m in sink.messages if m["Subject"].startswith("Courrier en retard")]
            assert [m["To"] for m in escalation] == [office["chef_routes"]]

            # the service answers (files without reply), the head closes the follow-up
            routes = find_user_by_email(office["routes"])
            complete_task(tasks["Task_traiter"].id, {"action": "no_reply"}, routes)
            db.session.refresh(case)
            assert case.status == CaseStatus.CLOSED
            complete_task(tasks["Task_suivi_retard"].id, {"follow_up": "service_relance"}, head)
            instance = db.session.get(ProcessInstance, case.process_instance_id)
            assert instance.status == InstanceStatus.COMPLETED


def test_escalation_goes_to_the_service_group_when_nobody_heads_it(app, office):
    with app.app_context(), time_machine.travel(paris(2026, 12, 18, 11), tick=False) as clock:
        case = register(
            paris(2026, 12, 18), service_group="colleges", sender=citizen(), distribute=True
        )
        clock.move_to(paris(2027, 1, 14))
        fire_due_timers()
        task = open_tasks(case)["Task_suivi_retard"]
        assert task.assignee_id is None
        assert task.candidate_groups == ["colleges"]


def test_answer_before_the_reminder_cancels_both_timers(app, office):
    with app.app_context(), time_machine.travel(paris(2026, 12, 18, 11), tick=False) as clock:
        case = letter_for_routes()
        complete_task(
            open_tasks(case)["Task_traiter"].id,
            {"action": "no_reply"},
            find_user_by_email(office["routes"]),
        )
        assert timers(case) == {}
        clock.move_to(paris(2027, 2, 1))
        assert fire_due_timers() == 0
        assert db.session.query(DeadlineNotice).filter_by(kind="reminder").count() == 0


def test_redirect_moves_the_timers_to_the_new_due_date(app, office):
    with app.app_context(), time_machine.travel(paris(2026, 12, 18, 11), tick=False) as clock:
        case = register(
            paris(2026, 12, 18), service_group="colleges", sender=citizen(), distribute=True
        )
        clock.move_to(paris(2027, 1, 4, 9))
        complete_task(
            open_tasks(case)["Task_traiter"].id,
            {"action": "redirect", "redirect_to": "routes", "reason": "Hors compétence"},
            find_user_by_email(office["colleges"]),
        )
        db.session.refresh(case)
        assert local_day(case.legal_start_at) == date(2027, 1, 4)
        assert local_day(case.due_at) == date(2027, 1, 25)
        assert timers(case)["Timer_escalade"] == case.due_at
        assert open_tasks(case)["Task_traiter"].candidate_groups == ["routes"]
        # the competent service acknowledges again, with its own dates
        assert case.clock.ack_status == AckStatus.TO_PRINT
        acks = [link for link in case.attachments if link.role == "accuse_reception"]
        assert len(acks) == 2
