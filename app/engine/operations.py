"""Watching and moving running cases: where they wait, the path they took, migration.

The studio reads these to draw heatmaps and instance paths on diagrams, and calls the
migration functions to move running instances to a newer version of their circuit.
A migration is refused when the instance already did (or is doing) something the new
version changes: completed or started steps must be identical in both versions.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow
from sqlalchemy import Float, cast, delete, func, select

from app.auth.models import User
from app.core import audit
from app.core.db import utcnow
from app.core.errors import NotFound, ValidationFailed
from app.core.extensions import db
from app.core.permissions import require
from app.engine import runtime
from app.engine.models import (
    HumanTask,
    InstanceStatus,
    ProcessDefinition,
    ProcessInstance,
    ProcessVersion,
    TaskStatus,
)
from app.engine.spiff import SERIALIZER, SpiffWorkflowException, TaskState

log = logging.getLogger(__name__)

MIGRATABLE = (InstanceStatus.RUNNING, InstanceStatus.SUSPENDED)
# States in which an instance has already acted on a step: those steps must not change.
_DONE = TaskState.COMPLETED | TaskState.STARTED | TaskState.ERROR
_REACHED = (
    TaskState.COMPLETED
    | TaskState.STARTED
    | TaskState.ERROR
    | TaskState.READY
    | (TaskState.WAITING)
)
# Spec attributes compared by SpiffWorkflow, in words an analyst reads.
_ATTRIBUTE_LABELS = {
    "typename": "type d'élément",
    "bpmn_name": "nom",
    "extensions": "propriétés (groupes, responsable, formulaire, échéance…)",
    "lane": "couloir",
    "cond_task_specs": "conditions des flux",
    "default_task_spec": "flux par défaut",
    "script": "script",
    "event_definition": "définition d'événement",
    "handler": "gestionnaire de tâche de service",
    "data_input_associations": "données en entrée",
    "data_output_associations": "données en sortie",
    "io_specification": "données d'entrée/sortie",
    "prescript": "script préalable",
    "postscript": "script final",
}
# Connections of a finished step may change: the instance has already left it.
_CONNECTIONS = {"inputs", "outputs"}


# --- where cases wait ---------------------------------------------------------------------


@dataclass
class ElementLoad:
    """Open and finished human tasks of one diagram element."""

    element_id: str
    waiting: int = 0
    mean_wait_seconds: float | None = None
    completed: int = 0
    mean_duration_seconds: float | None = None

    def as_dict(self) -> dict:
        return {
            "element_id": self.element_id,
            "waiting": self.waiting,
            "mean_wait_seconds": self.mean_wait_seconds,
            "completed": self.completed,
            "mean_duration_seconds": self.mean_duration_seconds,
        }


def _epoch(column):
    """Seconds since 1970 of a timestamp column, on PostgreSQL and on SQLite."""
    if db.engine.dialect.name == "postgresql":
        return func.extract("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def waiting_by_element(process_key: str, version: int | None = None) -> dict[str, ElementLoad]:
    """Per task of a circuit: how many cases wait there now and for how long on average."""
    now = utcnow().timestamp()
    stmt = (
        select(
            HumanTask.element_id,
            HumanTask.status,
            func.count(),
            func.avg(cast(_epoch(HumanTask.created_at), Float)),
            func.avg(cast(_epoch(HumanTask.completed_at) - _epoch(HumanTask.created_at), Float)),
        )
        .where(
            HumanTask.process_key == process_key,
            HumanTask.status.in_([TaskStatus.OPEN, TaskStatus.COMPLETED]),
        )
        .group_by(HumanTask.element_id, HumanTask.status)
    )
    if version is not None:
        stmt = (
            stmt.join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
            .join(ProcessVersion, ProcessVersion.id == ProcessInstance.version_id)
            .where(ProcessVersion.version == version)
        )
    loads: dict[str, ElementLoad] = {}
    for element_id, status, count, mean_created, mean_duration in db.session.execute(stmt):
        load = loads.setdefault(element_id, ElementLoad(element_id))
        if status == TaskStatus.OPEN:
            load.waiting = count
            load.mean_wait_seconds = max(0.0, now - mean_created) if mean_created else None
        else:
            load.completed = count
            load.mean_duration_seconds = mean_duration
    return loads


# --- the path of one case -----------------------------------------------------------------


@dataclass
class InstancePath:
    """The diagram elements an instance went through, where it is now and the flows taken."""

    completed: dict[str, int] = field(default_factory=dict)
    active: list[str] = field(default_factory=list)
    flows: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "completed": self.completed,
            "active": self.active,
            "flows": [list(pair) for pair in self.flows],
        }


def _bpmn_id(task) -> str | None:
    return getattr(task.task_spec, "bpmn_id", None)


def instance_path(instance: ProcessInstance) -> InstancePath:
    """The path an instance took on its diagram (steps done, current steps, flows)."""
    workflow = runtime.restore(instance)
    path = InstancePath()
    done: Counter[str] = Counter()
    active: list[str] = []
    flows: list[tuple[str, str]] = []
    for task in workflow.get_tasks(state=_REACHED):
        element = _bpmn_id(task)
        if element is None:
            continue
        if task.has_state(TaskState.COMPLETED):
            done[element] += 1
        elif element not in active:
            active.append(element)
        parent = task.parent
        while parent is not None and _bpmn_id(parent) is None:
            parent = parent.parent
        if parent is not None and (_bpmn_id(parent), element) not in flows:
            flows.append((_bpmn_id(parent), element))
    path.completed, path.active, path.flows = dict(done), active, flows
    return path


# --- migration ----------------------------------------------------------------------------


@dataclass
class MigrationReport:
    """What migrating one instance does (dry run) or did."""

    instance_id: int
    from_version: int | None
    to_version: int
    status: str  # "possible", "migrated" or "refused"
    reasons: list[str] = field(default_factory=list)
    reset_elements: list[str] = field(default_factory=list)
    # Waiting steps the new version replaces by another element at the same place.
    replaced: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("possible", "migrated")

    def as_dict(self) -> dict:
        return {
            "instance_id": self.instance_id,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "status": self.status,
            "reasons": self.reasons,
            "reset_elements": self.reset_elements,
            "replaced": [list(pair) for pair in self.replaced],
        }


def _target(instance: ProcessInstance, to_version: int) -> ProcessVersion:
    target = db.session.execute(
        select(ProcessVersion).where(
            ProcessVersion.definition_id == instance.version.definition_id,
            ProcessVersion.version == to_version,
        )
    ).scalar_one_or_none()
    if target is None:
        raise NotFound(f"Version {to_version} inconnue pour « {instance.process_key} ».")
    return target


def _label(task) -> str:
    spec = task.task_spec
    name = getattr(spec, "bpmn_name", None)
    ident = _bpmn_id(task) or spec.name
    return f"« {name} » ({ident})" if name else ident


def _under_reset(task) -> bool:
    """True when the task hangs below a READY/WAITING step, which migration re-predicts."""
    parent = task.parent
    while parent is not None:
        if parent.has_state(TaskState.READY | TaskState.WAITING):
            return True
        parent = parent.parent
    return False


def _unsafe_reasons(diff, workflow_tasks) -> list[str]:
    reasons: list[str] = []
    removed = set(diff.removed)
    changed = {task for task in diff.changed}
    for task in workflow_tasks:
        if _bpmn_id(task) is None and task.task_spec.name in ("Root",):
            continue
        reached = task.has_state(_DONE | TaskState.READY | TaskState.WAITING)
        if task in removed and reached and not _under_reset(task):
            reasons.append(f"L'étape {_label(task)} a été supprimée de la nouvelle version.")
        if task in changed and task.has_state(_DONE):
            new_spec = diff.alignment.get(task)
            differences = [
                _ATTRIBUTE_LABELS.get(attribute, attribute)
                for attribute in _spec_differences(task.task_spec, new_spec)
                if attribute not in _CONNECTIONS
            ]
            if differences:
                state = "en cours" if task.has_state(TaskState.STARTED) else "déjà terminée"
                reasons.append(
                    f"L'étape {_label(task)}, {state}, a changé : {', '.join(differences)}."
                )
    return reasons


def _spec_differences(old_spec, new_spec) -> list[str]:
    if new_spec is None:
        return ["typename"]
    first = SERIALIZER.registry.convert(old_spec)
    second = SERIALIZER.registry.convert(new_spec)
    if first.get("typename") != second.get("typename"):
        return ["typename"]
    return [key for key, value in first.items() if second.get(key) != value]


def _plan(instance: ProcessInstance, target: ProcessVersion):
    """Diff an instance against a version: workflow, diffs, reasons, reset and replaced steps."""
    workflow = runtime.restore(instance)
    spec, subprocess_specs = runtime.version_specs(target)
    top_diff, sub_diffs = diff_workflow(SERIALIZER.registry, workflow, spec, subprocess_specs)
    reasons = _unsafe_reasons(top_diff, workflow.get_tasks(skip_subprocesses=True))
    for sub_id, sub_diff in sub_diffs.items():
        sub = workflow.subprocesses[sub_id]
        if sub_diff is None:
            reasons.append(
                f"Le sous-processus « {sub.spec.name} » n'existe plus dans la nouvelle version."
            )
            continue
        reasons.extend(_unsafe_reasons(sub_diff, sub.get_tasks(skip_subprocesses=True)))
    waiting = [
        task
        for task in workflow.get_tasks(state=TaskState.READY | TaskState.WAITING)
        if _bpmn_id(task)
    ]
    reset = sorted({_bpmn_id(task) for task in waiting})
    replaced = sorted(
        {
            (_bpmn_id(task), top_diff.alignment[task].bpmn_id)
            for task in waiting
            if top_diff.alignment.get(task) is not None
            and getattr(top_diff.alignment[task], "bpmn_id", None) not in (None, _bpmn_id(task))
        }
    )
    plan = (top_diff, sub_diffs)
    return workflow, plan, list(dict.fromkeys(reasons)), reset, replaced


def _check_instance(instance: ProcessInstance, target: ProcessVersion) -> list[str]:
    if instance.status not in MIGRATABLE:
        return ["Cette instance est terminée : seules les instances en cours se migrent."]
    if target.version <= instance.version.version:
        return [
            f"L'instance est déjà en version {instance.version.version} : la migration ne "
            "va que vers une version plus récente."
        ]
    return []


def migrate_instance(
    instance_id: int, to_version: int, actor: User | None, *, dry_run: bool = False
) -> MigrationReport:
    """Move a running instance to a newer version of its circuit, or say why it cannot."""
    if actor is not None:
        require(actor, "migrate", "process")
    instance = runtime.lock_instance(instance_id)
    target = _target(instance, to_version)
    report = MigrationReport(instance.id, instance.version.version, target.version, "refused")
    report.reasons = _check_instance(instance, target)
    if report.reasons:
        db.session.rollback()
        return report
    try:
        workflow, (top_diff, sub_diffs), reasons, reset, replaced = _plan(instance, target)
    except (SpiffWorkflowException, KeyError, AttributeError, TypeError) as exc:
        db.session.rollback()
        report.reasons = [f"Comparaison impossible avec la version {to_version} : {exc}"]
        return report
    report.reasons, report.reset_elements, report.replaced = reasons, reset, replaced
    if reasons:
        db.session.rollback()
        return report
    if dry_run:
        report.status = "possible"
        db.session.rollback()
        return report
    try:
        _apply(instance, target, workflow, top_diff, sub_diffs)
    except (SpiffWorkflowException, runtime.sandbox.SandboxError) as exc:
        db.session.rollback()
        report.reasons = [f"La nouvelle version n'a pas pu reprendre l'instance : {exc}"]
        return report
    from_version = instance.version.version
    changed_rows = _refresh_open_tasks(instance, workflow, top_diff)
    instance.version_id = target.id
    instance.version = target
    saved = runtime.save(instance, workflow, actor)
    audit.record(
        "instance.migrate",
        actor=actor,
        object_type="process_instance",
        object_id=instance.id,
        data={
            "key": instance.process_key,
            "from_version": from_version,
            "to_version": target.version,
            "reset_elements": reset,
            "refreshed_tasks": changed_rows,
        },
    )
    db.session.commit()
    from app.engine.services import _after_commit  # the engine's own post-commit job runner

    _after_commit(saved)
    report.status = "migrated"
    return report


def _apply(instance, target, workflow, top_diff, sub_diffs) -> None:
    spec, subprocess_specs = runtime.version_specs(target)
    workflow.subprocess_specs = dict(subprocess_specs)
    for sub_id, sub_diff in sub_diffs.items():
        sub = workflow.subprocesses[sub_id]
        migrate_workflow(sub_diff, sub, subprocess_specs[sub.spec.name])
    migrate_workflow(top_diff, workflow, spec)
    with runtime.running(instance):
        workflow.refresh_timers()
        if instance.status == InstanceStatus.RUNNING:
            workflow.do_engine_steps()


def _refresh_open_tasks(instance: ProcessInstance, workflow, top_diff) -> list[str]:
    """Drop the inbox rows of open steps whose definition changed: they are rebuilt."""
    changed_ids = {str(task.id) for task in top_diff.changed if task.has_state(TaskState.READY)}
    rows = list(
        db.session.execute(
            select(HumanTask).where(
                HumanTask.instance_id == instance.id,
                HumanTask.status == TaskStatus.OPEN,
                HumanTask.spiff_task_id.in_(changed_ids),
            )
        ).scalars()
    )
    elements = [row.element_id for row in rows]
    if rows:
        db.session.execute(delete(HumanTask).where(HumanTask.id.in_([r.id for r in rows])))
        db.session.expire_all()
        db.session.refresh(instance)
        # forget the remembered open rows: the next save reads them and rebuilds these
        instance.waiting = {k: v for k, v in (instance.waiting or {}).items() if k != "tasks"}
    return elements


def migrate_instances(
    process_key: str,
    to_version: int,
    actor: User | None,
    *,
    from_version: int | None = None,
    instance_ids: list[int] | None = None,
    dry_run: bool = False,
) -> list[MigrationReport]:
    """Migrate many instances (or check them), one transaction each; one report each."""
    if actor is not None:
        require(actor, "migrate", "process")
    definition = db.session.execute(
        select(ProcessDefinition).where(ProcessDefinition.key == process_key)
    ).scalar_one_or_none()
    if definition is None:
        raise NotFound(f"Processus inconnu : {process_key}")
    stmt = (
        select(ProcessInstance.id)
        .join(ProcessVersion, ProcessVersion.id == ProcessInstance.version_id)
        .where(
            ProcessVersion.definition_id == definition.id,
            ProcessInstance.status.in_(MIGRATABLE),
            ProcessVersion.version < to_version,
        )
        .order_by(ProcessInstance.id)
    )
    if from_version is not None:
        stmt = stmt.where(ProcessVersion.version == from_version)
    if instance_ids is not None:
        if not instance_ids:
            raise ValidationFailed(
                "Choisissez au moins une instance.",
                errors=[{"field": "instances", "message": "Aucune instance choisie."}],
            )
        stmt = stmt.where(ProcessInstance.id.in_(instance_ids))
    ids = list(db.session.execute(stmt).scalars())
    db.session.rollback()
    reports = [migrate_instance(i, to_version, actor, dry_run=dry_run) for i in ids]
    if not dry_run:
        audit.record(
            "process.migrate_batch",
            actor=actor,
            object_type="process_definition",
            object_id=definition.id,
            data={
                "key": process_key,
                "to_version": to_version,
                "from_version": from_version,
                "migrated": [r.instance_id for r in reports if r.status == "migrated"],
                "refused": [r.instance_id for r in reports if r.status == "refused"],
            },
        )
        db.session.commit()
    return reports


def migration_candidates(process_key: str, below_version: int) -> list[ProcessInstance]:
    """Running or suspended instances of older versions than ``below_version``."""
    return list(
        db.session.execute(
            select(ProcessInstance)
            .join(ProcessVersion, ProcessVersion.id == ProcessInstance.version_id)
            .join(ProcessDefinition, ProcessDefinition.id == ProcessVersion.definition_id)
            .where(
                ProcessDefinition.key == process_key,
                ProcessInstance.status.in_(MIGRATABLE),
                ProcessVersion.version < below_version,
            )
            .order_by(ProcessInstance.id)
            .limit(1000)
        ).scalars()
    )


def instance_counts(process_key: str) -> dict[int, dict[str, int]]:
    """Per version number of a circuit: how many instances in each status."""
    rows = db.session.execute(
        select(ProcessVersion.version, ProcessInstance.status, func.count())
        .join(ProcessInstance, ProcessInstance.version_id == ProcessVersion.id)
        .join(ProcessDefinition, ProcessDefinition.id == ProcessVersion.definition_id)
        .where(ProcessDefinition.key == process_key)
        .group_by(ProcessVersion.version, ProcessInstance.status)
    )
    counts: dict[int, dict[str, int]] = {}
    for version, status, count in rows:
        counts.setdefault(version, {})[str(status)] = count
    return counts
