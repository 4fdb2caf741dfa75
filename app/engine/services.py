"""Business actions of the workflow engine: deploy, start, claim, complete, messages, timers.

Each public function is one transaction (it commits). Actions on an instance go through
``_unit_of_work``: the row is locked, the workflow restored, the action run, the state
saved once with its derived rows, the audit written, then committed. Service tasks
created by the action then run, each in its own transaction.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm.attributes import set_committed_value

from app.auth.models import User
from app.auth.services import refresh_with_groups
from app.core import audit
from app.core.db import utcnow
from app.core.errors import Conflict, MissiveError, NotFound, PayloadTooLarge, ValidationFailed
from app.core.extensions import db
from app.core.permissions import require
from app.core.validation import Draft202012Validator, schema_errors
from app.engine import runtime
from app.engine.compiler import Library, compile_files
from app.engine.forms import FORMS_DIR, FormRegistry
from app.engine.handlers import completion_hooks, instance_terminated_listeners
from app.engine.models import (
    DecisionVersion,
    EngineJob,
    EngineTimer,
    HumanTask,
    Incident,
    InstanceStatus,
    JobStatus,
    MessageSubscription,
    ProcessDefinition,
    ProcessInstance,
    ProcessVersion,
    TaskCandidate,
    TaskStatus,
)
from app.engine.permissions import principals
from app.engine.spiff import BpmnEvent, SpiffWorkflowException, TaskState, new_workflow

log = logging.getLogger(__name__)

MAX_TASK_DATA_BYTES = 128 * 1024
MAX_JOB_ATTEMPTS = 5
EAGER_JOB_LIMIT = 20


class EngineFailure(MissiveError):
    """The circuit itself failed (script, expression, handler); an incident was recorded."""

    status = 500
    kind = "process-incident"


def form_registry() -> FormRegistry:
    """The form directories: ``forms/``, MISSIVE_FORMS_DIRS, then forms imported with circuits."""
    extra = [d for d in (current_app.config.get("MISSIVE_FORMS_DIRS") or "").split(os.pathsep) if d]
    return FormRegistry(FORMS_DIR, *extra, imported_forms_dir())


def imported_forms_dir() -> Path:
    """Where forms that arrive with imported circuit packages are kept (shared storage)."""
    configured = current_app.config.get("MISSIVE_FORMS_IMPORT_DIR")
    return Path(configured or Path(current_app.config["MISSIVE_STORAGE"]) / "forms")


# --- deployment ----------------------------------------------------------------------


@dataclass
class Deployed:
    kind: str
    key: str
    version: int
    id: int
    created: bool

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "version": self.version,
            "id": self.id,
            "created": self.created,
            "kind": self.kind,
        }


def _library() -> Library:
    library = Library()
    latest = (
        select(ProcessVersion.definition_id, func.max(ProcessVersion.version).label("v"))
        .group_by(ProcessVersion.definition_id)
        .subquery()
    )
    rows = db.session.execute(
        select(ProcessVersion).join(
            latest,
            (ProcessVersion.definition_id == latest.c.definition_id)
            & (ProcessVersion.version == latest.c.v),
        )
    ).scalars()
    for version in rows:
        library.process_sources[version.definition.key] = (version.filename, version.source)
    latest_decisions = (
        select(DecisionVersion.key, func.max(DecisionVersion.version).label("v"))
        .group_by(DecisionVersion.key)
        .subquery()
    )
    for decision in db.session.execute(
        select(DecisionVersion).join(
            latest_decisions,
            (DecisionVersion.key == latest_decisions.c.key)
            & (DecisionVersion.version == latest_decisions.c.v),
        )
    ).scalars():
        library.decision_sources[decision.key] = (decision.filename, decision.source)
    return library


def latest_version(key: str) -> ProcessVersion | None:
    """The newest version of a process key, or None."""
    return db.session.execute(
        select(ProcessVersion)
        .join(ProcessDefinition)
        .where(ProcessDefinition.key == key)
        .order_by(ProcessVersion.version.desc())
        .limit(1)
    ).scalar_one_or_none()


def check_files(
    files: list[tuple[str, bytes]], extra_forms_dir: Path | None = None
) -> tuple[list[dict], list[dict]]:
    """Validate BPMN/DMN files exactly as deploy would, without deploying: (errors, warnings).

    ``extra_forms_dir`` adds forms that are not installed yet (a package being imported).
    """
    registry = form_registry()
    if extra_forms_dir is not None:
        registry = FormRegistry(*registry.directories, extra_forms_dir)
    compilation = compile_files(files, registry, _library())
    return (
        [p.as_dict() for p in compilation.problems],
        [w.as_dict() for w in compilation.warnings],
    )


def deploy(files: list[tuple[str, bytes]], actor: User | None) -> list[Deployed]:
    """Deploy BPMN/DMN files: unchanged content reuses its version, changed content is N+1.

    Raises ValidationFailed with ``errors`` of ``{"file", "element_id", "message"}``.
    """
    if actor is not None:
        require(actor, "deploy", "process")
    if not files:
        raise ValidationFailed(
            "Aucun fichier envoyé.",
            errors=[{"field": "file", "message": "Ce champ est obligatoire."}],
        )
    compilation = compile_files(files, form_registry(), _library())
    if compilation.problems:
        raise ValidationFailed(
            "Le déploiement est refusé : corrigez les éléments signalés.",
            errors=[p.as_dict() for p in compilation.problems],
        )
    results: list[Deployed] = []
    for decision in compilation.decisions:
        previous = db.session.execute(
            select(DecisionVersion)
            .where(DecisionVersion.key == decision.key)
            .order_by(DecisionVersion.version.desc())
            .limit(1)
        ).scalar_one_or_none()
        if previous is not None and previous.content_hash == decision.content_hash:
            results.append(Deployed("decision", decision.key, previous.version, previous.id, False))
            continue
        row = DecisionVersion(
            key=decision.key,
            name=decision.name,
            version=(previous.version + 1) if previous else 1,
            content_hash=decision.content_hash,
            filename=decision.filename,
            source=decision.source,
            deployed_by_id=getattr(actor, "id", None),
        )
        db.session.add(row)
        db.session.flush()
        audit.record(
            "decision.deploy",
            actor=actor,
            object_type="decision",
            object_id=row.id,
            data={"key": row.key, "version": row.version},
        )
        results.append(Deployed("decision", row.key, row.version, row.id, True))

    pending = {p.key: p for p in compilation.processes}
    ordered = []
    while pending:  # called processes first, so their pinned versions exist
        ready = [
            p for p in pending.values() if not (set(p.called_keys) & set(pending) - {p.key})
        ] or list(pending.values())
        for process in ready:
            ordered.append(pending.pop(process.key))
    for process in ordered:
        definition = db.session.execute(
            select(ProcessDefinition).where(ProcessDefinition.key == process.key)
        ).scalar_one_or_none()
        if definition is None:
            definition = ProcessDefinition(key=process.key, name=process.name)
            db.session.add(definition)
            db.session.flush()
        previous = latest_version(process.key)
        if previous is not None and previous.content_hash == process.content_hash:
            results.append(Deployed("process", process.key, previous.version, previous.id, False))
            continue
        called = {}
        for key in process.called_keys:
            called_version = latest_version(key)
            called[key] = called_version.version if called_version else None
        version = ProcessVersion(
            definition=definition,
            version=(previous.version + 1) if previous else 1,
            version_tag=process.version_tag,
            name=process.name,
            content_hash=process.content_hash,
            filename=process.filename,
            source=process.source,
            spec=process.spec_json,
            forms=process.forms,
            called_versions=called,
            decision_keys=process.decision_keys,
            starters=process.starters,
            start_form_key=process.start_form_key,
            initiator_variable=process.initiator_variable,
            deployed_by_id=getattr(actor, "id", None),
        )
        definition.name = process.name
        db.session.add(version)
        db.session.flush()
        audit.record(
            "process.deploy",
            actor=actor,
            object_type="process_version",
            object_id=version.id,
            data={
                "key": process.key,
                "version": version.version,
                "version_tag": process.version_tag,
                "file": process.filename,
            },
        )
        results.append(Deployed("process", process.key, version.version, version.id, True))
    db.session.commit()
    return results


def set_definition_active(key: str, active: bool, actor: User) -> ProcessDefinition:
    """Deactivate a definition (no new instances; running ones go on) or reactivate it."""
    require(actor, "manage", "process")
    definition = get_definition(key)
    if definition.active != active:
        definition.active = active
        audit.record(
            "process.activate" if active else "process.deactivate",
            actor=actor,
            object_type="process_definition",
            object_id=definition.id,
            data={"key": key},
        )
    db.session.commit()
    return definition


def get_definition(key: str) -> ProcessDefinition:
    """A definition by key, or NotFound."""
    definition = db.session.execute(
        select(ProcessDefinition).where(ProcessDefinition.key == key)
    ).scalar_one_or_none()
    if definition is None:
        raise NotFound(f"Processus inconnu : {key}")
    return definition


def list_definitions(key: str | None = None) -> list[ProcessDefinition]:
    """Definitions (with their versions), optionally one key."""
    stmt = select(ProcessDefinition).order_by(ProcessDefinition.key)
    if key:
        stmt = stmt.where(ProcessDefinition.key == key)
    return list(db.session.execute(stmt).scalars())


# --- data checks -----------------------------------------------------------------------


def _check_data(data: Any, form: Draft202012Validator | None, detail: str) -> dict:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationFailed(
            detail, errors=[{"field": "data", "message": "Un objet JSON est attendu."}]
        )
    size = len(json.dumps(data, default=str))
    if size > MAX_TASK_DATA_BYTES:
        raise PayloadTooLarge(
            "Les données d'une tâche contiennent des identifiants, pas des documents : "
            f"{size} octets reçus, {MAX_TASK_DATA_BYTES} au plus."
        )
    if form is not None:
        errors = schema_errors(data, form)
        if errors:
            raise ValidationFailed(detail, errors=errors)
    return data


# --- units of work ---------------------------------------------------------------------


def _failure_message(exc: Exception) -> tuple[str | None, str]:
    task = getattr(exc, "task", None)
    element = getattr(getattr(task, "task_spec", None), "bpmn_id", None)
    name = getattr(getattr(task, "task_spec", None), "bpmn_name", None) or element
    cause = exc.__cause__ or getattr(exc, "exception", None) or exc
    text = str(cause) if str(cause) else type(cause).__name__
    where = f" à l'étape « {name} » ({element})" if element else ""
    return element, f"Le circuit a échoué{where} : {text}"


def _record_incident(
    instance_id: int,
    kind: str,
    element_id: str | None,
    message: str,
    actor: User | None,
    job_id: int | None = None,
) -> Incident:
    incident = Incident(
        instance_id=instance_id,
        kind=kind,
        element_id=element_id,
        message=message[:4000],
        job_id=job_id,
    )
    db.session.add(incident)
    db.session.flush()
    audit.record(
        "incident.open",
        actor=actor,
        object_type="process_instance",
        object_id=instance_id,
        data={
            "incident": incident.id,
            "kind": kind,
            "element_id": element_id,
            "message": message[:500],
        },
    )
    return incident


def _unit_of_work(
    instance: ProcessInstance,
    actor: User | None,
    action: Callable[[Any], Any],
    audit_action: str,
    audit_data: dict,
    incident_kind: str = "script",
) -> runtime.SaveReport:
    """Run ``action(workflow)`` on a locked instance and save; failures become incidents."""
    workflow = runtime.restore(instance)
    try:
        with runtime.running(instance):
            action(workflow)
    except (SpiffWorkflowException, runtime.sandbox.SandboxError) as exc:
        instance_id = instance.id
        db.session.rollback()
        element_id, message = _failure_message(exc)
        log.warning("instance %s: %s", instance_id, message)
        incident = _record_incident(instance_id, incident_kind, element_id, message, actor)
        db.session.commit()
        raise EngineFailure(
            message + f" (incident n° {incident.id} enregistré ; rien n'a été modifié)",
            element_id=element_id,
        ) from exc
    entry = audit.entry(
        audit_action,
        actor=actor,
        object_type="process_instance",
        object_id=instance.id,
        data={"key": instance.process_key, "version": instance.version.version, **audit_data},
    )
    return runtime.save(instance, workflow, actor, entry)


def _after_commit(report: runtime.SaveReport) -> None:
    """Run the service tasks an action made ready, each in its own transaction, then the
    work its transaction queued with ``after_commit``."""
    _run_jobs(report.new_jobs)
    runtime.run_after_commit()


def _run_jobs(job_ids: list[int]) -> None:
    queue = list(job_ids)
    runs = 0
    while queue and runs < EAGER_JOB_LIMIT:
        job_id = queue.pop(0)
        runs += 1
        queue.extend(run_job(job_id))


def after_commit(callback: Callable[[], Any]) -> None:
    """Run ``callback()`` once the current transaction has committed (see runtime)."""
    runtime.after_commit(callback)


# --- instances -------------------------------------------------------------------------


def start_instance(
    process_key: str,
    data: dict | None,
    actor: User | None,
    *,
    version: int | None = None,
    business_key: str | None = None,
    title: str | None = None,
    commit: bool = True,
) -> ProcessInstance:
    """Start a case on the latest active version (or the one asked for).

    With ``commit=False`` the instance is started in the caller's transaction (e.g. a
    completion hook putting a reply into a parapheur): nothing is committed, and its
    first service tasks run once the caller's action has committed.
    """
    definition = get_definition(process_key)
    if not definition.active:
        raise Conflict(
            f"Le processus « {process_key} » est désactivé : aucune nouvelle "
            "instance ne peut démarrer."
        )
    stmt = select(ProcessVersion).where(ProcessVersion.definition_id == definition.id)
    if version is not None:
        target = db.session.execute(
            stmt.where(ProcessVersion.version == version)
        ).scalar_one_or_none()
        if target is None:
            raise NotFound(f"Version {version} inconnue pour « {process_key} ».")
    else:
        target = db.session.execute(
            stmt.order_by(ProcessVersion.version.desc()).limit(1)
        ).scalar_one()
    if actor is not None:
        require(refresh_with_groups(actor), "start", "process", target)
    start_form = runtime.form_validator(target, target.start_form_key)
    data = dict(_check_data(data, start_form, "Les données de démarrage ne sont pas valides."))
    if actor is not None:
        data.setdefault("initiator", actor.email)
        if target.initiator_variable:
            data[target.initiator_variable] = actor.email
    spec, subprocess_specs = runtime.version_specs(target)
    workflow = new_workflow(spec, subprocess_specs, runtime.SCRIPT_ENGINE)
    instance = ProcessInstance(
        version=target,
        process_key=process_key,
        status=InstanceStatus.RUNNING,
        business_key=business_key,
        title=title or data.get("title") or business_key,
        state="",
        initiator_id=getattr(actor, "id", None),
    )
    db.session.add(instance)
    db.session.flush()
    for task in workflow.get_tasks(state=TaskState.READY):
        task.data.update(data)
    try:
        with runtime.running(instance):
            workflow.do_engine_steps()
    except (SpiffWorkflowException, runtime.sandbox.SandboxError) as exc:
        db.session.rollback()
        _element, message = _failure_message(exc)
        raise EngineFailure(message + " (l'instance n'a pas été créée)") from exc
    report = runtime.save(instance, workflow, actor)
    audit.record(
        "instance.start",
        actor=actor,
        object_type="process_instance",
        object_id=instance.id,
        data={"key": process_key, "version": target.version, "business_key": business_key},
    )
    if not commit:
        if report.new_jobs:
            runtime.after_commit(lambda jobs=tuple(report.new_jobs): _run_jobs(list(jobs)))
        return instance
    db.session.commit()
    _after_commit(report)
    db.session.refresh(instance)
    return instance


def get_instance(instance_id: int, actor: User | None = None) -> ProcessInstance:
    """An instance the actor may see."""
    instance = db.session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound("Instance de processus introuvable.")
    if actor is not None:
        require(actor, "view", "instance", instance)
    return instance


def instance_tasks(instance: ProcessInstance) -> list[HumanTask]:
    """Every human task of an instance, oldest first."""
    return list(
        db.session.execute(
            select(HumanTask).where(HumanTask.instance_id == instance.id).order_by(HumanTask.id)
        ).scalars()
    )


def instance_history(instance: ProcessInstance) -> list[audit.AuditEvent]:
    """The audit events of an instance, oldest first."""
    return list(reversed(audit.events_for("process_instance", instance.id, limit=500)))


def list_instances(
    process_key: str | None = None,
    version: int | None = None,
    status: str | None = None,
    limit: int = 200,
) -> list[ProcessInstance]:
    """Instances by definition, version and status (newest first)."""
    stmt = select(ProcessInstance).order_by(ProcessInstance.id.desc()).limit(limit)
    if process_key:
        stmt = stmt.where(ProcessInstance.process_key == process_key)
    if version is not None:
        stmt = stmt.join(ProcessVersion).where(ProcessVersion.version == version)
    if status:
        stmt = stmt.where(ProcessInstance.status == InstanceStatus(status))
    return list(db.session.execute(stmt).scalars())


def _admin_action(instance_id: int, actor: User, action: str) -> ProcessInstance:
    instance = runtime.lock_instance(instance_id)
    require(actor, action, "instance", instance)
    return instance


def suspend_instance(instance_id: int, actor: User) -> ProcessInstance:
    """Pause an instance: no task can be completed, no timer fires, until resumed."""
    instance = _admin_action(instance_id, actor, "suspend")
    if instance.status != InstanceStatus.RUNNING:
        raise Conflict("Seule une instance en cours peut être suspendue.")
    instance.status = InstanceStatus.SUSPENDED
    audit.record(
        "instance.suspend", actor=actor, object_type="process_instance", object_id=instance.id
    )
    db.session.commit()
    return instance


def resume_instance(instance_id: int, actor: User) -> ProcessInstance:
    """Resume a suspended instance."""
    instance = _admin_action(instance_id, actor, "resume")
    if instance.status != InstanceStatus.SUSPENDED:
        raise Conflict("Cette instance n'est pas suspendue.")
    instance.status = InstanceStatus.RUNNING
    audit.record(
        "instance.resume", actor=actor, object_type="process_instance", object_id=instance.id
    )
    db.session.commit()
    return instance


def terminate_instance(instance_id: int, actor: User, reason: str = "") -> ProcessInstance:
    """Stop an instance for good: its open tasks are cancelled, its timers dropped."""
    instance = _admin_action(instance_id, actor, "terminate")
    if instance.status in (InstanceStatus.COMPLETED, InstanceStatus.TERMINATED):
        raise Conflict("Cette instance est déjà terminée.")
    workflow = runtime.restore(instance)
    workflow.cancel()
    instance.status = InstanceStatus.TERMINATED
    instance.ended_at = utcnow()
    runtime.save(instance, workflow, actor)
    for listener in instance_terminated_listeners():
        listener(instance, actor, reason)
    audit.record(
        "instance.terminate",
        actor=actor,
        object_type="process_instance",
        object_id=instance.id,
        data={"reason": reason},
    )
    db.session.commit()
    runtime.run_after_commit()
    return instance


# --- human tasks -----------------------------------------------------------------------


def get_task(task_id: int, actor: User | None = None, action: str = "view") -> HumanTask:
    """A human task the actor may see (or act on)."""
    task = db.session.get(HumanTask, task_id)
    if task is None:
        raise NotFound("Tâche introuvable.")
    if actor is not None:
        _require_task(actor, action, task)
    return task


def _require_task(actor: User, action: str, task: HumanTask) -> None:
    refresh_with_groups(actor)
    if action != "view" and task.status != TaskStatus.OPEN:
        raise Conflict("Cette tâche est déjà terminée.")
    if action == "complete" and task.delegation_state == "pending":
        helper = task.assignee.name if task.assignee else "le délégataire"
        raise Conflict(
            f"Cette tâche est déléguée à {helper} : elle doit d'abord être rendue à "
            "son propriétaire."
        )
    if (
        action != "view"
        and task.assignee_id is not None
        and task.assignee_id not in principals(actor)
        and not actor.is_admin
    ):
        from app.engine.permissions import is_candidate

        if is_candidate(actor, task):
            holder = task.assignee.name if task.assignee else "un autre agent"
            raise Conflict(f"Cette tâche est prise par {holder}.")
    require(actor, action, "task", task)


def set_assignee(task: HumanTask, user_id: int | None) -> None:
    """Give the task to a user (or back to its baskets) in the caller's transaction."""
    task.assignee_id = user_id
    task.claimed_at = utcnow() if user_id is not None else None
    db.session.execute(
        TaskCandidate.__table__.update()
        .where(TaskCandidate.task_id == task.id)
        .values(unclaimed=user_id is None)
    )


def task_form(task: HumanTask) -> dict | None:
    """The JSON Schema of the task's form, at the instance's version."""
    if not task.form_key:
        return None
    return task.instance.version.forms.get(task.form_key)


def task_data(task: HumanTask) -> dict:
    """The case data visible at this task (restores the one workflow involved)."""
    workflow = runtime.restore(task.instance)
    spiff = runtime.find_task(workflow, task.spiff_task_id)
    return dict(spiff.data) if spiff is not None else {}


def claim_task(task_id: int, actor: User) -> HumanTask:
    """Take a task; another agent already holding it gets 409."""
    task = get_task(task_id, actor, "claim")
    updated = db.session.execute(
        HumanTask.__table__.update()
        .where(
            HumanTask.id == task_id,
            HumanTask.status == TaskStatus.OPEN,
            (HumanTask.assignee_id.is_(None)) | (HumanTask.assignee_id == actor.id),
        )
        .values(assignee_id=actor.id, claimed_at=utcnow())
    )
    if updated.rowcount != 1:
        db.session.rollback()
        raise Conflict("Cette tâche vient d'être prise par un autre agent.")
    db.session.execute(
        TaskCandidate.__table__.update()
        .where(TaskCandidate.task_id == task_id)
        .values(unclaimed=False)
    )
    audit.record(
        "task.claim",
        actor=actor,
        object_type="human_task",
        object_id=task_id,
        data={"instance": task.instance_id},
    )
    db.session.commit()
    db.session.refresh(task)
    return task


def unclaim_task(task_id: int, actor: User) -> HumanTask:
    """Give a task back to its group basket."""
    task = get_task(task_id, actor, "unclaim")
    if task.assignee_id is None:
        raise Conflict("Cette tâche n'est prise par personne.")
    if task.assignee_id not in principals(actor) and not actor.is_admin:
        raise Conflict("Cette tâche est prise par un autre agent.")
    if task.delegation_state == "pending":
        raise Conflict("Une tâche déléguée ne peut pas être rendue à sa corbeille.")
    set_assignee(task, None)
    task.owner_id, task.delegation_state = None, None
    audit.record(
        "task.unclaim",
        actor=actor,
        object_type="human_task",
        object_id=task_id,
        data={"instance": task.instance_id},
    )
    db.session.commit()
    return task


def assign_task(task_id: int, assignee: User, actor: User, reason: str = "") -> HumanTask:
    """Give a task to a colleague (reassignment), with a reason kept in the audit."""
    task = get_task(task_id, actor, "assign")
    if not assignee.active:
        raise ValidationFailed(
            "Ce compte est désactivé.",
            errors=[{"field": "assignee", "message": "Compte désactivé."}],
        )
    previous = task.assignee_id
    set_assignee(task, assignee.id)
    task.owner_id, task.delegation_state = None, None
    audit.record(
        "task.assign",
        actor=actor,
        object_type="human_task",
        object_id=task_id,
        data={"instance": task.instance_id, "from": previous, "to": assignee.id, "reason": reason},
    )
    db.session.commit()
    return task


def complete_task(task_id: int, data: dict | None, actor: User) -> HumanTask:
    """Complete a task with form data (422 on invalid data, 409 if someone was faster)."""
    task, instance = runtime.lock_task(task_id)
    _require_task(actor, "complete", task)
    form = runtime.form_validator(task.instance.version, task.form_key)
    data = _check_data(data, form, "Le formulaire contient des erreurs.")
    runtime.require_running(instance)
    if task.assignee_id is None:
        # written with the task's closing (runtime.save), which always closes this row
        set_committed_value(task, "assignee_id", actor.id)
        set_committed_value(task, "claimed_at", utcnow())
    try:
        for hook in completion_hooks(task.form_key):
            data = {**data, **(hook(task, data, actor) or {})}
    except Exception:
        db.session.rollback()
        raise

    def act(workflow):
        spiff = runtime.find_task(workflow, task.spiff_task_id)
        if spiff is None or not spiff.has_state(TaskState.READY):
            raise Conflict("Cette tâche n'est plus à faire.")
        spiff.data.update(data)
        spiff.run()
        workflow.do_engine_steps()

    report = _unit_of_work(
        instance,
        actor,
        act,
        "task.complete",
        {"task": task.id, "element_id": task.element_id, "fields": sorted(data)},
    )
    db.session.commit()
    _after_commit(report)
    return task


# --- messages ----------------------------------------------------------------------------


def send_message(
    name: str, correlation_key: str | None, payload: dict | None, actor: User | None
) -> list[int]:
    """Deliver a message to the instances waiting for it under that key; return their ids."""
    payload = _check_data(payload, None, "Le contenu du message n'est pas valide.")
    stmt = (
        select(MessageSubscription.instance_id)
        .where(MessageSubscription.message_name == name)
        .distinct()
    )
    if correlation_key is not None:
        stmt = stmt.where(MessageSubscription.correlation_key == correlation_key)
    instance_ids = sorted(db.session.execute(stmt).scalars())
    if not instance_ids:
        raise NotFound(
            f"Aucune instance n'attend le message « {name} »"
            + (f" pour la clé « {correlation_key} »." if correlation_key else ".")
        )
    delivered = []
    for instance_id in instance_ids:
        instance = runtime.lock_instance(instance_id)
        if instance.status != InstanceStatus.RUNNING:
            db.session.rollback()
            continue

        def act(workflow):
            _deliver(workflow, name, payload)

        report = _unit_of_work(
            instance,
            actor,
            act,
            "message.receive",
            {"message": name, "correlation_key": correlation_key},
            incident_kind="message",
        )
        db.session.commit()
        _after_commit(report)
        delivered.append(instance_id)
    return delivered


def _deliver(workflow, name: str, payload: dict) -> None:
    waiting = [
        t
        for t in workflow.event_manager.tasks.values()
        if runtime.message_name(t) == name and t.has_state(TaskState.WAITING)
    ]
    if not waiting:
        raise Conflict(f"Cette instance n'attend plus le message « {name} ».")
    definition = waiting[0].task_spec.event_definition
    if hasattr(definition, "result_var"):  # Camunda flavour carries payload + variable
        event_payload = {"payload": payload, "result_var": definition.result_var or "message"}
    else:
        event_payload = payload
    workflow.catch(BpmnEvent(definition, event_payload))
    for task in waiting:
        task.data.update(payload)  # the message's variables become case data
    workflow.do_engine_steps()


# --- timers and jobs (the worker) ------------------------------------------------------


def fire_due_timers(now: datetime | None = None, limit: int = 200) -> int:
    """Fire the timers that are due; return how many instances moved."""
    now = now or utcnow()
    instance_ids = list(
        db.session.execute(
            select(EngineTimer.instance_id)
            .where(EngineTimer.due_at <= now)
            .group_by(EngineTimer.instance_id)
            .order_by(func.min(EngineTimer.due_at))
            .limit(limit)
        ).scalars()
    )
    db.session.rollback()
    fired = 0
    for instance_id in instance_ids:
        instance = runtime.lock_instance(instance_id)
        if instance.status != InstanceStatus.RUNNING:
            db.session.rollback()
            continue
        due = [
            t.element_id
            for t in db.session.execute(
                select(EngineTimer).where(
                    EngineTimer.instance_id == instance_id, EngineTimer.due_at <= now
                )
            ).scalars()
        ]

        def act(workflow):
            workflow.refresh_timers()
            workflow.do_engine_steps()

        try:
            report = _unit_of_work(
                instance, None, act, "timer.fire", {"elements": due}, incident_kind="timer"
            )
        except EngineFailure:
            _postpone_timers(instance_id, now)
            continue
        db.session.commit()
        _after_commit(report)
        fired += 1
    return fired


def _postpone_timers(instance_id: int, now: datetime) -> None:
    """After a failed firing, retry the instance's due timers in 5 minutes (no hot loop)."""
    for timer in db.session.execute(
        select(EngineTimer).where(EngineTimer.instance_id == instance_id, EngineTimer.due_at <= now)
    ).scalars():
        timer.due_at = now + timedelta(minutes=5)
    db.session.commit()


def run_due_jobs(limit: int = 100) -> int:
    """Run the pending service tasks that are due; return how many ran."""
    job_ids = list(
        db.session.execute(
            select(EngineJob.id)
            .where(EngineJob.status == JobStatus.PENDING, EngineJob.due_at <= utcnow())
            .order_by(EngineJob.due_at)
            .limit(limit)
        ).scalars()
    )
    db.session.rollback()
    for job_id in job_ids:
        for follow_up in run_job(job_id):
            run_job(follow_up)
    return len(job_ids)


def run_job(job_id: int) -> list[int]:
    """Run one service task in its own transaction; return the jobs it made ready."""
    job = db.session.get(EngineJob, job_id)
    if job is None or job.status != JobStatus.PENDING:
        db.session.rollback()
        return []
    instance = runtime.lock_instance(job.instance_id)
    db.session.refresh(job)
    if job.status != JobStatus.PENDING or instance.status != InstanceStatus.RUNNING:
        db.session.rollback()
        return []
    workflow = runtime.restore(instance)
    spiff = runtime.find_task(workflow, job.spiff_task_id)
    if spiff is None or not spiff.has_state(TaskState.READY):
        job.status = JobStatus.DONE
        db.session.commit()
        return []
    try:
        with runtime.running(instance):
            spiff.run()
            workflow.do_engine_steps()
    except Exception as exc:  # any handler failure: keep the instance as it was
        instance_id, element_id, handler = instance.id, job.element_id, job.handler
        db.session.rollback()
        _job_failed(job_id, instance_id, element_id, handler, exc)
        return []
    job.status = JobStatus.DONE
    job.attempts += 1
    job.updated_at = utcnow()
    report = runtime.save(instance, workflow, None)
    audit.record(
        "job.done",
        object_type="process_instance",
        object_id=instance.id,
        data={"job": job.id, "handler": job.handler, "element_id": job.element_id},
    )
    for incident in db.session.execute(
        select(Incident).where(Incident.job_id == job.id, Incident.resolved_at.is_(None))
    ).scalars():
        incident.resolved_at = utcnow()
    db.session.commit()
    runtime.run_after_commit()
    return report.new_jobs


def _job_failed(
    job_id: int, instance_id: int, element_id: str, handler: str, exc: Exception
) -> None:
    job = db.session.get(EngineJob, job_id)
    job.attempts += 1
    cause = exc.__cause__ or getattr(exc, "exception", None) or exc
    job.last_error = f"{type(cause).__name__}: {cause}"[:4000]
    job.updated_at = utcnow()
    if job.attempts >= MAX_JOB_ATTEMPTS:
        job.status = JobStatus.FAILED
    else:
        job.due_at = utcnow() + timedelta(seconds=30 * 2 ** (job.attempts - 1))
    message = (
        f"Le gestionnaire « {handler} » a échoué (tentative {job.attempts}/"
        f"{MAX_JOB_ATTEMPTS}) : {job.last_error}"
    )
    incident = db.session.execute(
        select(Incident).where(Incident.job_id == job_id, Incident.resolved_at.is_(None))
    ).scalar_one_or_none()
    if incident is None:
        _record_incident(instance_id, "job", element_id, message, None, job_id=job_id)
    else:
        incident.message = message
    log.warning("job %s failed: %s", job_id, job.last_error)
    db.session.commit()


def list_incidents(open_only: bool = True) -> list[Incident]:
    """Incidents, newest first."""
    stmt = select(Incident).order_by(Incident.id.desc()).limit(500)
    if open_only:
        stmt = stmt.where(Incident.resolved_at.is_(None))
    return list(db.session.execute(stmt).scalars())


def retry_incident(incident_id: int, actor: User) -> Incident:
    """Retry by hand: a failed job runs again now; other incidents are marked handled."""
    if not actor.is_admin:
        require(actor, "manage", "process")
    incident = db.session.get(Incident, incident_id)
    if incident is None:
        raise NotFound("Incident introuvable.")
    if incident.resolved_at is not None:
        raise Conflict("Cet incident est déjà résolu.")
    job_id = incident.job_id
    audit.record(
        "incident.retry",
        actor=actor,
        object_type="process_instance",
        object_id=incident.instance_id,
        data={"incident": incident.id},
    )
    if job_id is not None:
        job = db.session.get(EngineJob, job_id)
        job.status, job.due_at = JobStatus.PENDING, utcnow()
        db.session.commit()
        for follow_up in run_job(job_id):
            run_job(follow_up)
    else:
        incident.resolved_at = utcnow()
        db.session.commit()
    db.session.refresh(incident)
    return incident


def open_tasks_count(process_key: str | None = None) -> int:
    """How many human tasks are open (for dashboards)."""
    stmt = select(func.count()).select_from(HumanTask).where(HumanTask.status == TaskStatus.OPEN)
    if process_key:
        stmt = stmt.where(HumanTask.process_key == process_key)
    return db.session.scalar(stmt)
