"""Running instances: human tasks, claims, forms, permissions, administration, audit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.auth.services import create_group, find_user_by_email
from app.core.db import utcnow
from app.core.errors import Conflict, PayloadTooLarge, PermissionDenied, ValidationFailed
from app.core.extensions import db
from app.engine import services
from app.engine.models import InstanceStatus, ProcessInstance
from tests.engine_helpers import deploy_fixtures, open_task

SUBJECT = {"subject": "Demande de subvention du club"}


@pytest.fixture
def people(app, make_user):
    with app.app_context():
        for name in ("redaction", "dgs", "courrier-central", "chefs"):
            create_group(name=name, label=name.capitalize())
    return {
        "redacteur": make_user(groups=["redaction"], email="redacteur@example.test"),
        "collegue": make_user(groups=["redaction"], email="collegue@example.test"),
        "dgs": make_user(groups=["dgs"], email="dgs@example.test"),
        "signataire": make_user(email="signataire@example.test"),
        "autre": make_user(email="autre@example.test"),
        "admin": make_user(role="admin", email="admin@example.test"),
    }


def _user(email):
    return find_user_by_email(email)


def _start(people, data=None):
    deploy_fixtures("camunda_approval.bpmn")
    return services.start_instance(
        "approbation_simple",
        data or dict(SUBJECT),
        _user(people["redacteur"]),
        business_key="2026-A-000001",
    )


def test_user_task_is_materialised_with_its_camunda_attributes(app, people):
    with app.app_context():
        instance = _start(people)
        task = open_task(instance.id)
        assert task.candidate_groups == ["redaction"]
        assert task.priority == 60
        assert task.form_key == "redaction"
        assert task.title == "Rédiger : Demande de subvention du club"
        assert task.documentation == "Rédiger la réponse à Demande de subvention du club"
        assert timedelta(days=4, hours=23) < task.due_at - utcnow() <= timedelta(days=5)
        assert "subvention" in task.search_text
        state = db.session.get(ProcessInstance, instance.id).state
        assert '"spec"' not in state and '"subprocess_specs"' not in state


def test_assignee_expression_puts_the_task_in_the_chosen_signers_hands(app, people):
    with app.app_context():
        instance = _start(people)
        redacteur, dgs = _user(people["redacteur"]), _user(people["dgs"])
        services.complete_task(
            open_task(instance.id).id,
            {"subject": "Réponse", "signataire": people["signataire"]},
            redacteur,
        )
        services.complete_task(open_task(instance.id).id, {"decision": "approve"}, dgs)
        signature = open_task(instance.id)
        assert signature.element_id == "Task_signature"
        assert signature.assignee.email == people["signataire"]


def test_rejected_visa_goes_back_to_the_drafter(app, people):
    with app.app_context():
        instance = _start(people)
        services.complete_task(
            open_task(instance.id).id,
            {"subject": "Réponse", "signataire": people["signataire"]},
            _user(people["redacteur"]),
        )
        services.complete_task(
            open_task(instance.id).id,
            {"decision": "reject", "comment": "Montant à corriger"},
            _user(people["dgs"]),
        )
        assert open_task(instance.id).element_id == "Task_redaction"


def test_form_errors_are_french_and_per_field(app, people):
    with app.app_context():
        instance = _start(people)
        with pytest.raises(ValidationFailed) as invalid:
            services.complete_task(
                open_task(instance.id).id,
                {"subject": "x", "signataire": "pas-un-courriel", "inconnu": 1},
                _user(people["redacteur"]),
            )
    fields = {e["field"]: e["message"] for e in invalid.value.errors}
    assert fields["subject"] == "Au moins 3 caractères."
    assert "adresse électronique" in fields["signataire"]
    assert fields["inconnu"] == "Champ non prévu."


def test_visa_rejection_requires_a_reason(app, people):
    with app.app_context():
        instance = _start(people)
        services.complete_task(
            open_task(instance.id).id,
            {"subject": "Réponse", "signataire": people["signataire"]},
            _user(people["redacteur"]),
        )
        with pytest.raises(ValidationFailed) as invalid:
            services.complete_task(
                open_task(instance.id).id, {"decision": "reject"}, _user(people["dgs"])
            )
    assert invalid.value.errors == [{"field": "comment", "message": "Ce champ est obligatoire."}]


def test_task_data_is_for_ids_not_documents(app, people):
    with app.app_context():
        instance = _start(people)
        with pytest.raises(PayloadTooLarge):
            services.complete_task(
                open_task(instance.id).id, {"subject": "x" * 200_000}, _user(people["redacteur"])
            )


def test_claim_by_second_agent_is_refused(app, people):
    with app.app_context():
        task_id = open_task(_start(people).id).id
        services.claim_task(task_id, _user(people["redacteur"]))
        with pytest.raises(Conflict):
            services.claim_task(task_id, _user(people["collegue"]))
        with pytest.raises(Conflict):
            services.complete_task(
                task_id, {"subject": "Par le collègue"}, _user(people["collegue"])
            )


def test_non_candidate_may_neither_claim_nor_complete(app, people):
    with app.app_context():
        task_id = open_task(_start(people).id).id
        for action in (
            lambda u: services.claim_task(task_id, u),
            lambda u: services.complete_task(task_id, {"subject": "Intrus"}, u),
        ):
            with pytest.raises(PermissionDenied):
                action(_user(people["autre"]))


def test_unclaim_gives_the_task_back_to_the_basket(app, people):
    with app.app_context():
        task_id = open_task(_start(people).id).id
        services.claim_task(task_id, _user(people["redacteur"]))
        services.unclaim_task(task_id, _user(people["redacteur"]))
        claimed = services.claim_task(task_id, _user(people["collegue"]))
        assert claimed.assignee.email == people["collegue"]


def test_completed_task_cannot_be_completed_twice(app, people):
    with app.app_context():
        task_id = open_task(_start(people).id).id
        services.complete_task(task_id, {"subject": "Réponse"}, _user(people["redacteur"]))
        with pytest.raises(Conflict):
            services.complete_task(task_id, {"subject": "Encore"}, _user(people["redacteur"]))


def test_lane_name_is_the_fallback_candidate_group(app, people):
    with app.app_context():
        create_group(name="courrier-entrant", label="Courrier central")
        deploy_fixtures("sartography_style.bpmn")
        instance = services.start_instance(
            "Process_commande", {"lines": []}, _user(people["admin"])
        )
        task = open_task(instance.id)
        assert task.lane == "Courrier central"
        assert task.candidate_groups == ["courrier-entrant"]


def test_candidate_users_from_an_expression(app, people):
    with app.app_context():
        deploy_fixtures("multi_process.bpmn")
        instance = services.start_instance(
            "note_interne", {"destinataire": people["autre"]}, _user(people["admin"])
        )
        task = open_task(instance.id)
        services.claim_task(task.id, _user(people["autre"]))
        with pytest.raises(PermissionDenied):
            services.get_task(task.id, _user(people["collegue"]), "claim")


def test_script_task_runs_in_the_sandbox_and_sets_case_data(app, people):
    with app.app_context():
        deploy_fixtures("sartography_style.bpmn")
        instance = services.start_instance(
            "Process_commande", {"lines": [{"price": 600, "quantity": 2}]}, _user(people["admin"])
        )
        services.complete_task(open_task(instance.id).id, {}, _user(people["admin"]))
        data = services.task_data(open_task(instance.id, "Activity_engagement"))
    assert data["total"] == 1200
    assert data["circuit"] == "renforce"


def test_parallel_branches_join_before_the_end(app, people):
    with app.app_context():
        deploy_fixtures("sartography_style.bpmn")
        admin = _user(people["admin"])
        instance = services.start_instance("Process_commande", {"lines": []}, admin)
        services.complete_task(open_task(instance.id).id, {}, admin)
        budget = open_task(instance.id, "Activity_budget")
        services.complete_task(budget.id, {}, admin)
        assert db.session.get(ProcessInstance, instance.id).status == InstanceStatus.RUNNING
        services.complete_task(open_task(instance.id, "Activity_engagement").id, {}, admin)
        assert db.session.get(ProcessInstance, instance.id).status == InstanceStatus.COMPLETED


def test_suspended_instance_refuses_work_until_resumed(app, people):
    with app.app_context():
        instance = _start(people)
        admin, redacteur = _user(people["admin"]), _user(people["redacteur"])
        with pytest.raises(PermissionDenied):
            services.suspend_instance(instance.id, redacteur)
        services.suspend_instance(instance.id, admin)
        with pytest.raises(Conflict):
            services.complete_task(open_task(instance.id).id, {"subject": "Réponse"}, redacteur)
        services.resume_instance(instance.id, admin)
        services.complete_task(open_task(instance.id).id, {"subject": "Réponse"}, redacteur)


def test_terminated_instance_cancels_its_tasks(app, people):
    with app.app_context():
        instance = _start(people)
        task = open_task(instance.id)
        services.terminate_instance(instance.id, _user(people["admin"]), "Doublon")
        db.session.refresh(task)
        assert str(task.status) == "cancelled"
        assert db.session.get(ProcessInstance, instance.id).status == InstanceStatus.TERMINATED


def test_every_step_is_audited_with_user_and_version(app, people):
    with app.app_context():
        instance = _start(people)
        task_id = open_task(instance.id).id
        services.claim_task(task_id, _user(people["redacteur"]))
        services.complete_task(task_id, {"subject": "Réponse"}, _user(people["redacteur"]))
        history = services.instance_history(db.session.get(ProcessInstance, instance.id))
        assert [e.action for e in history] == ["instance.start", "task.complete"]
        assert history[1].actor_id == _user(people["redacteur"]).id
        assert history[1].data["version"] == 1
        from app.core.audit import events_for

        assert [e.action for e in events_for("human_task", task_id)] == ["task.claim"]
        assert {e.action for e in events_for("process_version", 1)} == {"process.deploy"}


def test_list_instances_by_definition_and_version(app, people):
    with app.app_context():
        first = _start(people)
        services.start_instance("approbation_simple", dict(SUBJECT), _user(people["redacteur"]))
        listed = services.list_instances("approbation_simple", version=1, status="running")
        assert len(listed) == 2 and first.id in {i.id for i in listed}


# --- through the API ---------------------------------------------------------------------


def test_api_start_then_claim_then_complete(client, app, people, api_token):
    with app.app_context():
        deploy_fixtures("camunda_approval.bpmn")
    redacteur = api_token(people["redacteur"])
    started = client.post(
        "/api/v1/process-instances",
        headers=redacteur,
        json={"process_key": "approbation_simple", "data": SUBJECT},
    )
    assert started.status_code == 201
    body = started.get_json()
    assert (body["process_key"], body["version"], body["status"]) == (
        "approbation_simple",
        1,
        "running",
    )
    tasks = client.get("/api/v1/tasks?scope=candidate", headers=redacteur).get_json()["items"]
    task_id = tasks[0]["id"]
    detail = client.get(f"/api/v1/tasks/{task_id}", headers=redacteur).get_json()
    assert detail["form"]["title"] == "Rédaction"
    assert detail["data"]["subject"] == SUBJECT["subject"]
    assert client.post(f"/api/v1/tasks/{task_id}/claim", headers=redacteur).status_code == 200
    other = client.post(f"/api/v1/tasks/{task_id}/claim", headers=api_token(people["collegue"]))
    assert other.status_code == 409
    invalid = client.post(
        f"/api/v1/tasks/{task_id}/complete", headers=redacteur, json={"data": {"subject": "x"}}
    )
    assert invalid.status_code == 422
    assert invalid.get_json()["errors"] == [
        {"field": "subject", "message": "Au moins 3 caractères."}
    ]
    done = client.post(
        f"/api/v1/tasks/{task_id}/complete",
        headers=redacteur,
        json={"data": {"subject": "Réponse"}},
    )
    assert done.status_code == 200
    instance = client.get(f"/api/v1/process-instances/{body['id']}", headers=redacteur)
    assert instance.status_code == 200
    assert instance.get_json()["current_tasks"][0]["element_id"] == "Task_visa"
    assert [h["action"] for h in instance.get_json()["history"]] == [
        "instance.start",
        "task.complete",
    ]


def test_api_hides_instances_and_tasks_from_outsiders(client, app, people, api_token):
    with app.app_context():
        instance = _start(people)
        task_id = open_task(instance.id).id
    outsider = api_token(people["autre"])
    assert (
        client.get(f"/api/v1/process-instances/{instance.id}", headers=outsider).status_code == 403
    )
    assert client.get(f"/api/v1/tasks/{task_id}", headers=outsider).status_code == 403
    assert (
        client.post(
            f"/api/v1/tasks/{task_id}/complete", headers=outsider, json={"data": {}}
        ).status_code
        == 403
    )
    assert client.get("/api/v1/process-instances/999999", headers=outsider).status_code == 404


def test_api_admin_suspends_and_terminates(client, app, people, api_token):
    with app.app_context():
        instance = _start(people)
    admin = api_token(people["admin"])
    assert (
        client.post(
            f"/api/v1/process-instances/{instance.id}/suspend",
            headers=api_token(people["redacteur"]),
            json={},
        ).status_code
        == 403
    )
    suspended = client.post(
        f"/api/v1/process-instances/{instance.id}/suspend", headers=admin, json={}
    )
    assert suspended.get_json()["status"] == "suspended"
    terminated = client.post(
        f"/api/v1/process-instances/{instance.id}/terminate",
        headers=admin,
        json={"reason": "Doublon"},
    )
    assert terminated.get_json()["status"] == "terminated"
    listed = client.get("/api/v1/process-instances?status=terminated", headers=admin)
    assert [i["id"] for i in listed.get_json()["items"]] == [instance.id]


def test_api_start_of_an_unknown_or_inactive_process(client, app, people, api_token):
    headers = api_token(people["admin"])
    assert (
        client.post(
            "/api/v1/process-instances", headers=headers, json={"process_key": "inconnu"}
        ).status_code
        == 404
    )
    with app.app_context():
        deploy_fixtures("camunda_approval.bpmn")
    assert (
        client.patch(
            "/api/v1/process-definitions/approbation_simple",
            headers=headers,
            json={"active": False},
        ).status_code
        == 200
    )
    refused = client.post(
        "/api/v1/process-instances", headers=headers, json={"process_key": "approbation_simple"}
    )
    assert refused.status_code == 409
