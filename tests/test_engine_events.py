"""Timers, messages, decision tables and service tasks."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from app.auth.services import create_group, find_user_by_email
from app.core.db import utcnow
from app.core.errors import NotFound
from app.core.extensions import db
from app.core.worker import run_once
from app.engine import services
from app.engine.models import (
    EngineJob,
    EngineTimer,
    Incident,
    InstanceStatus,
    JobStatus,
    ProcessInstance,
)
from tests.engine_helpers import deploy_fixtures, flaky, handler_calls, open_task, open_tasks


@pytest.fixture
def admin(app, make_user):
    make_user(role="admin", email="admin@example.test")
    with app.app_context():
        for name in ("courrier-central", "chefs", "dgs", "comptabilite", "finances"):
            create_group(name=name, label=name)
    return "admin@example.test"


def _elements(instance_id):
    return sorted(t.element_id for t in open_tasks(instance_id))


# --- timers -------------------------------------------------------------------------------


def test_reminder_due_in_5_days_fires_then_and_not_before(app, admin):
    start = utcnow()
    with app.app_context(), time_machine.travel(start, tick=False) as clock:
        deploy_fixtures("camunda_timers.bpmn")
        instance = services.start_instance(
            "relances", {"delai_escalade": "P10D"}, find_user_by_email(admin)
        )
        timers = {t.element_id: t.due_at for t in db.session.query(EngineTimer)}
        assert timers["Timer_relance"] - start == timedelta(days=5)
        assert timers["Timer_escalade"] - start == timedelta(days=10)
        clock.shift(timedelta(days=4, hours=23))
        assert services.fire_due_timers() == 0
        assert _elements(instance.id) == ["Task_traiter"]
        clock.shift(timedelta(hours=2))
        assert services.fire_due_timers() == 1
        # non-interrupting: the original task is still there, next to the reminder
        assert _elements(instance.id) == ["Task_relance", "Task_traiter"]


def test_overdue_task_escalates_and_the_interrupting_timer_cancels_it(app, admin):
    start = utcnow()
    with app.app_context(), time_machine.travel(start, tick=False) as clock:
        deploy_fixtures("camunda_timers.bpmn")
        instance = services.start_instance(
            "relances", {"delai_escalade": "P10D"}, find_user_by_email(admin)
        )
        clock.shift(timedelta(days=10, minutes=1))
        run_once()  # the worker fires both due timers
        assert _elements(instance.id) == ["Task_escalade", "Task_relance"]
        services.complete_task(
            open_task(instance.id, "Task_escalade").id, {}, find_user_by_email(admin)
        )
        services.complete_task(
            open_task(instance.id, "Task_relance").id, {}, find_user_by_email(admin)
        )
        assert db.session.get(ProcessInstance, instance.id).status == InstanceStatus.COMPLETED


def test_intermediate_timer_waits_48_hours(app, admin):
    start = utcnow()
    with app.app_context(), time_machine.travel(start, tick=False) as clock:
        deploy_fixtures("camunda_timers.bpmn")
        user = find_user_by_email(admin)
        instance = services.start_instance("relances", {"delai_escalade": "P10D"}, user)
        clock.shift(timedelta(days=1))
        services.complete_task(open_task(instance.id).id, {}, user)
        assert open_tasks(instance.id) == []
        assert [t.element_id for t in db.session.query(EngineTimer)] == ["Wait_48h"]
        clock.shift(timedelta(hours=47))
        services.fire_due_timers()
        assert open_tasks(instance.id) == []
        clock.shift(timedelta(hours=2))
        services.fire_due_timers()
        assert _elements(instance.id) == ["Task_clore"]


def test_timer_start_event_opens_the_task_when_due(app, admin):
    start = utcnow()
    with app.app_context(), time_machine.travel(start, tick=False) as clock:
        deploy_fixtures("camunda_timer_start.bpmn")
        instance = services.start_instance("rapport_differe", {}, find_user_by_email(admin))
        assert open_tasks(instance.id) == []
        clock.shift(timedelta(minutes=61))
        services.fire_due_timers()
        assert _elements(instance.id) == ["Task_rapport"]


def test_timer_firing_is_audited(app, admin):
    start = utcnow()
    with app.app_context(), time_machine.travel(start, tick=False) as clock:
        deploy_fixtures("camunda_timer_start.bpmn")
        instance = services.start_instance("rapport_differe", {}, find_user_by_email(admin))
        clock.shift(timedelta(hours=2))
        services.fire_due_timers()
        history = services.instance_history(db.session.get(ProcessInstance, instance.id))
        assert history[-1].action == "timer.fire"
        assert history[-1].data["elements"] == ["Start_timer"]


# --- messages ------------------------------------------------------------------------------


def test_message_is_correlated_by_key_and_its_variables_become_case_data(app, admin):
    with app.app_context():
        deploy_fixtures("camunda_messages.bpmn")
        user = find_user_by_email(admin)
        first = services.start_instance("demande_pieces", {}, user, business_key="2026-A-1")
        second = services.start_instance("demande_pieces", {}, user, business_key="2026-A-2")
        for instance in (first, second):
            services.complete_task(open_task(instance.id).id, {}, user)
        with pytest.raises(NotFound):
            services.send_message("pieces-recues", "2026-A-9", {}, user)
        assert services.send_message("pieces-recues", "2026-A-2", {"nombre_pieces": 3}, user) == [
            second.id
        ]
        assert open_tasks(second.id) == []  # now waiting in the receive task
        assert services.send_message("document-signe", "2026-A-2", {"document_id": 12}, user) == [
            second.id
        ]
        task = open_task(second.id)
        assert task.title == "Instruire (3 pièces)"
        assert services.task_data(task)["document_id"] == 12
        assert open_tasks(first.id) == []  # the other case still waits


def test_api_sends_a_message(client, app, admin, api_token):
    with app.app_context():
        deploy_fixtures("camunda_messages.bpmn")
        user = find_user_by_email(admin)
        instance = services.start_instance("demande_pieces", {}, user, business_key="K-1")
        services.complete_task(open_task(instance.id).id, {}, user)
        instance_id = instance.id
    headers = api_token(admin)
    missing = client.post(
        "/api/v1/messages",
        headers=headers,
        json={"name": "pieces-recues", "correlation_key": "K-2"},
    )
    assert missing.status_code == 404
    sent = client.post(
        "/api/v1/messages",
        headers=headers,
        json={"name": "pieces-recues", "correlation_key": "K-1", "data": {"nombre_pieces": 1}},
    )
    assert sent.get_json() == {"instances": [instance_id]}


# --- decision tables ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document_type", "amount", "group", "copies", "priority"),
    [
        ("facture", 1200, "comptabilite", ["comptabilite"], 50),
        ("facture", 5000, "finances", ["comptabilite"], 50),
        ("facture", 150000, "dgs", ["comptabilite", "finances", "dgs"], 80),
        ("courrier", 20000, "signataires-president", ["comptabilite", "finances"], 80),
    ],
)
def test_decision_tables_choose_the_signer_and_collect_copies(
    app, admin, document_type, amount, group, copies, priority
):
    with app.app_context():
        deploy_fixtures("camunda_dmn.bpmn", "invoice_routing.dmn")
        instance = services.start_instance(
            "circuit_facture",
            {"document_type": document_type, "amount": amount},
            find_user_by_email(admin),
        )
        task = open_task(instance.id)
        assert task.candidate_groups == [group]
        assert task.priority == priority
        assert services.task_data(task)["copies"] == copies


def test_unique_table_with_two_matching_rules_is_an_error_not_a_guess(app, admin):
    with app.app_context():
        deploy_fixtures("camunda_dmn.bpmn", "invoice_routing.dmn")
        with pytest.raises(services.EngineFailure) as failure:
            services.start_instance(
                "circuit_facture",
                {"document_type": "facture", "amount": 10000},
                find_user_by_email(admin),
            )
    assert "plusieurs règles" in failure.value.detail


def test_instance_keeps_the_decision_table_of_its_version(app, admin):
    changed = (b"<text>&lt; 5000</text>", b"<text>&lt; 100</text>")
    from tests.engine_helpers import fixture_bytes

    with app.app_context():
        deploy_fixtures("camunda_dmn.bpmn", "invoice_routing.dmn")
        user = find_user_by_email(admin)
        services.deploy(
            [("invoice_routing.dmn", fixture_bytes("invoice_routing.dmn").replace(*changed))], None
        )
        pinned = services.start_instance(
            "circuit_facture", {"document_type": "facture", "amount": 1200}, user, version=1
        )
        assert open_task(pinned.id).candidate_groups == ["comptabilite"]
        services.deploy(
            [
                ("camunda_dmn.bpmn", fixture_bytes("camunda_dmn.bpmn")),
                ("invoice_routing.dmn", fixture_bytes("invoice_routing.dmn").replace(*changed)),
            ],
            None,
        )
        latest = services.start_instance(
            "circuit_facture", {"document_type": "facture", "amount": 1200}, user
        )
        assert latest.version.version == 2
        assert open_task(latest.id).candidate_groups == ["dgs"]  # 1 200 € is no longer "petit"


# --- service tasks --------------------------------------------------------------------------


def test_service_handler_runs_right_after_the_step_and_feeds_the_case(app, admin):
    handler_calls.clear()
    with app.app_context():
        deploy_fixtures("camunda_service.bpmn")
        instance = services.start_instance("accuse_reception", {}, find_user_by_email(admin))
        task = open_task(instance.id)
        assert handler_calls == [f"reference:{instance.id}"]
        assert services.task_data(task)["reference"] == f"AR-{instance.id}"


def test_failing_handler_keeps_the_completed_step_and_retries_with_back_off(app, admin):
    flaky["failures_left"] = 2
    start = utcnow()
    with app.app_context(), time_machine.travel(start, tick=False) as clock:
        deploy_fixtures("camunda_service.bpmn")
        user = find_user_by_email(admin)
        instance = services.start_instance("accuse_reception", {}, user)
        services.complete_task(open_task(instance.id).id, {}, user)  # then the send fails
        job = db.session.query(EngineJob).filter_by(handler="test_flaky_send").one()
        assert (job.status, job.attempts) == (JobStatus.PENDING, 1)
        assert "serveur SMTP injoignable" in job.last_error
        incident = db.session.query(Incident).one()
        assert incident.kind == "job" and incident.resolved_at is None
        assert open_tasks(instance.id) == []  # the agent's completion is kept
        assert services.run_due_jobs() == 0  # back-off: not due yet
        clock.shift(timedelta(seconds=31))
        services.run_due_jobs()
        db.session.refresh(job)
        assert job.attempts == 2
        clock.shift(timedelta(seconds=61))
        run_once()
        db.session.refresh(job)
        db.session.refresh(incident)
        assert job.status == JobStatus.DONE
        assert incident.resolved_at is not None
        assert open_task(instance.id).element_id == "Task_clore"


def test_handler_out_of_retries_waits_for_an_admin_who_retries_by_hand(app, admin):
    flaky["failures_left"] = 99
    start = utcnow()
    with app.app_context(), time_machine.travel(start, tick=False) as clock:
        deploy_fixtures("camunda_service.bpmn")
        user = find_user_by_email(admin)
        instance = services.start_instance("accuse_reception", {}, user)
        services.complete_task(open_task(instance.id).id, {}, user)
        for _ in range(services.MAX_JOB_ATTEMPTS):
            clock.shift(timedelta(hours=1))
            services.run_due_jobs()
        job = db.session.query(EngineJob).filter_by(handler="test_flaky_send").one()
        assert job.status == JobStatus.FAILED
        assert job.attempts == services.MAX_JOB_ATTEMPTS
        flaky["failures_left"] = 0
        incident = services.list_incidents()[0]
        services.retry_incident(incident.id, user)
        assert incident.resolved_at is not None
        assert open_task(instance.id).element_id == "Task_clore"
