"""A transaction that only read ends with a COMMIT on PostgreSQL (psycopg keeps the
statements it prepared on that connection; a ROLLBACK makes it forget them all), and any
sign of a write — flushed, pending, sent by Core or around SQLAlchemy — keeps the
rollback."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select, text

from app.auth.models import Group
from app.auth.services import create_group
from app.core import audit
from app.core.db import end_read_only_transaction
from app.core.extensions import db
from tests.conftest import login


@contextmanager
def endings(engine=None):
    """How transactions end on the engine meanwhile (``commit`` or ``rollback``)."""
    engine = engine or db.engine
    seen: list[str] = []

    def commit(connection):
        seen.append("commit")

    def rollback(connection):
        seen.append("rollback")

    event.listen(engine, "commit", commit)
    event.listen(engine, "rollback", rollback)
    try:
        yield seen
    finally:
        event.remove(engine, "commit", commit)
        event.remove(engine, "rollback", rollback)


def _postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


def test_a_transaction_that_only_read_is_committed_on_postgresql(app):
    with app.app_context():
        create_group(name="lecture", label="Lecture")
        db.session.execute(select(func.count()).select_from(Group)).scalar()
        with endings() as seen:
            ended = end_read_only_transaction()
        assert ended is _postgresql()
        assert seen == (["commit"] if _postgresql() else [])
        assert not end_read_only_transaction()  # nothing left to end
        group = db.session.execute(select(Group).filter_by(name="lecture")).scalar_one()
        end_read_only_transaction()
        db.session.remove()
    assert group.label == "Lecture"  # still readable once the session is gone, as after a rollback


def test_a_flushed_write_is_never_committed_by_it(app):
    with app.app_context():
        db.session.add(Group(name="brouillon", label="Brouillon"))
        db.session.flush()
        assert not end_read_only_transaction()
        db.session.remove()
        assert db.session.execute(select(Group).filter_by(name="brouillon")).first() is None


def test_a_pending_change_is_never_committed_by_it(app):
    with app.app_context():
        db.session.execute(select(func.count()).select_from(Group)).scalar()
        with db.session.no_autoflush:
            db.session.add(Group(name="en-attente", label="En attente"))
            assert not end_read_only_transaction()
        db.session.remove()
        assert db.session.execute(select(Group).filter_by(name="en-attente")).first() is None


def test_a_core_write_is_never_committed_by_it(app):
    with app.app_context():
        db.session.execute(text("INSERT INTO user_group (name, label) VALUES ('core', 'Core')"))
        assert not end_read_only_transaction()
        db.session.remove()
        assert db.session.execute(select(Group).filter_by(name="core")).first() is None


@pytest.mark.postgresql  # SQLite has no data-changing WITH
def test_a_query_that_changes_data_in_a_with_clause_counts_as_a_write(app):
    with app.app_context():
        db.session.execute(
            text(
                "WITH made AS (INSERT INTO user_group (name, label) VALUES ('cte', 'CTE') "
                "RETURNING id) SELECT id FROM made"
            )
        ).all()
        assert not end_read_only_transaction()
        db.session.remove()
        assert db.session.execute(select(Group).filter_by(name="cte")).first() is None


def test_a_write_sent_around_sqlalchemy_is_never_committed_by_it(app):
    # On PostgreSQL the audit trail appends through the driver's pipeline, unseen by
    # SQLAlchemy's events: it says so itself.
    with app.app_context():
        audit.record("test.pipeline")
        assert not end_read_only_transaction()
        db.session.remove()
        assert db.session.execute(select(audit.AuditEvent)).first() is None


def test_a_page_view_ends_its_transaction_with_a_commit_on_postgresql(app, client, make_user):
    with app.app_context():
        create_group(name="courrier", label="Courrier")
    email = make_user(groups=["courrier"])
    login(client, email)
    with app.app_context():
        engine, postgresql = db.engine, _postgresql()
    with endings(engine) as seen:
        response = client.get("/")  # a request of its own: its own context and teardown
    assert response.status_code == 200
    assert seen[-1:] == (["commit"] if postgresql else ["rollback"])
