"""Engine benchmark: cost of one task completion through Missive vs raw SpiffWorkflow.

    .venv/bin/python bench/engine.py [--completions 200] [--pg postgresql://…/bench_engine]

Circuit: three user tasks and an exclusive gateway (tests/fixtures/bpmn/camunda_approval.bpmn).
Missive: services.complete_task (permission check, form validation, row lock, restore,
complete, engine steps, serialize once, sync human tasks/timers/jobs, audit, commit), each
in a session of its own with the signed-in user loaded first, as in a web request.
Raw: SpiffWorkflow deserialize → complete → serialize with its own JSON serializer, one
before each of Missive's completions, so that both sides meet the same machine conditions.
The floor: the same lock, writes, audit event and durable commit on the bare driver.
Prints the ratios, instances per second, the state size after 50 rework loops and the
peak memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MISSIVE_HUEY_DB", str(Path(tempfile.mkdtemp()) / "huey.db"))
os.environ.setdefault("MISSIVE_ARGON2_TIME_COST", "1")
os.environ.setdefault("MISSIVE_ARGON2_MEMORY_KIB", "1024")
os.environ.setdefault("MISSIVE_ARGON2_PARALLELISM", "1")

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from app import create_app  # noqa: E402
from app.core.extensions import db  # noqa: E402

BPMN = ROOT / "tests" / "fixtures" / "bpmn" / "camunda_approval.bpmn"
FORMS = ROOT / "tests" / "fixtures" / "forms"
DRAFT = {"subject": "Réponse à la demande", "signataire": "signataire@bench.test"}


def _fresh_pg(url: str) -> str:
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1]
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


class RawSpiff:
    """SpiffWorkflow alone: deserialize → complete the READY task → serialize.

    ``once()`` times one such completion on a fresh state; the benchmark runs one before
    each of Missive's (and the floor's) completions, so that both sides of a ratio are
    measured under the same machine conditions.
    """

    def __init__(self) -> None:
        from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
        from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
        from SpiffWorkflow.camunda.parser import CamundaParser
        from SpiffWorkflow.camunda.serializer import DEFAULT_CONFIG
        from SpiffWorkflow.util.task import TaskState

        from app.engine.compiler import protect_reserved_ids, read_document

        document = read_document(BPMN.name, BPMN.read_bytes(), [])
        protect_reserved_ids(document.root)
        for condition in document.root.iter("{*}conditionExpression"):  # Python for Spiff
            condition.text = condition.text.strip()[2:-1]
        parser = CamundaParser()
        parser.add_bpmn_xml(document.root.getroottree(), BPMN.name)
        spec = parser.get_spec("approbation_simple")
        self.serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(DEFAULT_CONFIG))
        self.ready = TaskState.READY
        workflow = BpmnWorkflow(spec)
        workflow.do_engine_steps()
        workflow.get_tasks(state=TaskState.READY)[0].data.update({"subject": "Demande"})
        workflow.do_engine_steps()
        self.state = self.serializer.serialize_json(workflow)
        self.timings: list[float] = []

    def once(self) -> None:
        started = time.perf_counter()
        workflow = self.serializer.deserialize_json(self.state)
        task = workflow.get_tasks(state=self.ready, manual=True)[0]
        task.data.update(DRAFT)
        task.run()
        workflow.do_engine_steps()
        self.serializer.serialize_json(workflow)
        self.timings.append(time.perf_counter() - started)

    def median_ms(self) -> float:
        return statistics.median(self.timings) * 1000


def missive(url: str, completions: int, raw: RawSpiff) -> dict:
    """The same completion through Missive's service layer (``raw`` runs one of its own
    before each)."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "MISSIVE_STORAGE": str(workdir),
            "MISSIVE_FORMS_DIRS": str(FORMS),
            "MISSIVE_ENV": "testing",
        }
    )
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    with app.app_context():
        upgrade()
        from app.auth.services import create_group, create_user, signed_in_user
        from app.engine import services
        from app.engine.models import HumanTask, ProcessInstance, TaskStatus

        create_group(name="redaction", label="Rédaction")
        create_group(name="dgs", label="DGS")
        agent = create_user(
            email="agent@bench.test", name="Agent", password="x" * 12, groups=["redaction"]
        )
        visa = create_user(email="dgs@bench.test", name="DGS", password="x" * 12, groups=["dgs"])
        services.deploy([(BPMN.name, BPMN.read_bytes())], None)
        started = time.perf_counter()
        instances = [
            services.start_instance("approbation_simple", {"subject": "Demande"}, agent)
            for _ in range(completions)
        ]
        start_rate = completions / (time.perf_counter() - started)
        task_ids = [
            db.session.query(HumanTask.id)
            .filter_by(instance_id=i.id, status=TaskStatus.OPEN)
            .scalar()
            for i in instances
        ]
        agent_id, visa_id = agent.id, visa.id
        db.session.commit()
        timings = []
        for task_id in task_ids:
            # One session per completion, as for a web request: the signed-in user is
            # loaded first (the request's user loader), then the service is timed.
            db.session.remove()
            user = signed_in_user(agent_id)
            raw.once()
            began = time.perf_counter()
            services.complete_task(task_id, DRAFT, user)
            timings.append(time.perf_counter() - began)
        db.session.remove()
        agent, visa = signed_in_user(agent_id), signed_in_user(visa_id)
        # state size after 50 rework loops (draft → visa rejected → draft …)
        loop = services.start_instance("approbation_simple", {"subject": "Boucle"}, agent)

        def open_id(element):
            return (
                db.session.query(HumanTask.id)
                .filter_by(instance_id=loop.id, status=TaskStatus.OPEN, element_id=element)
                .scalar()
            )

        for n in range(50):
            services.complete_task(open_id("Task_redaction"), DRAFT, agent)
            services.complete_task(
                open_id("Task_visa"), {"decision": "reject", "comment": f"Reprise {n}"}, visa
            )
        state_size = len(db.session.get(ProcessInstance, loop.id).state)
    return {
        "median_ms": statistics.median(timings) * 1000,
        "p95_ms": statistics.quantiles(timings, n=20)[18] * 1000,
        "instances_per_s": start_rate,
        "state_after_50_loops_kb": state_size / 1024,
    }


def database_floor(url: str, completions: int, raw: RawSpiff) -> dict:
    """What the database alone costs a completion, on the bare driver: the same locking
    read, the same writes and audit event in one pipeline, and a durable commit — the
    least any implementation keeping those rows, indexes and guarantees pays. Run on the
    open tasks Missive's run left (the « visa » steps)."""
    import types
    import uuid

    import psycopg
    from sqlalchemy.dialects import postgresql

    from app.core import audit
    from app.engine import runtime

    lock = str(runtime._TASK_WITH_INSTANCE_LOCKED.compile(dialect=postgresql.psycopg.dialect()))
    task_columns = [c.name for c in runtime._TASK.columns]
    state_column = [c.name for c in runtime._INSTANCE.columns].index("state")
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1))
    task_ids = [
        row[0]
        for row in conn.execute(
            "SELECT id FROM human_task WHERE status = 'open' ORDER BY id LIMIT %s",
            (completions,),
        )
    ]
    conn.commit()
    session = types.SimpleNamespace(info={})  # the audit chain's tail is read in SQL
    timings = []
    for task_id in task_ids:
        raw.once()
        began = time.perf_counter()
        row = conn.execute(lock, {"task_id": task_id}).fetchone()
        task = dict(zip(task_columns, row[: len(task_columns)], strict=True))
        instance_id, state = task["instance_id"], row[len(task_columns) + state_column]
        new_task = {k: v for k, v in task.items() if k != "id"}
        new_task.update(spiff_task_id=str(uuid.uuid4()), created_at=runtime.utcnow())
        now = runtime.utcnow()
        closed = {
            "row_id": task_id,
            "status": "completed",
            "completed_by_id": None,
            "completed_at": now,
            "assignee_id": None,
            "claimed_at": now,
        }
        values = {
            "lock_version": 2,
            "state": state,
            "summary": {"subject": "Demande"},
            "updated_at": now,
        }
        created = runtime._NewTask(row=None, columns=new_task, candidates=[("dgs", None)])
        statements = runtime._pg_save_statements(instance_id, values, [closed], [created])
        insert = len(statements) - 1  # the new task's statement comes last, returning its id
        statements += audit.pipeline_statements(
            session, audit.entry("task.complete", object_type="process_instance", data={})
        )
        cursors = [conn.cursor() for _ in statements]
        with conn.pipeline():  # the engine's statements, on the bare driver
            for cursor, (query, params) in zip(cursors, statements, strict=True):
                cursor.execute(query, params)
        cursors[insert].fetchone()
        audit.appended(session, cursors[-1].fetchone())
        for cursor in cursors:
            cursor.close()
        conn.commit()
        session.info.clear()
        timings.append(time.perf_counter() - began)
    conn.close()
    return {"median_ms": statistics.median(timings) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=200)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/bench_engine")
    args = parser.parse_args()
    sqlite_url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    pg_url = _fresh_pg(args.pg)
    for label, url in (("SQLite", sqlite_url), ("PostgreSQL", pg_url)):
        raw = RawSpiff()
        result = missive(url, args.completions, raw)
        print(
            f"Missive {label:<10} completion median {result['median_ms']:.2f} ms  "
            f"p95 {result['p95_ms']:.2f} ms  raw SpiffWorkflow {raw.median_ms():.2f} ms  "
            f"ratio {result['median_ms'] / raw.median_ms():.2f}  "
            f"starts {result['instances_per_s']:.0f}/s  "
            f"state after 50 rework loops {result['state_after_50_loops_kb']:.1f} KiB"
        )
    raw = RawSpiff()
    floor = database_floor(pg_url, args.completions, raw)
    print(
        f"PostgreSQL floor   the same lock, writes, audit event and commit on the bare "
        f"driver: median {floor['median_ms']:.2f} ms  raw SpiffWorkflow {raw.median_ms():.2f}"
        f" ms  (raw + floor) / raw = {(raw.median_ms() + floor['median_ms']) / raw.median_ms():.2f}"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
