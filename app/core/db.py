"""Database helpers shared by every domain: column types, clock, dialect switches."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, Enum, TypeDecorator, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

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
