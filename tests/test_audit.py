"""The audit trail is hash-chained and append-only."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from app.core import audit
from app.core.extensions import db


def test_chain_of_events_verifies(app):
    with app.app_context():
        for i in range(5):
            audit.record("test.event", object_type="thing", object_id=i, data={"n": i})
        db.session.commit()
        assert audit.verify_chain() == []
        events = audit.events_for("thing", 3)
        assert [e.data["n"] for e in events] == [3]


def test_database_refuses_to_change_a_past_event(app):
    with app.app_context():
        audit.record("test.event", data={"amount": 10})
        db.session.commit()
        with pytest.raises(DatabaseError):
            db.session.execute(text("UPDATE audit_event SET data = '{}'"))
        db.session.rollback()


def test_forged_event_inserted_behind_the_services_back_is_detected(app):
    with app.app_context():
        audit.record("test.event")
        db.session.commit()
        last = db.session.execute(text("SELECT hash FROM audit_event")).scalar()
        db.session.execute(
            text(
                "INSERT INTO audit_event (at, action, data, prev_hash, hash) "
                "VALUES (:at, 'forged', '{}', :prev, :hash)"
            ),
            {"at": "2026-01-01 00:00:00", "prev": last, "hash": "f" * 64},
        )
        db.session.commit()
        broken = audit.verify_chain()
    assert len(broken) == 1
