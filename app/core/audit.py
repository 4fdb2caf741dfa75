"""The audit trail: append-only, hash-chained events of who did what."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, NamedTuple

from flask import has_request_context, request
from sqlalchemy import ForeignKey, String, event, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.db import JSONType, UTCDateTime, run_pipeline, utcnow
from app.core.extensions import db

GENESIS = "0" * 64
_TAIL = "missive.audit_tail"


class AuditEvent(db.Model):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(80), index=True)
    object_type: Mapped[str | None] = mapped_column(String(60))
    object_id: Mapped[str | None] = mapped_column(String(80))
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (db.Index("ix_audit_event_object", "object_type", "object_id"),)


class Link(NamedTuple):
    """Where an appended event sits in the chain."""

    prev_hash: str
    hash: str


def _payload(
    prev_hash: str,
    at: datetime,
    actor_id: int | None,
    action: str,
    object_type: str | None,
    object_id: str | None,
    data: dict,
) -> str:
    return json.dumps(
        [prev_hash, at.isoformat(), actor_id, action, object_type, object_id, data],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
        separators=(",", ":"),
    )


def _digest(prev_hash: str, *args: Any, **kwargs: Any) -> str:
    return hashlib.sha256(_payload(prev_hash, *args, **kwargs).encode()).hexdigest()


def record(
    action: str,
    *,
    actor: Any = None,
    object_type: str | None = None,
    object_id: Any = None,
    data: dict | None = None,
) -> Link:
    """Append an event to the chain inside the caller's transaction (written now)."""
    return append(
        entry(action, actor=actor, object_type=object_type, object_id=object_id, data=data)
    )


def entry(
    action: str,
    *,
    actor: Any = None,
    object_type: str | None = None,
    object_id: Any = None,
    data: dict | None = None,
) -> dict:
    """An event's columns, not yet linked to the chain (see ``append``)."""
    return {
        "at": utcnow(),
        "actor_id": getattr(actor, "id", actor) if actor is not None else None,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "data": json.loads(json.dumps(data or {}, default=str)),
        "ip": request.remote_addr if has_request_context() else None,
    }


def append(columns: dict) -> Link:
    """Link an event (``entry``'s columns) to the chain's end and write it."""
    session = db.session()
    if db.engine.dialect.name == "postgresql":
        rows = run_pipeline(session.connection(), pipeline_statements(session, columns))
        return appended(session, rows[-1])
    row = _link(session, columns)
    session.connection().execute(_INSERT, row)
    return Link(row["prev_hash"], row["hash"])


def record_many(events: list[dict]) -> None:
    """Append events (each with ``record``'s arguments) to the chain inside the caller's
    transaction, in that order, with one statement: for a batch of registrations."""
    if not events:
        return
    session = db.session()
    rows = [_link(session, entry(**each)) for each in events]
    session.execute(insert(AuditEvent), rows)


def _link(session: Session, columns: dict) -> dict:
    """The columns of the next event of the chain; it becomes the chain's end."""
    previous = session.info.get(_TAIL)
    if previous is None:
        previous = _chain_tail(session)
    digest = _digest(previous, **{k: columns[k] for k in _HASHED})
    session.info[_TAIL] = digest
    return {**columns, "prev_hash": previous, "hash": digest}


_HASHED = ("at", "actor_id", "action", "object_type", "object_id", "data")
_INSERT = insert(AuditEvent.__table__)

# On PostgreSQL an event is appended in one round trip, or inside a caller's pipeline:
# the chain lock (first event of the transaction only), then, as a statement of its own —
# so that it sees what the lock's previous holder committed — the insert that reads the
# chain's end and hashes the event on the server. The payload hashed is ``_digest``'s: the
# JSON list whose first item is the previous hash (hex: nothing to escape) followed by the
# items Python serialised.
# 7310001 is the advisory lock key that serialises chain appends.
_PG_LOCK = "SELECT pg_advisory_xact_lock(7310001)"
_PG_APPEND = (
    "INSERT INTO audit_event "
    "(at, actor_id, action, object_type, object_id, data, ip, prev_hash, hash) "
    "SELECT %(at)s::timestamptz, %(actor_id)s::integer, %(action)s::varchar, "
    "%(object_type)s::varchar, %(object_id)s::varchar, %(data)s::jsonb, %(ip)s::varchar, "
    "tail.prev, encode(sha256(convert_to('[\"' || tail.prev || '\",' || %(rest)s::text, "
    "'UTF8')), 'hex') FROM (SELECT coalesce((SELECT hash FROM audit_event ORDER BY id DESC "
    "LIMIT 1), %(genesis)s::varchar) AS prev) AS tail RETURNING prev_hash, hash"
)


def pipeline_statements(session: Session, columns: dict) -> list[tuple[str, dict | None]]:
    """The statements that append an event on PostgreSQL, for a caller's pipeline; the
    last one returns the row to give ``appended``."""
    from psycopg.types.json import Jsonb

    rest = _payload("", **{k: columns[k] for k in _HASHED})[len('["",') :]
    params = {**columns, "data": Jsonb(columns["data"]), "rest": rest, "genesis": GENESIS}
    append = (_PG_APPEND, params)
    return [append] if session.info.get(_TAIL) is not None else [(_PG_LOCK, None), append]


def appended(session: Session, row) -> Link:
    """Remember the chain's new end once ``pipeline_statements`` have run."""
    link = Link(*row)
    session.info[_TAIL] = link.hash
    return link


_PG_TAIL = "SELECT hash FROM audit_event ORDER BY id DESC LIMIT 1"
_TAIL_QUERY = select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)


def _chain_tail(session: Session) -> str:
    """Take the chain lock (PostgreSQL) and return the hash of the last event.

    Lock first, then read the chain's end in a statement of its own: under READ COMMITTED
    only a statement started after the lock sees the previous holder's event. On
    PostgreSQL both go in one pipeline (one round trip).
    """
    if db.engine.dialect.name != "postgresql":  # SQLite: the transaction holds the write lock
        return session.execute(_TAIL_QUERY).scalar() or GENESIS
    row = run_pipeline(session.connection(), [(_PG_LOCK, None), (_PG_TAIL, None)])[-1]
    return row[0] if row else GENESIS


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
@event.listens_for(Session, "after_soft_rollback")
def _forget_tail(session, *args) -> None:
    # The tail (and the chain lock) only hold inside the transaction that read them.
    session.info.pop(_TAIL, None)


def verify_chain() -> list[int]:
    """Return the ids of events whose hash or link is wrong (empty when the chain is intact)."""
    broken: list[int] = []
    previous = GENESIS
    for entry in db.session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars():
        expected = _digest(
            entry.prev_hash,
            entry.at,
            entry.actor_id,
            entry.action,
            entry.object_type,
            entry.object_id,
            entry.data,
        )
        if entry.prev_hash != previous or entry.hash != expected:
            broken.append(entry.id)
        previous = entry.hash
    return broken


def events_for(object_type: str, object_id: Any, limit: int = 200) -> list[AuditEvent]:
    """Return the latest events about one object, newest first."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.object_type == object_type, AuditEvent.object_id == str(object_id))
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    return list(db.session.execute(stmt).scalars())
