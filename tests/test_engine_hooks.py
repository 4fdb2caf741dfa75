"""Engine extension points used by the parapheur: completion hooks, candidate rules,
Camunda multi-instance variables, ids reserved by SpiffWorkflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.auth.services import find_user_by_email
from app.core.errors import Conflict, ValidationFailed
from app.core.extensions import db
from app.engine import handlers, permissions
from app.engine import services as engine

FORMS = Path(__file__).parent / "fixtures" / "forms"
HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions '
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">'
)
TWO_STEPS = (
    HEADER
    + """
  <bpmn:process id="deux_etapes" isExecutable="true">
    <bpmn:startEvent id="debut"/>
    <bpmn:userTask id="rediger" camunda:formKey="redaction" camunda:candidateUsers="${redacteur}"/>
    <bpmn:userTask id="relire" camunda:assignee="${relecteur}"/>
    <bpmn:endEvent id="fin"/>
    <bpmn:sequenceFlow id="f1" sourceRef="debut" targetRef="rediger"/>
    <bpmn:sequenceFlow id="f2" sourceRef="rediger" targetRef="relire"/>
    <bpmn:sequenceFlow id="f3" sourceRef="relire" targetRef="fin"/>
  </bpmn:process>
</bpmn:definitions>"""
)
PARALLEL = (
    HEADER
    + """
  <bpmn:process id="avis_paralleles" isExecutable="true">
    <bpmn:startEvent id="debut"/>
    <bpmn:userTask id="avis" camunda:formKey="visa" camunda:assignee="${personne}">
      <bpmn:multiInstanceLoopCharacteristics camunda:collection="personnes"
          camunda:elementVariable="personne">
        <bpmn:completionCondition>${decision == 'reject'}</bpmn:completionCondition>
      </bpmn:multiInstanceLoopCharacteristics>
    </bpmn:userTask>
    <bpmn:exclusiveGateway id="bilan" default="f_ok"/>
    <bpmn:userTask id="accepte"/>
    <bpmn:userTask id="refuse"/>
    <bpmn:endEvent id="fin1"/>
    <bpmn:endEvent id="fin2"/>
    <bpmn:sequenceFlow id="f1" sourceRef="debut" targetRef="avis"/>
    <bpmn:sequenceFlow id="f2" sourceRef="avis" targetRef="bilan"/>
    <bpmn:sequenceFlow id="f_ok" sourceRef="bilan" targetRef="accepte"/>
    <bpmn:sequenceFlow id="f_ko" sourceRef="bilan" targetRef="refuse">
      <bpmn:conditionExpression>${decision == 'reject'}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f3" sourceRef="accepte" targetRef="fin1"/>
    <bpmn:sequenceFlow id="f4" sourceRef="refuse" targetRef="fin2"/>
  </bpmn:process>
</bpmn:definitions>"""
)


@pytest.fixture
def engine_app(app):
    app.config["MISSIVE_FORMS_DIRS"] = str(FORMS)
    yield app
    app.config["MISSIVE_FORMS_DIRS"] = ""


def _open(instance):
    return [t for t in engine.instance_tasks(instance) if t.status == "open"]


def test_a_completion_hook_can_refuse_and_nothing_moves(engine_app, make_user, monkeypatch):
    writer, reader = make_user(), make_user()

    def refuse(task, data, actor):
        raise ValidationFailed(
            "Refusé par le domaine.", errors=[{"field": "subject", "message": "Non."}]
        )

    monkeypatch.setitem(handlers._completion_hooks, "redaction", [refuse])
    with engine_app.app_context():
        engine.deploy([("deux.bpmn", TWO_STEPS.encode())], actor=None)
        instance = engine.start_instance(
            "deux_etapes", {"redacteur": writer, "relecteur": reader}, None
        )
        state = instance.state
        [task] = _open(instance)
        with pytest.raises(ValidationFailed, match="Refusé par le domaine"):
            engine.complete_task(task.id, {"subject": "Bonjour"}, find_user_by_email(writer))
        db.session.refresh(task)
        db.session.refresh(instance)
        assert task.status == "open" and task.assignee_id is None
        assert instance.state == state


def test_a_completion_hook_adds_variables_to_the_case(engine_app, make_user, monkeypatch):
    writer, reader = make_user(), make_user()
    seen = []

    def enrich(task, data, actor):
        seen.append((task.element_id, data["subject"], actor.email))
        return {"document_ids": [7, 8]}

    monkeypatch.setitem(handlers._completion_hooks, "redaction", [enrich])
    with engine_app.app_context():
        engine.deploy([("deux.bpmn", TWO_STEPS.encode())], actor=None)
        instance = engine.start_instance(
            "deux_etapes", {"redacteur": writer, "relecteur": reader}, None
        )
        engine.complete_task(
            _open(instance)[0].id, {"subject": "Bonjour"}, find_user_by_email(writer)
        )
        [review] = _open(instance)
        assert engine.task_data(review)["document_ids"] == [7, 8]
    assert seen == [("rediger", "Bonjour", writer)]


def test_a_candidate_rule_lets_someone_else_complete(engine_app, make_user, monkeypatch):
    writer, reader, deputy = make_user(), make_user(), make_user()
    monkeypatch.setattr(permissions, "_candidate_rules", [lambda user, task: user.email == deputy])
    with engine_app.app_context():
        engine.deploy([("deux.bpmn", TWO_STEPS.encode())], actor=None)
        instance = engine.start_instance(
            "deux_etapes", {"redacteur": writer, "relecteur": reader}, None
        )
        [task] = _open(instance)
        engine.complete_task(task.id, {"subject": "Par le suppléant"}, find_user_by_email(deputy))
        db.session.refresh(task)
        assert task.completed_by.email == deputy
    monkeypatch.setattr(permissions, "_candidate_rules", [])
    with engine_app.app_context():
        instance = engine.start_instance(
            "deux_etapes", {"redacteur": writer, "relecteur": reader}, None
        )
        from app.core.errors import PermissionDenied

        with pytest.raises(PermissionDenied):
            engine.complete_task(
                _open(instance)[0].id, {"subject": "Non"}, find_user_by_email(deputy)
            )


def test_what_one_parallel_instance_decides_reaches_the_gateway_after_the_loop(
    engine_app, make_user
):
    people = [make_user() for _ in range(3)]
    with engine_app.app_context():
        engine.deploy([("avis.bpmn", PARALLEL.encode())], actor=None)
        instance = engine.start_instance("avis_paralleles", {"personnes": people}, None)
        tasks = _open(instance)
        assert sorted(t.assignee.email for t in tasks) == sorted(people)
        engine.complete_task(
            tasks[0].id, {"decision": "approve"}, find_user_by_email(tasks[0].assignee.email)
        )
        engine.complete_task(
            tasks[1].id,
            {"decision": "reject", "comment": "Non."},
            find_user_by_email(tasks[1].assignee.email),
        )
        [next_task] = _open(instance)
        assert next_task.element_id == "refuse"
        assert engine.task_data(next_task)["comment"] == "Non."
        statuses = sorted(
            t.status.value for t in engine.instance_tasks(instance) if t.element_id == "avis"
        )
        assert statuses == ["cancelled", "completed", "completed"]


def test_all_parallel_approvals_lead_to_the_default_path(engine_app, make_user):
    people = [make_user() for _ in range(2)]
    with engine_app.app_context():
        engine.deploy([("avis.bpmn", PARALLEL.encode())], actor=None)
        instance = engine.start_instance("avis_paralleles", {"personnes": people}, None)
        for task in _open(instance):
            engine.complete_task(
                task.id, {"decision": "approve"}, find_user_by_email(task.assignee.email)
            )
        assert [t.element_id for t in _open(instance)] == ["accepte"]


@pytest.mark.parametrize("reserved", ["Start", "End"])
def test_ids_reserved_by_the_engine_still_deploy_and_run(engine_app, reserved):
    source = (
        TWO_STEPS.replace('id="debut"', f'id="{reserved}"').replace(
            'sourceRef="debut"', f'sourceRef="{reserved}"'
        )
        if reserved == "Start"
        else TWO_STEPS.replace('id="fin"', 'id="End"').replace('targetRef="fin"', 'targetRef="End"')
    )
    with engine_app.app_context():
        deployed = engine.deploy([("reserve.bpmn", source.encode())], actor=None)
        assert deployed[0].created


def test_completing_a_finished_task_stays_a_conflict(engine_app, make_user):
    writer, reader = make_user(), make_user()
    with engine_app.app_context():
        engine.deploy([("deux.bpmn", TWO_STEPS.encode())], actor=None)
        instance = engine.start_instance(
            "deux_etapes", {"redacteur": writer, "relecteur": reader}, None
        )
        [task] = _open(instance)
        engine.complete_task(task.id, {"subject": "Une fois"}, find_user_by_email(writer))
        with pytest.raises(Conflict):
            engine.complete_task(task.id, {"subject": "Deux fois"}, find_user_by_email(writer))


DMN_EMPTY_CELLS = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d"
    namespace="http://camunda.org/schema/1.0/dmn">
  <decision id="orientation" name="Orientation">
    <decisionTable id="t" hitPolicy="FIRST">
      <input id="i1">
        <inputExpression id="e1" typeRef="string"><text>kind</text></inputExpression>
      </input>
      <input id="i2">
        <inputExpression id="e2" typeRef="double"><text>amount</text></inputExpression>
      </input>
      <output id="o1" name="service" typeRef="string"/>
      <rule id="r1"><inputEntry id="a1"><text>"facture"</text></inputEntry>
        <inputEntry id="a2"><text>&gt; 1000</text></inputEntry>
        <outputEntry id="b1"><text>"finances"</text></outputEntry></rule>
      <rule id="r2"><inputEntry id="a3"><text>-</text></inputEntry>
        <inputEntry id="a4"><text></text></inputEntry>
        <outputEntry id="b2"><text>"courrier"</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>"""
ORIENT = (
    HEADER
    + """
  <bpmn:process id="orienter" isExecutable="true">
    <bpmn:startEvent id="debut"/>
    <bpmn:businessRuleTask id="regle" camunda:decisionRef="orientation"/>
    <bpmn:userTask id="traiter" camunda:candidateGroups="${service}"/>
    <bpmn:endEvent id="fin"/>
    <bpmn:sequenceFlow id="f1" sourceRef="debut" targetRef="regle"/>
    <bpmn:sequenceFlow id="f2" sourceRef="regle" targetRef="traiter"/>
    <bpmn:sequenceFlow id="f3" sourceRef="traiter" targetRef="fin"/>
  </bpmn:process>
</bpmn:definitions>"""
)


@pytest.mark.parametrize(
    ("kind", "amount", "service"),
    [("facture", 5000, "finances"), ("facture", 10, "courrier"), ("courrier", 0, "courrier")],
)
def test_empty_dmn_cells_match_any_value(engine_app, kind, amount, service):
    with engine_app.app_context():
        engine.deploy(
            [("o.dmn", DMN_EMPTY_CELLS.encode()), ("o.bpmn", ORIENT.encode())], actor=None
        )
        instance = engine.start_instance("orienter", {"kind": kind, "amount": amount}, None)
        [task] = _open(instance)
        assert task.candidate_groups == [service]


def test_instance_completion_listeners_run_in_the_completing_transaction(
    engine_app, make_user, monkeypatch
):
    writer, reader = make_user(), make_user()
    seen = []

    def listener(instance):
        seen.append((instance.id, instance.status.value))
        audit_record("test.instance_done", object_type="process_instance", object_id=instance.id)

    from app.core.audit import events_for
    from app.core.audit import record as audit_record

    monkeypatch.setattr(handlers, "_completion_listeners", [listener])
    with engine_app.app_context():
        engine.deploy([("deux.bpmn", TWO_STEPS.encode())], actor=None)
        instance = engine.start_instance(
            "deux_etapes", {"redacteur": writer, "relecteur": reader}, None
        )
        engine.complete_task(
            _open(instance)[0].id, {"subject": "Texte"}, find_user_by_email(writer)
        )
        assert seen == []
        engine.complete_task(_open(instance)[0].id, {}, find_user_by_email(reader))
        assert seen == [(instance.id, "completed")]
        # newest first: the completion is on the trail before what the instance's end did
        assert [e.action for e in events_for("process_instance", instance.id)][:2] == [
            "test.instance_done",
            "task.complete",
        ]
