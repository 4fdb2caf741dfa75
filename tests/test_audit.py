"""The audit trail is hash-chained and append-only."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from app.auth.services import find_user_by_email
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


def test_hash_computed_where_the_event_is_written_matches_the_verifier(app, make_user):
    # PostgreSQL hashes an event on the server (one round trip per event): any text the
    # JSON payload may carry must give the same digest as Python's verifier.
    awkward = {
        "objet": "Réponse à l'usager « Dupont » — 10 € ; 日本",
        "quote": 'il a dit "non"',
        "backslash": "C:\\dossier\\n",
        "percent": "100 %s %(x)s",
        "emoji": "📨",
        "nested": {"b": [1, 2.5, None, True], "a": "x"},
    }
    email = make_user(email="auditeur@example.test")
    with app.app_context():
        actor = find_user_by_email(email)
        first = audit.record("test.awkward", actor=actor, object_type="t", object_id="o'1")
        second = audit.record("test.awkward", data=awkward, object_type="t", object_id=2)
        audit.record_many([{"action": "test.batch", "data": {"n": n}} for n in range(2)])
        third = audit.record("test.after_batch", data=awkward)
        db.session.commit()
        assert second.prev_hash == first.hash
        assert third.prev_hash != second.hash  # the batch sits in between
        assert audit.verify_chain() == []
        stored = audit.events_for("t", 2)[0]
        assert stored.data == awkward and stored.hash == second.hash


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


@pytest.mark.postgresql
def test_writer_waiting_for_the_chain_lock_links_to_the_event_committed_meanwhile(app):
    import threading

    first_flushed, release_first = threading.Event(), threading.Event()
    hashes: dict[str, str] = {}

    def first() -> None:
        with app.app_context():
            hashes["first"] = audit.record("test.first").hash
            db.session.flush()
            first_flushed.set()
            release_first.wait(timeout=30)
            db.session.commit()
            db.session.remove()

    def second() -> None:
        with app.app_context():
            first_flushed.wait(timeout=30)
            hashes["second_prev"] = audit.record("test.second").prev_hash  # waits for the lock
            db.session.commit()
            db.session.remove()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_flushed.wait(timeout=30)
    threads[1].join(timeout=0.5)  # the second writer is now queued on the chain lock
    assert threads[1].is_alive()
    release_first.set()
    for thread in threads:
        thread.join(timeout=30)
    assert hashes["second_prev"] == hashes["first"]
    with app.app_context():
        assert audit.verify_chain() == []
