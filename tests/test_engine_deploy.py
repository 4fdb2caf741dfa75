"""Deploying BPMN/DMN: versions, validation errors, the CLI and the API."""

from __future__ import annotations

import io
import json

import pytest

from app.auth.services import find_user_by_email
from app.core.errors import Conflict, ValidationFailed
from app.core.extensions import db
from app.engine import services
from app.engine.models import ProcessVersion
from tests.engine_helpers import deploy_fixtures, fixture_bytes, open_task

APPROVAL = "camunda_approval.bpmn"


def _refusal(files: list[tuple[str, bytes]]) -> list[dict]:
    with pytest.raises(ValidationFailed) as refused:
        services.deploy(files, None)
    return refused.value.errors


def _process(body: str, process_id: str = "p", extra_ns: str = "") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" {extra_ns} id="d" targetNamespace="x">
  <bpmn:process id="{process_id}" isExecutable="true">{body}</bpmn:process>
</bpmn:definitions>""".encode()


LINEAR = (
    '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t"/>'
    '<bpmn:userTask id="t" name="Faire" {attrs}/>'
    '<bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e"/><bpmn:endEvent id="e"/>'
)


def test_identical_content_reuses_the_version(app):
    with app.app_context():
        first = deploy_fixtures(APPROVAL)[0]
        again = deploy_fixtures(APPROVAL)[0]
    assert (first.version, first.created) == (1, True)
    assert (again.version, again.id, again.created) == (1, first.id, False)


def test_layout_whitespace_and_attribute_order_do_not_make_a_new_version(app):
    reformatted = (
        fixture_bytes(APPROVAL)
        .replace(b"  <", b"\n\t<")
        .replace(b'name="Viser" camunda:formKey="visa"', b'camunda:formKey="visa"   name="Viser"')
    )
    with app.app_context():
        deploy_fixtures(APPROVAL)
        again = services.deploy([(APPROVAL, reformatted)], None)[0]
    assert (again.version, again.created) == (1, False)


def test_changed_content_creates_the_next_version_and_keeps_the_version_tag(app):
    changed = fixture_bytes(APPROVAL).replace(b'name="Viser"', b'name="Viser le projet"')
    with app.app_context():
        deploy_fixtures(APPROVAL)
        second = services.deploy([(APPROVAL, changed)], None)[0]
        version = db.session.get(ProcessVersion, second.id)
        assert (second.version, second.created) == (2, True)
        assert version.version_tag == "1.0"


def test_instances_stay_on_their_version_and_start_uses_the_latest(app, make_user):
    make_user(role="admin", email="admin@example.test")
    changed = fixture_bytes(APPROVAL).replace(b'name="Viser"', b'name="Viser (v2)"')
    with app.app_context():
        admin = find_user_by_email("admin@example.test")
        deploy_fixtures(APPROVAL)
        old = services.start_instance("approbation_simple", {"subject": "Ancien"}, admin)
        services.deploy([(APPROVAL, changed)], None)
        new = services.start_instance("approbation_simple", {"subject": "Nouveau"}, admin)
        pinned = services.start_instance(
            "approbation_simple", {"subject": "Épinglé"}, admin, version=1
        )
        assert (old.version.version, new.version.version, pinned.version.version) == (1, 2, 1)
        for instance in (old, new):
            services.complete_task(
                open_task(instance.id).id, {"subject": "Rédigé", "signataire": admin.email}, admin
            )
        assert open_task(old.id).name == "Viser"
        assert open_task(new.id).name == "Viser (v2)"


def test_deactivated_definition_refuses_new_instances_but_running_ones_go_on(app, make_user):
    make_user(role="admin", email="admin@example.test")
    with app.app_context():
        admin = find_user_by_email("admin@example.test")
        deploy_fixtures(APPROVAL)
        running = services.start_instance("approbation_simple", {"subject": "En cours"}, admin)
        services.set_definition_active("approbation_simple", False, admin)
        with pytest.raises(Conflict):
            services.start_instance("approbation_simple", {"subject": "Refusé"}, admin)
        services.complete_task(
            open_task(running.id).id, {"subject": "Suite", "signataire": admin.email}, admin
        )
        assert open_task(running.id).element_id == "Task_visa"


def test_several_processes_in_one_file_become_several_definitions(app):
    with app.app_context():
        results = deploy_fixtures("multi_process.bpmn")
    assert sorted(r.key for r in results) == ["fiche_poste", "note_interne"]


def test_decision_deployed_alone_is_found_by_a_later_diagram(app):
    with app.app_context():
        decisions = deploy_fixtures("invoice_routing.dmn")
        assert {d.kind for d in decisions} == {"decision"}
        process = deploy_fixtures("camunda_dmn.bpmn")
    assert process[0].key == "circuit_facture"


def test_called_process_deployed_earlier_is_pinned_at_its_version(app):
    with app.app_context():
        deploy_fixtures("call_child.bpmn")
        parent = deploy_fixtures("call_parent.bpmn")[0]
        version = services.latest_version("courrier_avec_visa")
    assert parent.key == "courrier_avec_visa"
    assert version.called_versions == {"sous_circuit_visa": 1}


@pytest.mark.parametrize(
    ("body", "element_id", "message"),
    [
        ('<bpmn:userTask id="t"/>', "p", "n'a pas d'événement de début"),
        (LINEAR.format(attrs='camunda:formKey="inexistant"'), "t", "Formulaire inconnu"),
        (
            LINEAR.format(attrs="camunda:assignee=\"${execution.getVariable('x')}\""),
            "t",
            "non prise en charge",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="st"/>'
            '<bpmn:serviceTask id="st" camunda:type="external" camunda:topic="nulle_part"/>',
            "st",
            "Gestionnaire de tâche de service inconnu « nulle_part »",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="sc"/>'
            '<bpmn:scriptTask id="sc"><bpmn:script>import os</bpmn:script></bpmn:scriptTask>',
            "sc",
            "import",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="br"/>'
            '<bpmn:businessRuleTask id="br" name="Règle"/>',
            "br",
            "camunda:decisionRef",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="g"/>'
            '<bpmn:exclusiveGateway id="g"/>'
            '<bpmn:sequenceFlow id="a" sourceRef="g" targetRef="e"><bpmn:conditionExpression>'
            "ok</bpmn:conditionExpression></bpmn:sequenceFlow>"
            '<bpmn:sequenceFlow id="b" name="sinon" sourceRef="g" targetRef="e"/>'
            '<bpmn:endEvent id="e"/>',
            "b",
            "n'a ni condition ni statut de flux par défaut",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="g"/>'
            '<bpmn:exclusiveGateway id="g"/>'
            '<bpmn:sequenceFlow id="a" sourceRef="g" targetRef="e"><bpmn:conditionExpression>'
            '${a.equals("x")}</bpmn:conditionExpression></bpmn:sequenceFlow>'
            '<bpmn:sequenceFlow id="b" sourceRef="g" targetRef="e"><bpmn:conditionExpression>'
            'not ok</bpmn:conditionExpression></bpmn:sequenceFlow><bpmn:endEvent id="e"/>',
            "a",
            "non prise en charge",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="c"/>'
            '<bpmn:callActivity id="c" calledElement="absent"/>',
            "c",
            "Processus appelé inconnu",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="w"/>'
            '<bpmn:intermediateCatchEvent id="w"><bpmn:timerEventDefinition/>'
            "</bpmn:intermediateCatchEvent>",
            "w",
            "n'a pas d'expression",
        ),
        (
            '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="sp"/>'
            '<bpmn:subProcess id="sp" name="Sous-étape"><bpmn:task id="in"/></bpmn:subProcess>',
            "sp",
            "exactement un événement de début",
        ),
    ],
)
def test_invalid_diagram_is_refused_with_a_french_message_naming_the_element(
    app, body, element_id, message
):
    with app.app_context():
        errors = _refusal([("essai.bpmn", _process(body))])
    assert any(e["element_id"] == element_id and message in e["message"] for e in errors), errors
    assert all(e["file"] == "essai.bpmn" for e in errors)


def test_unparseable_xml_is_refused(app):
    with app.app_context():
        errors = _refusal([("casse.bpmn", b"<bpmn:definitions><oops")])
    assert errors[0]["message"].startswith("XML illisible")
    assert errors[0]["element_id"] is None


def test_wrong_encoding_is_refused(app):
    latin1 = _process(LINEAR.format(attrs='name="Réponse"')).replace(
        "Réponse".encode(), "Réponse".encode("latin-1")
    )
    with app.app_context():
        errors = _refusal([("latin1.bpmn", latin1)])
    assert "Encodage incorrect" in errors[0]["message"]


def test_entity_expansion_attack_is_refused(app):
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><bpmn:definitions '
        b'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol2;</bpmn:definitions>'
    )
    with app.app_context():
        errors = _refusal([("bombe.bpmn", bomb)])
    assert "DOCTYPE" in errors[0]["message"]


def test_file_that_is_not_bpmn_is_refused(app):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>'
    with app.app_context():
        errors = _refusal([("dessin.svg", svg)])
    assert "ni un diagramme BPMN 2.0 ni une table DMN" in errors[0]["message"]


def test_duplicate_process_id_in_one_upload_is_refused(app):
    file = _process(LINEAR.format(attrs=""), process_id="double")
    with app.app_context():
        errors = _refusal([("a.bpmn", file), ("b.bpmn", file)])
    assert any(e["element_id"] == "double" and "deux fois" in e["message"] for e in errors)


def test_internal_parser_failure_becomes_a_structured_error(app):
    # A dataInputAssociation pointing nowhere makes SpiffWorkflow's parser fail inside.
    body = (
        '<bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f" sourceRef="s" targetRef="t"/>'
        '<bpmn:task id="t"><bpmn:dataInputAssociation id="dia"><bpmn:sourceRef>nowhere'
        "</bpmn:sourceRef></bpmn:dataInputAssociation></bpmn:task>"
        '<bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e"/><bpmn:endEvent id="e"/>'
    )
    with app.app_context():
        errors = _refusal([("interne.bpmn", _process(body))])
    assert errors[0]["message"].startswith(
        ("Diagramme refusé par le moteur", "Le moteur n'a pas pu lire")
    )
    assert errors[0]["file"] == "interne.bpmn"


def test_element_named_like_an_engine_internal_still_runs(app, make_user):
    make_user(role="admin", email="admin@example.test")
    body = (
        '<bpmn:startEvent id="Start"/><bpmn:sequenceFlow id="f1" sourceRef="Start" '
        'targetRef="t"/><bpmn:userTask id="t" name="Faire"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="End"/><bpmn:endEvent id="End"/>'
    )
    with app.app_context():
        services.deploy([("reserve.bpmn", _process(body))], None)
        instance = services.start_instance("p", {}, find_user_by_email("admin@example.test"))
        assert open_task(instance.id).element_id == "t"


# --- API and CLI --------------------------------------------------------------------------


def _upload(client, headers, *files):
    data = {"file": [(io.BytesIO(content), name) for name, content in files]}
    return client.post(
        "/api/v1/process-definitions",
        headers=headers,
        data=data,
        content_type="multipart/form-data",
    )


def test_api_deploy_answers_201_then_200_then_422(client, make_user, api_token):
    headers = api_token(make_user(role="analyst"))
    created = _upload(client, headers, (APPROVAL, fixture_bytes(APPROVAL)))
    assert created.status_code == 201
    assert created.get_json()["items"][0]["created"] is True
    same = _upload(client, headers, (APPROVAL, fixture_bytes(APPROVAL)))
    assert same.status_code == 200
    assert same.get_json()["items"][0]["version"] == 1
    bad = _upload(client, headers, ("miwg.bpmn", fixture_bytes("miwg_unsupported.bpmn")))
    assert bad.status_code == 422
    assert bad.mimetype == "application/problem+json"
    assert {"file", "element_id", "message"} <= set(bad.get_json()["errors"][0])


def test_api_deploy_without_file_is_422_and_by_an_agent_is_403(client, make_user, api_token):
    analyst = api_token(make_user(role="analyst"))
    assert (
        client.post(
            "/api/v1/process-definitions",
            headers=analyst,
            data={},
            content_type="multipart/form-data",
        ).status_code
        == 422
    )
    agent = api_token(make_user(role="agent"))
    assert _upload(client, agent, (APPROVAL, fixture_bytes(APPROVAL))).status_code == 403


def test_api_lists_definitions_and_versions(client, make_user, api_token):
    headers = api_token(make_user(role="analyst"))
    _upload(client, headers, (APPROVAL, fixture_bytes(APPROVAL)))
    body = client.get(
        "/api/v1/process-definitions?key=approbation_simple", headers=headers
    ).get_json()
    assert body["items"][0]["latest_version"] == 1
    assert body["items"][0]["versions"][0]["version_tag"] == "1.0"


def test_cli_deploy_prints_one_json_object_per_process(app, tmp_path):
    path = tmp_path / APPROVAL
    path.write_bytes(fixture_bytes(APPROVAL))
    runner = app.test_cli_runner()
    first = runner.invoke(args=["process", "deploy", str(path)])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output) == {
        "key": "approbation_simple",
        "version": 1,
        "id": json.loads(first.output)["id"],
        "created": True,
    }
    again = json.loads(runner.invoke(args=["process", "deploy", str(path)]).output)
    assert again["created"] is False
    listed = json.loads(runner.invoke(args=["process", "list"]).output)
    assert listed[0]["key"] == "approbation_simple"


def test_cli_deploy_of_an_invalid_file_exits_1_with_errors(app, tmp_path):
    path = tmp_path / "miwg.bpmn"
    path.write_bytes(fixture_bytes("miwg_unsupported.bpmn"))
    result = app.test_cli_runner().invoke(args=["process", "deploy", str(path)])
    assert result.exit_code == 1
    errors = json.loads(result.output)["errors"]
    assert {"file", "element_id", "message"} <= set(errors[0])
