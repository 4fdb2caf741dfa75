"""Database helpers shared by every domain: column types, clock, dialect switches."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, TypeDecorator, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement, Select
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean

from app.core.extensions import db


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC (the only clock services read)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always returned timezone-aware, on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused; use app.core.db.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def enum_type(enum_class: type, name: str, length: int = 20) -> Enum:
    """A portable column type for a StrEnum: its values stored in a VARCHAR."""
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
    )


class in_values(ColumnElement):
    """``column IN (subquery)`` for a short list of values read beforehand: on PostgreSQL
    ``column = ANY(ARRAY(subquery))``, which the planner runs once on its own instead of
    planning a join (in a statement of many ranges, planning that join costs more than
    running it); elsewhere the plain ``IN``."""

    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True  # a condition already: SQLite needs no « = 1 » after it
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column, values: Select):
        self.column = column
        self.values = values.scalar_subquery()


@compiles(in_values)
def _in_values(element, compiler, **kw):
    return compiler.process(element.column.in_(element.values.element), **kw)


@compiles(in_values, "postgresql")
def _in_values_postgresql(element, compiler, **kw):
    column = compiler.process(element.column, **kw)
    return f"{column} = ANY(ARRAY({compiler.process(element.values, **kw)}))"


def is_postgresql() -> bool:
    """True when the bound database is PostgreSQL."""
    return db.engine.dialect.name == "postgresql"


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # Let SQLAlchemy emit BEGIN itself (below) instead of pysqlite's deferred BEGIN.
    dbapi_connection.isolation_level = None


@event.listens_for(Engine, "begin")
def _sqlite_begin_immediate(connection):
    # A deferred transaction that later writes fails at once with "database is locked"
    # instead of waiting; taking the write lock up front makes SQLite writers queue.
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# Tables the migrations create that SQLAlchemy's metadata cannot describe: SQLite FTS5
# virtual tables and their shadow tables. Alembic's comparison leaves them alone.
UNMAPPED_TABLE_PREFIXES = ("correspondence_fts",)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic filter: skip the unmapped tables above when comparing models and database."""
    return not (
        type_ == "table"
        and reflected
        and compare_to is None
        and name.startswith(UNMAPPED_TABLE_PREFIXES)
    )


# --- ending a transaction that only read -------------------------------------------------
#
# psycopg forgets every statement it prepared when a transaction rolls back (and sends a
# DEALLOCATE ALL), so a request ended by the usual rollback makes the next request on that
# connection plan its statements again. A request that only read ends its transaction with
# a COMMIT instead — the same effect on the data — and its connection keeps them.

_WROTE = "missive.transaction_wrote"
_CONNECTION = "missive.transaction_connection"
# One plain query — SELECT, or WITH without a data-changing clause — only reads (its
# locks, if any, end with the transaction either way); anything else counts as a write.
_QUERY = re.compile(r"\s*(?:SELECT|WITH)\b[^;]*\Z", re.IGNORECASE)
_CHANGE = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE|TRUNCATE|COPY)\b", re.IGNORECASE)


@event.listens_for(Engine, "begin")
def _transaction_begins(connection) -> None:
    connection.info[_WROTE] = False


@event.listens_for(Engine, "before_cursor_execute")
def _note_writes(connection, cursor, statement, parameters, context, executemany) -> None:
    if connection.info.get(_WROTE):
        return
    if not _QUERY.match(statement) or _CHANGE.search(statement):
        connection.info[_WROTE] = True


def note_write(connection) -> None:
    """Record that statements sent around SQLAlchemy (a driver pipeline) wrote."""
    connection.info[_WROTE] = True


def run_pipeline(connection, statements: list[tuple[Any, Any]]) -> list[tuple | None]:
    """Send writing statements to PostgreSQL in one round trip (psycopg's pipeline mode),
    in the transaction of ``connection`` (a SQLAlchemy connection); return the first row
    of each (None for those that return none)."""
    note_write(connection)
    driver = connection.connection.driver_connection
    cursors = [driver.cursor() for _ in statements]
    try:
        with driver.pipeline():
            for cursor, (query, params) in zip(cursors, statements, strict=True):
                cursor.execute(query, params)
        return [cursor.fetchone() if cursor.description else None for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


@event.listens_for(Session, "after_begin")
def _remember_connection(session, transaction, connection) -> None:
    session.info[_CONNECTION] = connection


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_connection(session, *args) -> None:
    session.info.pop(_CONNECTION, None)


def end_read_only_transaction() -> bool:
    """Commit the session's transaction if it only read and holds no pending change
    (PostgreSQL; see above). Return True when it did; otherwise the caller's rollback
    ends it as usual."""
    session = db.session()
    connection = session.info.get(_CONNECTION)
    if connection is None or connection.dialect.name != "postgresql":
        return False
    if connection.info.get(_WROTE, True) or session.new or session.dirty or session.deleted:
        return False
    # Nothing changed: the objects loaded stay as valid as the rollback would leave them.
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    finally:
        session.expire_on_commit = expire
    return True
