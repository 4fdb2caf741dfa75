"""Shared helpers of the inbox tests: a small mail circuit deployed through the engine."""

from __future__ import annotations

from pathlib import Path

from app.auth.services import create_group, find_user_by_email, get_group_by_name
from app.engine import services as engine
from app.engine.models import HumanTask, TaskStatus

FIXTURES = Path(__file__).parent / "fixtures"
BPMN = FIXTURES / "bpmn" / "inbox_courrier.bpmn"
PROCESS = "inbox_courrier"


def ensure_groups(*names: str) -> None:
    """Create the functional groups the circuit names (idempotent)."""
    for name in names:
        if get_group_by_name(name) is None:
            create_group(name=name, label=name.replace("-", " ").capitalize())


def deploy() -> None:
    """Deploy the test circuit (identical content reuses the version)."""
    engine.deploy([(BPMN.name, BPMN.read_bytes())], None)


def start_case(
    initiator: str | None = None,
    *,
    group: str = "instruction",
    chrono: str = "2026-00001",
    subject: str = "Demande de subvention",
    sender_name: str = "Jeanne Martin",
    due: str | None = "P5D",
    priority: int = 50,
    validateur: str | None = None,
    **extra,
) -> int:
    """Start one case and return the id of its first task (« Instruire la demande »)."""
    ensure_groups(group)
    deploy()
    data = {
        "groupe": group,
        "chrono": chrono,
        "subject": subject,
        "sender_name": sender_name,
        "priorite": priority,
        **extra,
    }
    if due is not None:
        data["echeance"] = due
    if validateur:
        data["validateur"] = validateur
    actor = find_user_by_email(initiator) if initiator else None
    instance = engine.start_instance(PROCESS, data, actor)
    task = next(t for t in engine.instance_tasks(instance) if t.status == TaskStatus.OPEN)
    return task.id


def open_task(task_id: int) -> HumanTask:
    """Reload a task row."""
    return engine.get_task(task_id)


def user(email: str):
    """The user with that e-mail."""
    return find_user_by_email(email)


class Agents:
    """E-mails of the test agents: alice and bob (instruction), chloe (juridique),
    denis (instruction and juridique), an outsider with no group, and an admin."""

    alice = "alice.durand@example.test"
    bob = "bob.leroy@example.test"
    chloe = "chloe.petit@example.test"
    denis = "denis.roux@example.test"
    outsider = "oscar.dupuis@example.test"
    admin = "admin@example.test"


def make_agents(app, make_user) -> type[Agents]:
    """Create the groups and the agents of ``Agents``."""
    with app.app_context():
        ensure_groups("instruction", "juridique")
    make_user(groups=["instruction"], email=Agents.alice, name="Alice Durand")
    make_user(groups=["instruction"], email=Agents.bob, name="Bob Leroy")
    make_user(groups=["juridique"], email=Agents.chloe, name="Chloé Petit")
    make_user(groups=["instruction", "juridique"], email=Agents.denis, name="Denis Roux")
    make_user(email=Agents.outsider, name="Oscar Dupuis")
    make_user(role="admin", email=Agents.admin, name="Admin")
    return Agents
