"""What the engine keeps on its task rows for the inbox: sort keys, basket flags and the
search text copied onto candidates, in step when the task changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.extensions import db
from app.engine import services as engine
from app.engine.models import NO_DUE_DATE, TaskCandidate
from tests.inbox_support import make_agents, start_case, user


@pytest.fixture
def agents(app, make_user):
    return make_agents(app, make_user)


def candidates(task_id):
    return list(
        db.session.execute(select(TaskCandidate).where(TaskCandidate.task_id == task_id)).scalars()
    )


def test_new_task_copies_due_order_and_search_text_onto_its_candidates(app, agents):
    with app.app_context():
        dated = engine.get_task(start_case(due="P3D", subject="Aide à domicile"))
        [candidate] = candidates(dated.id)
        assert dated.due_sort == dated.due_at
        assert (candidate.due_sort, candidate.unclaimed) == (dated.due_at, True)
        assert "aide a domicile" in candidate.search_text == dated.search_text
        undated = engine.get_task(start_case(due=None))
        assert undated.due_at is None and undated.due_sort == NO_DUE_DATE
        assert candidates(undated.id)[0].due_sort == NO_DUE_DATE


def test_a_changed_due_date_moves_the_task_in_its_baskets(app, agents):
    with app.app_context():
        task = engine.get_task(start_case(due="P3D"))
        later = task.due_at + timedelta(days=10)
        task.due_at = later
        db.session.commit()
        assert engine.get_task(task.id).due_sort == later
        assert candidates(task.id)[0].due_sort == later


def test_candidates_of_a_completed_task_are_gone(app, agents):
    from app.inbox import services

    with app.app_context():
        task_id = start_case()
        alice = user(agents.alice)
        services.claim(task_id, alice)
        services.complete(task_id, {"decision": "accord", "reponse": "Accord donné."}, alice)
        assert candidates(task_id) == []


def test_search_text_is_capped_for_the_indexes(app, agents):
    with app.app_context():
        task = engine.get_task(start_case(subject="x" * 5000))
        assert len(task.search_text) == 1000
        assert len(candidates(task.id)[0].search_text) == 1000
