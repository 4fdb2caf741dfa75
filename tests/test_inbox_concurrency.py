"""Agents acting at the same moment, against the real PostgreSQL server, in threads:
exactly one of them gets each task."""

from __future__ import annotations

import threading

import pytest

from app.core.errors import Conflict
from app.engine import services as engine
from app.inbox import services
from tests.inbox_support import make_agents, start_case, user

pytestmark = pytest.mark.postgresql

ANSWER = {"decision": "accord", "reponse": "Votre demande est accordée."}


@pytest.fixture
def agents(app, make_user):
    assert app.config["DB_BACKEND"] == "postgresql"
    return make_agents(app, make_user)


def race(app, emails: list[str], action) -> list[str]:
    """Run ``action(user)`` in one thread per agent, released together; return outcomes."""
    barrier = threading.Barrier(len(emails))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(email):
        with app.app_context():
            actor = user(email)
            barrier.wait()
            try:
                action(actor)
                result = f"won:{email}"
            except Conflict:
                result = "conflict"
            finally:
                engine.db.session.remove()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run, args=(e,)) for e in emails]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_agents_claiming_at_once_exactly_one_wins(app, agents):
    for round_ in range(5):
        with app.app_context():
            task_id = start_case(chrono=f"2026-{round_}")
        outcomes = race(app, [agents.alice, agents.bob], lambda u, t=task_id: services.claim(t, u))
        winners = [o for o in outcomes if o.startswith("won:")]
        assert len(winners) == 1 and outcomes.count("conflict") == 1, outcomes
        with app.app_context():
            assert engine.get_task(task_id).assignee.email == winners[0][4:]


def test_two_agents_completing_at_once_complete_it_once(app, agents):
    with app.app_context():
        task_id = start_case()
    outcomes = race(
        app, [agents.alice, agents.bob], lambda u: services.complete(task_id, ANSWER, u)
    )
    assert sorted(o.split(":")[0] for o in outcomes) == ["conflict", "won"], outcomes
    with app.app_context():
        task = engine.get_task(task_id)
        instance_tasks = engine.instance_tasks(task.instance)
        assert [t.element_id for t in instance_tasks] == ["Task_instruire", "Task_viser"]


def test_bulk_claims_racing_share_the_tasks_without_double_assignment(app, agents):
    with app.app_context():
        ids = [start_case(chrono=f"2026-{i}") for i in range(8)]
    results: dict[str, list] = {}

    def grab(actor):
        results[actor.email] = services.bulk("claim", ids, actor)

    race(app, [agents.alice, agents.bob, agents.denis], grab)
    for task_id in ids:
        winners = [e for e, rs in results.items() for r in rs if r.id == task_id and r.ok]
        assert len(winners) == 1, (task_id, results)
