"""Helpers for engine tests: deploy fixtures, find tasks, drive an instance to its end."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from app.auth.services import find_user_by_email
from app.core.extensions import db
from app.engine import services
from app.engine.handlers import service_handler
from app.engine.models import HumanTask, InstanceStatus, ProcessInstance, TaskStatus

FIXTURES = Path(__file__).parent / "fixtures" / "bpmn"

# Handlers named by the fixtures (registered once, at import).
handler_calls: list[str] = []
flaky = {"failures_left": 0}


@service_handler("test_reference")
def _reference(context):
    handler_calls.append(f"reference:{context.instance_id}")
    return {"reference": f"{context.properties.get('prefix', 'REF')}-{context.instance_id}"}


@service_handler("test_flaky_send")
def _flaky_send(context):
    handler_calls.append(f"send:{context.instance_id}")
    if flaky["failures_left"] > 0:
        flaky["failures_left"] -= 1
        raise ConnectionError("serveur SMTP injoignable")
    return {"sent": True}


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def deploy_fixtures(*names: str, actor=None):
    """Deploy fixture files in one upload; returns the Deployed results."""
    return services.deploy([(n, fixture_bytes(n)) for n in names], actor)


def open_tasks(instance_id: int) -> list[HumanTask]:
    return list(
        db.session.execute(
            select(HumanTask)
            .where(HumanTask.instance_id == instance_id, HumanTask.status == TaskStatus.OPEN)
            .order_by(HumanTask.id)
        ).scalars()
    )


def open_task(instance_id: int, element_id: str | None = None) -> HumanTask:
    tasks = [t for t in open_tasks(instance_id) if element_id in (None, t.element_id)]
    assert len(tasks) == 1, [t.element_id for t in open_tasks(instance_id)]
    return tasks[0]


def drive_to_end(
    instance_id: int, admin_email: str, answers: dict[str, dict] | None = None, max_steps: int = 50
) -> ProcessInstance:
    """Complete open tasks as an admin (with ``answers`` per element id) until the end."""
    admin = find_user_by_email(admin_email)
    answers = answers or {}
    for _ in range(max_steps):
        instance = db.session.get(ProcessInstance, instance_id)
        db.session.refresh(instance)
        if instance.status != InstanceStatus.RUNNING:
            return instance
        tasks = open_tasks(instance_id)
        assert tasks, f"instance {instance_id} waits for something else than a human task"
        for task in tasks:
            services.complete_task(task.id, answers.get(task.element_id, {}), admin)
    raise AssertionError("the instance did not finish")
