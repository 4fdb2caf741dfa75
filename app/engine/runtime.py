"""One unit of work per action on an instance: lock, restore, run, save, sync, audit.

The instance row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions
already hold the write lock), the workflow is restored from its state and its version's
specs, the action runs, the state is serialized once, and the rows the inbox and the
worker read (human tasks, timers, jobs, message subscriptions) are brought in line —
all in the caller's transaction.
"""

from __future__ import annotations

import enum
import functools
import logging
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy import JSON, bindparam, delete, event, inspect, select
from sqlalchemy.orm import Session, load_only, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from app.auth.models import Group, User
from app.core import audit
from app.core.db import run_pipeline, utcnow
from app.core.errors import Conflict, NotFound
from app.core.extensions import db
from app.core.validation import compile_schema
from app.engine import sandbox
from app.engine.handlers import HandlerContext, get_handler, instance_completed_listeners
from app.engine.models import (
    NO_DUE_DATE,
    SEARCH_TEXT_MAX,
    EngineJob,
    EngineTimer,
    HumanTask,
    InstanceStatus,
    JobStatus,
    MessageSubscription,
    ProcessInstance,
    ProcessVersion,
    TaskCandidate,
    TaskStatus,
)
from app.engine.spiff import (
    BpmnWorkflow,
    HandlerServiceTask,
    MissiveScriptEngine,
    TaskState,
    restore_workflow,
    specs_from_json,
    workflow_state,
)

log = logging.getLogger(__name__)

# Case variables copied onto tasks so the inbox can show and search them.
SUMMARY_KEYS = (
    "chrono",
    "subject",
    "sender",
    "sender_name",
    "type",
    "case_type",
    "amount",
    "channel",
    "service",
    "delegation",
    "correspondence_id",
    "folder_id",
    "document_type",
    "title",
    "received_at",
)
_SPEC_CACHE_SIZE = 64
_spec_cache: OrderedDict[tuple[int, str], tuple[Any, dict]] = OrderedDict()
_FORM_CACHE_SIZE = 256
_form_cache: OrderedDict[tuple[int, str, str], Any] = OrderedDict()


def _cached(cache: OrderedDict, key: tuple, size: int, build: Callable[[], Any]) -> Any:
    value = cache.get(key)
    if value is None:
        value = build()
        cache[key] = value
        while len(cache) > size:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return value


def version_specs(version: ProcessVersion) -> tuple[Any, dict]:
    """Restored spec objects of a version (immutable, so cached per process).

    The key includes the content hash: a restored database may reuse an id, never with
    the same content.
    """
    return _cached(
        _spec_cache,
        (version.id, version.content_hash),
        _SPEC_CACHE_SIZE,
        lambda: specs_from_json(version.spec),
    )


def form_validator(version: ProcessVersion, form_key: str | None):
    """The compiled JSON Schema validator of a form at a version (None: no form).

    Forms are snapshotted into the version at deploy time, so like the specs they never
    change under the same id and content hash.
    """
    if not form_key:
        return None
    key = (version.id, version.content_hash, form_key)
    if key in _form_cache:
        _form_cache.move_to_end(key)
        return _form_cache[key]
    schema = (version.forms or {}).get(form_key)
    if schema is None:
        return None
    return _cached(_form_cache, key, _FORM_CACHE_SIZE, lambda: compile_schema(schema))


# --- work to do once the transaction has committed -----------------------------------------

_AFTER_COMMIT = "missive_engine_after_commit"


def after_commit(callback: Callable[[], Any]) -> None:
    """Run ``callback()`` once the current transaction has committed.

    For what must not share the transaction (tell another instance that this one finished,
    run the service tasks of an instance started inside another action). The engine's
    actions run the queue right after their commit; a rollback empties it. A callback runs
    in its own transaction(s) and must re-check the state it acts on: the queue lives in
    this process only, so domains keep a safety net for a crash between commit and run.
    """
    db.session.info.setdefault(_AFTER_COMMIT, []).append(callback)


def run_after_commit() -> None:
    """Run the callbacks queued by the transaction that just committed (each on its own)."""
    while True:
        queue = db.session.info.pop(_AFTER_COMMIT, None)
        if not queue:
            return
        for callback in queue:
            try:
                callback()
            except Exception:  # the caller's action is done; the safety nets retry
                log.exception("after-commit callback %r failed", callback)
                db.session.rollback()


@event.listens_for(Session, "after_rollback")
def _forget_after_commit(session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


# The instance whose workflow is running, for service handlers (set by ``running``).
_current_instance: ContextVar[ProcessInstance | None] = ContextVar("current_instance", default=None)


@contextmanager
def running(instance: ProcessInstance):
    """Mark ``instance`` as the one whose workflow runs now (handlers read it)."""
    token = _current_instance.set(instance)
    try:
        yield
    finally:
        _current_instance.reset(token)


def _call_handler(task, handler: str) -> None:
    instance = _current_instance.get()
    context = HandlerContext(
        instance_id=instance.id if instance else None,
        business_key=instance.business_key if instance else None,
        task_id=str(task.id),
        task_name=task.task_spec.bpmn_name or task.task_spec.bpmn_id,
        data=task.data,
        properties=dict((task.task_spec.extensions or {}).get("properties") or {}),
    )
    result = get_handler(handler)(context)
    if result:
        task.data.update(result)


SCRIPT_ENGINE = MissiveScriptEngine(call_handler=_call_handler)


def lock_instance(instance_id: int) -> ProcessInstance:
    """Load and lock an instance row for the rest of the transaction."""
    stmt = select(ProcessInstance).where(ProcessInstance.id == instance_id)
    if db.engine.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    instance = db.session.execute(stmt).scalar_one_or_none()
    if instance is None:
        raise NotFound("Instance de processus introuvable.")
    return instance


# Built once: a completion only binds the task id.
_TASK_WITH_INSTANCE = (
    # The version comes along (immutable, not locked): restoring needs it.
    select(HumanTask, ProcessInstance, ProcessVersion)
    .join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
    .join(ProcessVersion, ProcessVersion.id == ProcessInstance.version_id)
    .where(HumanTask.id == bindparam("task_id"))
    # what a completion reads of the version; forms and specs come from their caches
    .options(
        load_only(
            ProcessVersion.definition_id,
            ProcessVersion.version,
            ProcessVersion.content_hash,
        )
    )
    .execution_options(populate_existing=True)
)
_TASK_WITH_INSTANCE_LOCKED = _TASK_WITH_INSTANCE.with_for_update(of=[ProcessInstance, HumanTask])


def lock_task(task_id: int) -> tuple[HumanTask, ProcessInstance]:
    """Load a task with its instance, the instance row locked, both fresh, in one query.

    On PostgreSQL a waiting transaction re-reads both rows once the lock is granted, so a
    task completed meanwhile is seen as completed.
    """
    if db.engine.dialect.name == "postgresql":
        stmt = _TASK_WITH_INSTANCE_LOCKED
    else:
        stmt = _TASK_WITH_INSTANCE
    row = db.session.execute(stmt, {"task_id": task_id}).one_or_none()
    if row is None:
        raise NotFound("Tâche introuvable.")
    task, instance, version = row
    set_committed_value(task, "instance", instance)  # already loaded: no lazy query
    set_committed_value(instance, "version", version)
    return task, instance


def restore(instance: ProcessInstance) -> BpmnWorkflow:
    """Rebuild the workflow of an instance."""
    spec, subprocess_specs = version_specs(instance.version)
    return restore_workflow(instance.state, spec, subprocess_specs, SCRIPT_ENGINE)


def require_running(instance: ProcessInstance) -> None:
    """Refuse work on suspended or finished instances."""
    if instance.status == InstanceStatus.SUSPENDED:
        raise Conflict("Cette instance est suspendue.")
    if instance.status != InstanceStatus.RUNNING:
        raise Conflict("Cette instance est terminée.")


def find_task(workflow: BpmnWorkflow, spiff_task_id: str):
    """Return the engine task with that id, or None."""
    try:
        return workflow.get_task_from_id(UUID(spiff_task_id))
    except Exception:  # unknown ids raise in SpiffWorkflow
        return None


@dataclass
class SaveReport:
    new_tasks: list[HumanTask] = field(default_factory=list)
    new_jobs: list[int] = field(default_factory=list)


def save(
    instance: ProcessInstance,
    workflow: BpmnWorkflow,
    actor: User | None,
    audit_entry: dict | None = None,
) -> SaveReport:
    """Serialize once and bring the derived rows in line with the workflow, and append
    ``audit_entry`` (``audit.entry``'s columns) to the audit trail with them.

    What the action changed through the ORM (a claim, a hook's rows) is flushed first;
    the engine's own rows are then written with Core statements, and the ORM objects the
    session holds are told the values written (``set_committed_value``), so nothing is
    written twice and no later flush revisits them.
    """
    session = db.session()
    session.flush()
    report = SaveReport()
    active = workflow.get_tasks(state=TaskState.READY | TaskState.WAITING | TaskState.STARTED)
    ready = [t for t in active if t.has_state(TaskState.READY)]  # one walk of the tree
    now = utcnow()
    waiting = dict(instance.waiting or {})
    values: dict[str, Any] = {
        "state": workflow_state(workflow),
        "lock_version": instance.lock_version + 1,
        "updated_at": now,
        "summary": _summary(_last_data(workflow, active)),
    }
    completed = workflow.is_completed() and instance.status == InstanceStatus.RUNNING
    if completed:
        values.update(status=InstanceStatus.COMPLETED, ended_at=now)
    with session.no_autoflush:
        closed, created = _sync_human_tasks(instance, ready, workflow, actor, waiting, now)
        status = values.get("status", instance.status)
        _sync_timers(instance, status, workflow, waiting)
        _sync_messages(instance, status, workflow, waiting)
        report.new_jobs = _sync_jobs(instance, ready, waiting)
    session.flush()  # the timers, subscriptions and jobs, when they changed
    if waiting != (instance.waiting or {}):
        values["waiting"] = waiting
    if db.engine.dialect.name == "postgresql":
        new_ids = _write_pg(session, instance.id, values, closed, created, audit_entry)
    else:
        new_ids = _write(session, instance.id, values, closed, created)
        if audit_entry is not None:
            audit.append(audit_entry)
    _committed(instance, values)
    for new, new_id in zip(created, new_ids, strict=True):
        new.row.id = new_id
        _adopt(session, new.row)
        set_committed_value(new.row, "instance", instance)
    report.new_tasks = [new.row for new in created]
    for row in report.new_tasks:  # listeners see ids and may add rows
        for listener in _task_listeners:
            listener(row, actor)
    if completed:
        for listener in instance_completed_listeners():
            listener(instance)
    return report


_INSTANCE = ProcessInstance.__table__
_TASK = HumanTask.__table__
_CANDIDATE = TaskCandidate.__table__
_UPDATE_INSTANCE = _INSTANCE.update().where(_INSTANCE.c.id == bindparam("row_id"))
_CLOSED_KEYS = ("status", "completed_by_id", "completed_at", "assignee_id", "claimed_at")
_CLOSE_TASK = (
    _TASK.update()
    .where(_TASK.c.id == bindparam("row_id"))
    .values({key: bindparam(key) for key in _CLOSED_KEYS})
)
_INSERT_TASK = _TASK.insert().returning(_TASK.c.id, sort_by_parameter_order=True)
_INSERT_CANDIDATE = _CANDIDATE.insert()


def _committed(obj: Any, values: dict[str, Any]) -> None:
    """Tell the session's object the values a Core statement wrote for it."""
    for key, value in values.items():
        set_committed_value(obj, key, value)


def _adopt(session: Session, obj: Any) -> None:
    """Make an object whose row a Core statement inserted a persistent member of the session."""
    make_transient_to_detached(obj)
    stale = session.identity_map.get(inspect(obj).key)
    if stale is not None:  # a deleted row whose id the database gave again (SQLite)
        session.expunge(stale)
    session.add(obj)


def _last_data(workflow: BpmnWorkflow, active: list) -> dict:
    if active:
        return active[0].data
    return workflow.last_task.data if workflow.last_task is not None else workflow.data


def _summary(data: dict) -> dict:
    return {
        k: data[k]
        for k in SUMMARY_KEYS
        if k in data and isinstance(data[k], str | int | float | bool)
    }


# --- human tasks ---------------------------------------------------------------------


# Functions told about each new human task, in the creating transaction (the inbox
# notifies assignees through this): ``listener(task, actor)``.
TaskListener = Callable[[HumanTask, User | None], None]
_task_listeners: list[TaskListener] = []


def on_task_created(listener: TaskListener) -> TaskListener:
    """Register a function called with every new human task, before the commit."""
    _task_listeners.append(listener)
    return listener


def _human(task) -> bool:
    return task.task_spec.manual and not isinstance(task.task_spec, HandlerServiceTask)


def _sync_human_tasks(
    instance, ready_tasks: list, workflow, actor, waiting: dict, now: datetime
) -> tuple[list[dict[str, Any]], list[_NewTask]]:
    """The open rows to close (their new values) and the rows to create."""
    ready = {str(t.id): t for t in ready_tasks if _human(t)}
    open_rows = _open_rows(instance, set(ready))
    closed: list[dict[str, Any]] = []
    for spiff_id, row in open_rows.items():
        if spiff_id in ready or row is None:
            continue
        task = find_task(workflow, spiff_id)
        done = task is not None and task.has_state(TaskState.COMPLETED)
        values = {
            "status": TaskStatus.COMPLETED if done else TaskStatus.CANCELLED,
            "completed_by_id": actor.id if done and actor is not None else None,
            "completed_at": now,
            # a completion may have claimed the task on the way (see complete_task)
            "assignee_id": row.assignee_id,
            "claimed_at": row.claimed_at,
        }
        closed.append({"row_id": row.id, **values})
        _committed(row, values)
    if closed:
        _forget_candidates(db.session(), {c["row_id"] for c in closed}, open_rows.values())
    created = [
        _new_human_task(instance, task, now)
        for spiff_id, task in ready.items()
        if spiff_id not in open_rows
    ]
    if waiting.get("tasks") != sorted(ready):
        waiting["tasks"] = sorted(ready)
    return closed, created


def _forget_candidates(session: Session, task_ids: set[int], rows) -> None:
    """Drop from the session the candidate objects of closed tasks (their rows go)."""
    for row in rows:
        if row is not None and "candidates" in row.__dict__:
            set_committed_value(row, "candidates", [])
    for obj in list(session.identity_map.values()):
        if type(obj) is TaskCandidate and obj.__dict__.get("task_id") in task_ids:
            session.expunge(obj)


def _candidate_rows(new: _NewTask, task_id: int) -> list[dict[str, Any]]:
    return [
        {
            "task_id": task_id,
            "group_name": group_name,
            "user_id": user_id,
            "due_sort": new.columns["due_sort"],
            "unclaimed": new.columns["assignee_id"] is None,
            "search_text": new.columns["search_text"],
        }
        for group_name, user_id in new.candidates
    ]


def _write(session, instance_id: int, values: dict, closed: list, created: list) -> list[int]:
    """Write a save's rows with one Core statement each; return the new tasks' ids."""
    connection = session.connection()
    if closed:
        connection.execute(_CLOSE_TASK, closed)
        # the inbox's join table only holds open tasks
        connection.execute(
            _CANDIDATE.delete().where(_CANDIDATE.c.task_id.in_([c["row_id"] for c in closed]))
        )
    new_ids: list[int] = []
    if created:
        columns = [new.columns for new in created]
        result = connection.execute(_INSERT_TASK, columns if len(columns) > 1 else columns[0])
        new_ids = [new_id for (new_id,) in result.all()]
        candidates = [
            row
            for new, new_id in zip(created, new_ids, strict=True)
            for row in _candidate_rows(new, new_id)
        ]
        if candidates:
            connection.execute(_INSERT_CANDIDATE, candidates)
    connection.execute(_UPDATE_INSTANCE.values(**values), {"row_id": instance_id})
    return new_ids


# On PostgreSQL the same writes go in one round trip (psycopg's pipeline mode): the SQL
# below is spelt from the tables' columns; each new task and its candidates are one
# statement.
_JSON_COLUMNS = {
    c.name for table in (_INSTANCE, _TASK) for c in table.columns if isinstance(c.type, JSON)
}


def _pg_update(table: str, keys: tuple[str, ...]) -> str:
    return (
        sql.SQL("UPDATE {} SET {} WHERE id = %(row_id)s")
        .format(
            sql.Identifier(table),
            sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(key), sql.Placeholder(key)) for key in keys
            ),
        )
        .as_string()  # rendered once: composing it again costs more than the statement
    )


_pg_update_instance = functools.lru_cache(maxsize=32)(
    lambda keys: _pg_update("process_instance", keys)
)
_PG_CLOSE_TASK = _pg_update("human_task", _CLOSED_KEYS)
_PG_DROP_CANDIDATES = "DELETE FROM task_candidate WHERE task_id = ANY(%(ids)s)"
_TASK_COLUMNS = [c.name for c in _TASK.columns if c.name != "id"]
_PG_INSERT_TASK = (
    sql.SQL(
        "WITH task AS (INSERT INTO human_task ({columns}) VALUES ({values}) RETURNING id), "
        "candidate AS (INSERT INTO task_candidate "
        "(task_id, group_name, user_id, due_sort, unclaimed, search_text) "
        "SELECT task.id, c.group_name, c.user_id, %(due_sort)s, %(assignee_id)s IS NULL, "
        "%(search_text)s FROM task, unnest(%(candidate_group_names)s::varchar[], "
        "%(candidate_user_ids)s::integer[]) AS c(group_name, user_id)) SELECT id FROM task"
    )
    .format(
        columns=sql.SQL(", ").join(sql.Identifier(name) for name in _TASK_COLUMNS),
        values=sql.SQL(", ").join(sql.Placeholder(name) for name in _TASK_COLUMNS),
    )
    .as_string()
)


def _pg_value(name: str, value: Any) -> Any:
    if name in _JSON_COLUMNS:
        return Jsonb(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _pg_params(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _pg_value(name, value) for name, value in values.items()}


def _pg_save_statements(
    instance_id: int, values: dict, closed: list, created: list
) -> list[tuple[Any, dict]]:
    """``_write``'s statements as PostgreSQL runs them in a pipeline; each new task is one
    statement (with its candidates) returning its id."""
    statements: list[tuple[Any, dict]] = [(_PG_CLOSE_TASK, _pg_params(c)) for c in closed]
    if closed:
        statements.append((_PG_DROP_CANDIDATES, {"ids": [c["row_id"] for c in closed]}))
    update_instance = _pg_update_instance(tuple(sorted(values)))
    statements.append((update_instance, {**_pg_params(values), "row_id": instance_id}))
    statements.extend(
        (
            _PG_INSERT_TASK,
            {
                **_pg_params(new.columns),
                "candidate_group_names": [group for group, _ in new.candidates],
                "candidate_user_ids": [user for _, user in new.candidates],
            },
        )
        for new in created
    )
    return statements


def _write_pg(
    session, instance_id: int, values: dict, closed: list, created: list, audit_entry=None
) -> list[int]:
    """``_write`` and the audit event in one round trip (see ``run_pipeline``)."""
    statements = _pg_save_statements(instance_id, values, closed, created)
    trail = audit.pipeline_statements(session, audit_entry) if audit_entry is not None else []
    rows = run_pipeline(session.connection(), statements + trail)
    if trail:
        audit.appended(session, rows[-1])
    inserted = rows[len(statements) - len(created) : len(statements)]
    return [row[0] for row in inserted]


def _open_rows(instance, ready: set[str]) -> dict[str, HumanTask]:
    """The instance's open task rows that may change: those no longer ready.

    The ids of the open rows are remembered on the instance (``waiting["tasks"]``): when
    the rows to close are already in the session (the task being completed), no query is
    needed; otherwise, or for instances saved before that memo existed, they are read.
    """
    known = (instance.waiting or {}).get("tasks")
    if known is not None:
        leaving = set(known) - ready
        in_session = {
            row.spiff_task_id: row
            for row in db.session.identity_map.values()
            if isinstance(row, HumanTask)
            and row.instance_id == instance.id
            and row.spiff_task_id in leaving
            and row.status == TaskStatus.OPEN
        }
        if set(in_session) == leaving:
            return {**in_session, **{spiff_id: None for spiff_id in set(known) & ready}}
    return {
        row.spiff_task_id: row
        for row in db.session.execute(
            select(HumanTask).where(
                HumanTask.instance_id == instance.id, HumanTask.status == TaskStatus.OPEN
            )
        ).scalars()
    }


@dataclass
class _NewTask:
    row: HumanTask  # the ORM object, given its id once inserted
    columns: dict[str, Any]  # the row's columns, as inserted
    candidates: list[tuple[str | None, int | None]]  # (group name, user id)


def _new_human_task(instance: ProcessInstance, task, now: datetime) -> _NewTask:
    spec = task.task_spec
    ext = spec.extensions or {}
    data = task.data
    name = spec.bpmn_name or spec.bpmn_id
    groups = _names(_attribute(ext.get("candidate_groups"), data))
    users = [u.lower() for u in _names(_attribute(ext.get("candidate_users"), data))]
    assignee = _attribute(ext.get("assignee"), data)
    if not groups and not users and not assignee and spec.lane:
        groups = [_lane_group(spec.lane)]
    assignee_user = _user(assignee, data)
    user_ids = [u.id for u in (_user(n, data) for n in users) if u is not None]
    metadata = _summary(data)
    title = _title(ext, data, name, instance)
    due_at = _moment(_attribute(ext.get("due_date"), data), now)
    attributes = {
        "instance_id": instance.id,
        "spiff_task_id": str(task.id),
        "element_id": spec.bpmn_id,
        "name": name[:300],
        "title": title[:500],
        "process_key": instance.process_key,
        "form_key": ext.get("form_key"),
        "lane": spec.lane,
        "status": TaskStatus.OPEN,
        "assignee_id": assignee_user.id if assignee_user else None,
        "priority": _priority(_attribute(ext.get("priority"), data)),
        "due_at": due_at,
        "due_sort": due_at or NO_DUE_DATE,
        "follow_up_at": _moment(_attribute(ext.get("follow_up_date"), data), now),
        "created_at": now,
        "received_at": _moment(metadata.get("received_at"), now) or instance.started_at or now,
        "owner_id": None,
        "delegation_state": None,
        "claimed_at": now if assignee_user else None,
        "completed_at": None,
        "completed_by_id": None,
        "candidate_groups": groups,
        "candidate_users": users,
        "search_text": searchable(name, title, *[str(v) for v in metadata.values()])[
            :SEARCH_TEXT_MAX
        ],
        "documentation": _documentation(ext.get("documentation"), data),
    }
    return _NewTask(
        row=HumanTask(metadata_=metadata, **attributes),
        columns={"metadata": metadata, **attributes},
        candidates=[(g, None) for g in groups] + [(None, uid) for uid in user_ids],
    )


def _attribute(raw: str | None, data: dict) -> Any:
    """A camunda attribute: ``${…}`` evaluated on the task data, anything else literal."""
    if raw is None:
        return None
    if sandbox.is_camunda_expression(raw):
        try:
            return sandbox.evaluate(sandbox.translate_camunda(raw), data)
        except sandbox.SandboxError:
            return None
    if raw.strip() == "$INITIATOR":  # Flowable/Activiti spelling
        return data.get("initiator")
    return raw


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list | tuple | set) else str(value).split(",")
    return [str(v).strip() for v in items if str(v).strip()]


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _lane_group(lane: str) -> str:
    """The group a lane stands for: by label, else the lane name as a slug."""
    group = db.session.execute(select(Group).where(Group.label == lane)).scalar_one_or_none()
    return group.name if group else _slug(lane)


def _user(value: Any, data: dict) -> User | None:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return db.session.get(User, value)
    text = str(value).strip().lower()
    if not text:
        return None
    return db.session.execute(select(User).where(User.email == text)).scalar_one_or_none()


def _priority(value: Any) -> int:
    try:
        return max(0, min(100, int(value)))
    except (TypeError, ValueError):
        return 50


def _moment(value: Any, now: datetime) -> datetime | None:
    """A due or follow-up date: datetime, date, ISO text or ISO duration from now."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, 23, 59, tzinfo=UTC)
    text = str(value).strip()
    if text.upper().startswith("P"):
        duration = _iso_duration(text)
        return now + duration if duration is not None else None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if len(text) == 10:
        parsed = parsed.replace(hour=23, minute=59)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def _iso_duration(text: str) -> timedelta | None:
    match = _DURATION.match(text.upper())
    if not match or text.upper() in ("P", "PT"):
        return None
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]{0,60})\}")


def _fill(template: str, data: dict) -> str:
    """Replace ``{name}`` placeholders by case data (plain names only, nothing evaluated)."""
    return _PLACEHOLDER.sub(lambda m: str(data.get(m.group(1), "")), template)


def _title(ext: dict, data: dict, name: str, instance: ProcessInstance) -> str:
    template = (ext.get("properties") or {}).get("title")
    if template:
        return _fill(template, data).strip() or name
    return f"{name} — {instance.title}" if instance.title else name


def _documentation(text: str | None, data: dict) -> str | None:
    if not text:
        return None
    return re.sub(
        r"\$\{([A-Za-z][A-Za-z0-9_]*)\}", lambda m: str(data.get(m.group(1), "")), _fill(text, data)
    )


def searchable(*parts: str) -> str:
    """Lower-case, accent-free text used by the inbox's plain search."""
    text = " ".join(p for p in parts if p)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


# --- timers, messages, jobs ----------------------------------------------------------


def _waiting(workflow: BpmnWorkflow):
    for task in list(workflow.event_manager.tasks.values()):
        if task.has_state(
            TaskState.WAITING
            | TaskState.READY
            | TaskState.FUTURE
            | TaskState.LIKELY
            | TaskState.MAYBE
        ):
            yield task


def _timer_due(task) -> datetime | None:
    try:
        details = task.task_spec.event_definition.details(task)
    except Exception:
        return None
    if details.event_type not in (
        "TimeDateEventDefinition",
        "DurationTimerEventDefinition",
        "CycleTimerEventDefinition",
    ):
        return None
    value = details.value
    if value is None:
        return None
    if isinstance(value, dict):  # an exhausted cycle
        return None
    try:
        due = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return due if due.tzinfo else due.replace(tzinfo=UTC)


def _sync_timers(instance, status, workflow, waiting: dict) -> None:
    timers = []
    if status == InstanceStatus.RUNNING:
        for task in _waiting(workflow):
            due = _timer_due(task)
            if due is not None:
                timers.append((str(task.id), task.task_spec.bpmn_id, task.task_spec.bpmn_name, due))
    fingerprint = sorted(f"{t[0]}@{t[3].isoformat()}" for t in timers)
    if fingerprint == waiting.get("timers", []):
        return
    db.session.execute(delete(EngineTimer).where(EngineTimer.instance_id == instance.id))
    for spiff_id, element_id, name, due in timers:
        db.session.add(
            EngineTimer(
                instance_id=instance.id,
                spiff_task_id=spiff_id,
                element_id=element_id,
                name=name,
                due_at=due,
            )
        )
    waiting["timers"] = fingerprint


def message_name(task) -> str | None:
    """The name of the message a waiting task expects, if it expects one."""
    definition = getattr(task.task_spec, "event_definition", None)
    if definition is None or "Message" not in type(definition).__name__:
        return None
    return definition.name


def _sync_messages(instance, status, workflow, waiting: dict) -> None:
    expected = []
    if status == InstanceStatus.RUNNING:
        for task in _waiting(workflow):
            name = message_name(task)
            if name and task.has_state(TaskState.WAITING):
                expected.append((str(task.id), name))
    fingerprint = sorted(f"{t}:{n}:{instance.business_key}" for t, n in expected)
    if fingerprint == waiting.get("messages", []):
        return
    db.session.execute(
        delete(MessageSubscription).where(MessageSubscription.instance_id == instance.id)
    )
    for spiff_id, name in expected:
        db.session.add(
            MessageSubscription(
                instance_id=instance.id,
                spiff_task_id=spiff_id,
                message_name=name,
                correlation_key=instance.business_key,
            )
        )
    waiting["messages"] = fingerprint


def _sync_jobs(instance, ready_tasks: list, waiting: dict) -> list[int]:
    ready = {str(t.id): t for t in ready_tasks if isinstance(t.task_spec, HandlerServiceTask)}
    if not ready and not waiting.get("jobs"):
        return []
    existing = {
        job.spiff_task_id: job
        for job in db.session.execute(
            select(EngineJob).where(
                EngineJob.instance_id == instance.id, EngineJob.status != JobStatus.DONE
            )
        ).scalars()
    }
    for spiff_id, job in existing.items():
        if spiff_id not in ready:
            job.status = JobStatus.DONE
            job.updated_at = utcnow()
    created = []
    for spiff_id, task in ready.items():
        if spiff_id not in existing:
            job = EngineJob(
                instance_id=instance.id,
                spiff_task_id=spiff_id,
                element_id=task.task_spec.bpmn_id,
                handler=task.task_spec.handler,
                status=JobStatus.PENDING,
                due_at=utcnow(),
            )
            db.session.add(job)
            db.session.flush()
            created.append(job.id)
    waiting["jobs"] = sorted(ready)
    return created
