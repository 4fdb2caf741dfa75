"""What one task completion costs: statements sent to the database, work done once per version.

The numbers are a guard against regressions (issue #3): a change that adds a query to every
completion makes these tests fail and has to say why in the test.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import delete, event

from app.auth.models import group_membership
from app.auth.services import create_group, find_user_by_email
from app.core.errors import PermissionDenied, ValidationFailed
from app.core.extensions import db
from app.engine import runtime, services
from app.engine.models import ProcessVersion, TaskStatus
from tests.engine_helpers import deploy_fixtures, open_task

DRAFT = {"subject": "Réponse à la demande", "signataire": "signataire@example.test"}
# SQLite: lock task + instance + version; user + groups; close the task; drop its
# candidates; insert the next task; insert its candidate; update the instance; BEGIN
# IMMEDIATE; the chain's end; the audit event.
# PostgreSQL, in round trips: lock task + instance + version; user + groups; one pipeline
# with the save's writes, the audit chain's lock and the audit insert that reads its end.
ROUND_TRIPS_PER_COMPLETION = {"postgresql": 3, "sqlite": 10}


@pytest.fixture
def agent(app, make_user):
    with app.app_context():
        create_group(name="redaction", label="Rédaction")
        create_group(name="dgs", label="DGS")
    return make_user(groups=["redaction"], email="agent@example.test")


@contextmanager
def statements(monkeypatch=None):
    """The statements sent through SQLAlchemy, and one entry per pipeline of the save."""
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    if monkeypatch is not None:
        write_pg = runtime._write_pg

        def pipeline(*args, **kwargs):
            seen.append("-- pipeline: the save's writes and its audit event")
            return write_pg(*args, **kwargs)

        monkeypatch.setattr(runtime, "_write_pg", pipeline)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def _started(agent_email: str):
    deploy_fixtures("camunda_approval.bpmn")
    user = find_user_by_email(agent_email)
    instance = services.start_instance("approbation_simple", {"subject": "Demande"}, user)
    return user, open_task(instance.id)


def test_a_completion_costs_a_fixed_small_number_of_round_trips(app, agent, monkeypatch):
    with app.app_context():
        user, task = _started(agent)
        task_id = task.id
        db.session.commit()  # the user object is expired, as it is for a worker or a script
        with statements(monkeypatch) as seen:
            services.complete_task(task_id, DRAFT, user)
        assert open_task(task.instance_id).element_id == "Task_visa"
        dialect = db.engine.dialect.name
        assert len(seen) == ROUND_TRIPS_PER_COMPLETION[dialect], "\n".join(seen)
        # the groups come with the user row, not in a query of their own
        assert not [s for s in seen if s.lstrip().startswith("SELECT user_group")]


def test_a_user_removed_from_a_group_meanwhile_can_no_longer_complete_its_tasks(app, agent):
    with app.app_context():
        user, task = _started(agent)
        task_id = task.id
        db.session.execute(delete(group_membership))  # another process edits the account
        db.session.commit()
        with pytest.raises(PermissionDenied):
            services.complete_task(task_id, DRAFT, user)
        db.session.rollback()
        assert open_task(task.instance_id).status == TaskStatus.OPEN


def test_form_validators_are_compiled_once_per_version_and_form(app, agent):
    with app.app_context():
        user, task = _started(agent)
        version = task.instance.version
        first = runtime.form_validator(version, "redaction")
        assert runtime.form_validator(version, "redaction") is first
        assert runtime.form_validator(version, "visa") is not first
        assert runtime.form_validator(version, None) is None
        assert runtime.form_validator(version, "inconnu") is None
        with pytest.raises(ValidationFailed):
            services.complete_task(task.id, {"subject": "x"}, user)  # minLength 3


def test_a_reused_version_id_with_other_content_gets_its_own_validator(app, agent):
    with app.app_context():
        _user, task = _started(agent)
        version = task.instance.version
        kept = runtime.form_validator(version, "redaction")
        # a restored database may give the same id to other content: never the same hash
        other = ProcessVersion(
            id=version.id,
            content_hash="0" * 64,
            forms={"redaction": {"type": "object", "required": ["autre"]}},
        )
        validator = runtime.form_validator(other, "redaction")
        assert validator is not kept
        assert not validator.is_valid({"subject": "Demande"})
        assert kept.is_valid({"subject": "Demande"})
