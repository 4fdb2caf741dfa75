"""Concurrent completions and failures in the middle of a run."""

from __future__ import annotations

import threading

import pytest

from app.auth.services import create_group, find_user_by_email
from app.core.audit import AuditEvent
from app.core.errors import Conflict
from app.core.extensions import db
from app.engine import services
from app.engine.models import HumanTask, Incident, ProcessInstance, TaskStatus
from tests.engine_helpers import deploy_fixtures, open_task

FAILING_SCRIPT = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d"
  targetNamespace="x"><bpmn:process id="calcul" isExecutable="true">
  <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t"/>
  <bpmn:userTask id="t" name="Saisir"/><bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="sc"/>
  <bpmn:scriptTask id="sc" name="Calculer le ratio"><bpmn:script>ratio = total / parts
</bpmn:script></bpmn:scriptTask>
  <bpmn:sequenceFlow id="f3" sourceRef="sc" targetRef="t2"/>
  <bpmn:userTask id="t2" name="Relire"/><bpmn:sequenceFlow id="f4" sourceRef="t2" targetRef="e"/>
  <bpmn:endEvent id="e"/></bpmn:process></bpmn:definitions>"""


@pytest.fixture
def two_agents(app, make_user):
    with app.app_context():
        create_group(name="redaction", label="Rédaction")
    return (
        make_user(groups=["redaction"], email="un@example.test"),
        make_user(groups=["redaction"], email="deux@example.test"),
    )


def test_two_agents_completing_the_same_task_at_once_exactly_one_wins(app, two_agents):
    with app.app_context():
        deploy_fixtures("camunda_approval.bpmn")
        instance = services.start_instance(
            "approbation_simple", {"subject": "Concurrence"}, find_user_by_email(two_agents[0])
        )
        task_id, instance_id = open_task(instance.id).id, instance.id
        lock_version = instance.lock_version
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict[str, str] = {}

    def complete(email: str) -> None:
        with app.app_context():
            user = find_user_by_email(email)
            db.session.commit()  # end the read transaction (SQLite holds its lock until then)
            barrier.wait(timeout=30)
            try:
                services.complete_task(task_id, {"subject": f"Par {email}"}, user)
                outcomes[email] = "ok"
            except Conflict:
                outcomes[email] = "409"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=complete, args=(email,)) for email in two_agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes.values()) == ["409", "ok"]
    with app.app_context():
        task = db.session.get(HumanTask, task_id)
        winner = next(e for e, o in outcomes.items() if o == "ok")
        assert task.status == TaskStatus.COMPLETED
        assert task.completed_by.email == winner
        completions = db.session.query(AuditEvent).filter_by(action="task.complete").count()
        assert completions == 1
        assert db.session.get(ProcessInstance, instance_id).lock_version == lock_version + 1
        assert open_task(instance_id).element_id == "Task_visa"


def test_two_api_calls_completing_the_same_task_give_200_and_409(
    app, client, two_agents, api_token
):
    with app.app_context():
        deploy_fixtures("camunda_approval.bpmn")
        instance = services.start_instance(
            "approbation_simple", {"subject": "Concurrence"}, find_user_by_email(two_agents[0])
        )
        task_id = open_task(instance.id).id
    headers = [api_token(email) for email in two_agents]
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def call(header: dict) -> None:
        local = app.test_client()
        barrier.wait(timeout=30)
        statuses.append(
            local.post(
                f"/api/v1/tasks/{task_id}/complete",
                headers=header,
                json={"data": {"subject": "Réponse"}},
            ).status_code
        )

    threads = [threading.Thread(target=call, args=(h,)) for h in headers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200, 409]


def test_failure_in_the_middle_of_a_run_keeps_the_last_state_and_records_an_incident(
    app, make_user
):
    admin = make_user(role="admin")  # the task has no candidates: only admins may act
    with app.app_context():
        services.deploy([("calcul.bpmn", FAILING_SCRIPT)], None)
        user = find_user_by_email(admin)
        instance = services.start_instance("calcul", {"total": 10, "parts": 0}, user)
        before = db.session.get(ProcessInstance, instance.id).state
        task_id = open_task(instance.id).id
        with pytest.raises(services.EngineFailure) as failure:
            services.complete_task(task_id, {}, user)
        assert "Calculer le ratio" in failure.value.detail
        db.session.expire_all()
        assert db.session.get(ProcessInstance, instance.id).state == before
        assert db.session.get(HumanTask, task_id).status == TaskStatus.OPEN
        incident = db.session.query(Incident).one()
        assert (incident.element_id, incident.kind) == ("sc", "script")
        assert "division by zero" in incident.message


def test_api_reports_a_circuit_failure_as_problem_json(app, client, make_user, api_token):
    admin = make_user(role="admin")
    with app.app_context():
        services.deploy([("calcul.bpmn", FAILING_SCRIPT)], None)
        instance = services.start_instance(
            "calcul", {"total": 1, "parts": 0}, find_user_by_email(admin)
        )
        task_id = open_task(instance.id).id
    response = client.post(
        f"/api/v1/tasks/{task_id}/complete", headers=api_token(admin), json={"data": {}}
    )
    assert response.status_code == 500
    body = response.get_json()
    assert body["type"].endswith("process-incident")
    assert body["element_id"] == "sc"
    assert "Traceback" not in response.get_data(as_text=True)
