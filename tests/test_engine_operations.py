"""Running cases seen from the studio: waiting per task, instance path, safe migration."""

from __future__ import annotations

import pytest

from app.auth.services import create_group, find_user_by_email
from app.core.audit import AuditEvent
from app.core.errors import PermissionDenied
from app.core.extensions import db
from app.engine import operations
from app.engine import services as engine
from app.engine.models import HumanTask, InstanceStatus, TaskStatus
from tests.studio_helpers import deploy_circuit, linear_circuit

THREE_STEPS = [
    ("Task_redaction", "Rédiger", {"camunda:candidateGroups": "courrier"}),
    ("Task_visa", "Viser", {"camunda:candidateGroups": "dgs", "camunda:formKey": "visa"}),
    ("Task_sign", "Signer", {"camunda:candidateGroups": "dgs", "camunda:formKey": "signature"}),
]


@pytest.fixture
def admin(app, make_user):
    with app.app_context():
        for name in ("redaction", "dgs", "courrier"):
            create_group(name=name, label=name.capitalize())
    return make_user(role="admin", groups=["redaction", "dgs", "courrier"])


def open_tasks(instance_id):
    return list(
        db.session.execute(
            db.select(HumanTask).where(
                HumanTask.instance_id == instance_id, HumanTask.status == TaskStatus.OPEN
            )
        ).scalars()
    )


def complete_first(instance_id, actor, data=None):
    (task,) = open_tasks(instance_id)
    engine.complete_task(task.id, data or {}, actor)


def test_waiting_by_element_counts_open_tasks_and_finished_ones(app, admin):
    with app.app_context():
        actor = find_user_by_email(admin)
        deploy_circuit(linear_circuit())
        first = engine.start_instance("courrier_test", {}, actor)
        engine.start_instance("courrier_test", {}, actor)
        complete_first(first.id, actor)
        loads = operations.waiting_by_element("courrier_test")
        assert loads["Task_redaction"].waiting == 1
        assert loads["Task_redaction"].completed == 1
        assert loads["Task_redaction"].mean_duration_seconds >= 0
        assert loads["Task_visa"].waiting == 1
        assert loads["Task_visa"].mean_wait_seconds >= 0
        assert operations.waiting_by_element("courrier_test", version=2) == {}


def test_instance_path_has_done_steps_current_step_and_flows(app, admin):
    with app.app_context():
        actor = find_user_by_email(admin)
        deploy_circuit(linear_circuit())
        instance = engine.start_instance("courrier_test", {}, actor)
        complete_first(instance.id, actor)
        path = operations.instance_path(instance)
        assert path.completed == {"StartEvent_1": 1, "Task_redaction": 1}
        assert path.active == ["Task_visa"]
        assert ("Task_redaction", "Task_visa") in path.flows


def test_instance_counts_per_version_and_status(app, admin):
    with app.app_context():
        actor = find_user_by_email(admin)
        deploy_circuit(linear_circuit())
        first = engine.start_instance("courrier_test", {}, actor)
        engine.start_instance("courrier_test", {}, actor)
        engine.terminate_instance(first.id, actor, "doublon")
        assert operations.instance_counts("courrier_test") == {1: {"running": 1, "terminated": 1}}


def test_migration_of_an_instance_waiting_at_a_changed_step_is_safe(app, admin):
    with app.app_context():
        actor = find_user_by_email(admin)
        deploy_circuit(linear_circuit())
        instance = engine.start_instance("courrier_test", {}, actor)
        deploy_circuit(linear_circuit(tasks=THREE_STEPS))

        dry = operations.migrate_instance(instance.id, 2, actor, dry_run=True)
        assert dry.status == "possible" and dry.reasons == []
        assert dry.reset_elements == ["Task_redaction"]
        db.session.expire_all()
        assert engine.get_instance(instance.id).version.version == 1
        assert open_tasks(instance.id)[0].candidate_groups == ["redaction"]

        report = operations.migrate_instance(instance.id, 2, actor)
        assert report.status == "migrated"
        db.session.expire_all()
        assert engine.get_instance(instance.id).version.version == 2
        (task,) = open_tasks(instance.id)
        assert task.candidate_groups == ["courrier"]  # the inbox row follows the new version
        engine.complete_task(task.id, {}, actor)
        complete_first(instance.id, actor, {"decision": "approve"})  # visa
        (sign,) = open_tasks(instance.id)
        assert sign.element_id == "Task_sign"  # the step added by version 2 is reached
        audit = db.session.execute(
            db.select(AuditEvent).where(AuditEvent.action == "instance.migrate")
        ).scalar_one()
        assert audit.data["from_version"] == 1 and audit.data["to_version"] == 2


def test_migration_is_refused_when_a_completed_step_changed(app, admin):
    with app.app_context():
        actor = find_user_by_email(admin)
        deploy_circuit(linear_circuit())
        instance = engine.start_instance("courrier_test", {}, actor)
        complete_first(instance.id, actor)  # Task_redaction done with group "redaction"
        deploy_circuit(linear_circuit(tasks=THREE_STEPS))  # ...which version 2 changes
        for dry_run in (True, False):
            report = operations.migrate_instance(instance.id, 2, actor, dry_run=dry_run)
            assert report.status == "refused"
            assert "Task_redaction" in report.reasons[0] and "déjà terminée" in report.reasons[0]
        db.session.expire_all()
        assert engine.get_instance(instance.id).version.version == 1


def test_migration_is_refused_when_the_current_step_is_removed(app, admin):
    with app.app_context():
        actor = find_user_by_email(admin)
        deploy_circuit(linear_circuit())
        instance = engine.start_instance("courrier_test", {}, actor)
        complete_first(instance.id, actor)  # now waiting at Task_visa
        deploy_circuit(
            linear_circuit(
                tasks=[
                    ("Task_redaction", "Rédiger", {"camunda:candidateGroups": "redaction"}),
                ]
            )
        )
        report = operations.migrate_instance(instance.id, 2, actor, dry_run=True)
        assert report.status == "refused"
        assert any("Task_visa" in r and "supprimée" in r for r in report.reasons), report


def test_a_waiting_step_replaced_at_the_same_place_is_reported(app, admin):
    with app.app_context():
        actor = find_user_by_email(admin)
        deploy_circuit(linear_circuit())
        instance = engine.start_instance("courrier_test", {}, actor)
        complete_first(instance.id, actor)  # now waiting at Task_visa
        deploy_circuit(
            linear_circuit(
                tasks=[
                    ("Task_redaction", "Rédiger", {"camunda:candidateGroups": "redaction"}),
                    ("Task_other", "Autre", {"camunda:candidateGroups": "dgs"}),
                ]
            )
        )
        report = operations.migrate_instance(instance.id, 2, actor)
        assert report.status == "migrated"
        assert report.replaced == [("Task_visa", "Task_other")]
        assert [t.element_id for t in open_tasks(instance.id)] == ["Task_other"]


def test_migration_refuses_finished_instances_and_older_targets(app, admin):
    with app.app_context():
        actor = find_user_by_email(admin)
        deploy_circuit(linear_circuit())
        deploy_circuit(linear_circuit(tasks=THREE_STEPS))
        instance = engine.start_instance("courrier_test", {}, actor)  # on version 2
        assert operations.migrate_instance(instance.id, 1, actor).status == "refused"
        engine.terminate_instance(instance.id, actor, "test")
        report = operations.migrate_instance(instance.id, 2, actor)
        assert report.status == "refused" and "terminée" in report.reasons[0]


def test_batch_migration_reports_each_instance_and_writes_one_audit_entry(app, admin):
    with app.app_context():
        actor = find_user_by_email(admin)
        deploy_circuit(linear_circuit())
        waiting = engine.start_instance("courrier_test", {}, actor)
        advanced = engine.start_instance("courrier_test", {}, actor)
        complete_first(advanced.id, actor)
        deploy_circuit(linear_circuit(tasks=THREE_STEPS))
        dry = operations.migrate_instances("courrier_test", 2, actor, dry_run=True)
        assert {r.instance_id: r.status for r in dry} == {
            waiting.id: "possible",
            advanced.id: "refused",
        }
        assert not db.session.execute(
            db.select(AuditEvent).where(AuditEvent.action == "process.migrate_batch")
        ).first()
        reports = operations.migrate_instances("courrier_test", 2, actor)
        assert {r.instance_id: r.status for r in reports} == {
            waiting.id: "migrated",
            advanced.id: "refused",
        }
        batch = db.session.execute(
            db.select(AuditEvent).where(AuditEvent.action == "process.migrate_batch")
        ).scalar_one()
        assert batch.data["migrated"] == [waiting.id] and batch.data["refused"] == [advanced.id]
        assert [i.id for i in operations.migration_candidates("courrier_test", 2)] == [advanced.id]


def test_suspended_instances_migrate_and_stay_suspended(app, admin):
    with app.app_context():
        actor = find_user_by_email(admin)
        deploy_circuit(linear_circuit())
        instance = engine.start_instance("courrier_test", {}, actor)
        engine.suspend_instance(instance.id, actor)
        deploy_circuit(linear_circuit(tasks=THREE_STEPS))
        assert operations.migrate_instance(instance.id, 2, actor).status == "migrated"
        db.session.expire_all()
        assert engine.get_instance(instance.id).status == InstanceStatus.SUSPENDED


def test_only_admins_migrate(app, admin, make_user):
    analyst = make_user(role="analyst")
    with app.app_context():
        deploy_circuit(linear_circuit())
        instance = engine.start_instance("courrier_test", {}, find_user_by_email(admin))
        deploy_circuit(linear_circuit(tasks=THREE_STEPS))
        with pytest.raises(PermissionDenied):
            operations.migrate_instance(instance.id, 2, find_user_by_email(analyst))
        with pytest.raises(PermissionDenied):
            operations.migrate_instances("courrier_test", 2, find_user_by_email(analyst))
