"""Contact search at scale: p50/p95 on PostgreSQL and SQLite, against the bare SQL query.

    .venv/bin/python bench/contacts.py --size 1000000 \
        --postgresql postgresql://postgres@127.0.0.1:5432/bench_contacts \
        --sqlite /tmp/bench_contacts.db

For each database: loads ``--size`` generated Loire-Atlantique contacts (once: a database
that already holds them is reused), then times ``search_contacts`` (the application path:
tiers, ORM objects, 20 results) for a surname, a misspelt surname and a postal code, and the
bare SQL query a hand-written search would send for the same rows, in the same run. Prints
p50/p95 in ms, the ratio application/bare SQL, and the peak memory of the process.
Not a test; the PostgreSQL target is p95 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MISSIVE_HUEY_DB", str(Path(tempfile.gettempdir()) / "bench-huey.db"))

from flask_migrate import upgrade
from sqlalchemy import create_engine, func, select, text

from app import create_app
from app.contacts.models import Contact
from app.core.extensions import db

QUERIES = {
    "surname": ["martin", "lefebvre", "gicquel", "le goff", "rialland"],
    "misspelt surname": ["lefevbre", "giquel", "rialand", "chevallier", "boulenger"],
    "postal code": ["44000", "44600", "44190", "44300", "44850"],
}
BATCH = 50_000


def bare_sql(kind: str, q: str, dialect: str) -> tuple[str, dict]:
    """The hand-written query returning the same first page (what the ratio compares to)."""
    columns = (
        "id, kind, civility, first_name, last_name, organisation_name, email, phone, "
        "postal_code, city, search_name"
    )
    if kind == "surname":
        return (
            f"SELECT {columns} FROM contact WHERE status = 'active' AND search_name >= :q "
            "AND search_name < :end ORDER BY search_name, id LIMIT 21",
            {"q": q, "end": q + "~"},
        )
    if kind == "misspelt surname":  # 1) correct the word in the dictionary (see run_bare)
        if dialect == "postgresql":
            return (
                "SELECT word FROM contact_search_word WHERE word % :q ORDER BY word <-> :q LIMIT 5",
                {"q": q},
            )
        return (
            "SELECT word FROM contact_search_word WHERE word >= :p AND word < :e "
            "AND missive_ratio(:q, word) >= 0.7 ORDER BY missive_ratio(:q, word) DESC "
            "LIMIT 5",
            {"q": q, "p": q[0], "e": q[0] + "~"},
        )
    return (
        f"SELECT {columns} FROM contact WHERE status = 'active' AND postal_code = :q "
        "ORDER BY search_name, id LIMIT 21",
        {"q": q},
    )


def run_bare(cursor, kind: str, q: str, dialect: str) -> list:
    """Execute the hand-written query (two for a misspelt name: dictionary, then names)."""
    sql, params = bare_sql(kind, q, dialect)
    cursor.execute(_driver(sql, dialect), params)
    rows = cursor.fetchall()
    if kind != "misspelt surname":
        return rows
    columns = (
        "id, kind, civility, first_name, last_name, organisation_name, email, phone, "
        "postal_code, city, search_name"
    )
    found: list = []
    for (word,) in rows:  # 2) the names starting with each corrected word, closest first
        if word == q:
            continue
        cursor.execute(
            _driver(
                f"SELECT {columns} FROM contact WHERE status = 'active' AND search_name >= :w "
                "AND search_name < :b ORDER BY search_name, id LIMIT :n",
                dialect,
            ),
            {"w": word, "b": word + " ~", "n": 21 - len(found)},
        )
        found += cursor.fetchall()
        if len(found) > 20:
            break
    return found


def _driver(sql: str, dialect: str) -> str:
    if dialect == "postgresql":  # psycopg's placeholders, % escaped
        return re.sub(r":(\w+)", r"%(\1)s", sql.replace("%", "%%"))
    return sql


def make_application(url: str):
    app = create_app(
        {
            "MISSIVE_ENV": "testing",
            "SQLALCHEMY_DATABASE_URI": url,
            "MISSIVE_STORAGE": tempfile.mkdtemp(prefix="bench-storage-"),
        }
    )
    with app.app_context():
        upgrade()
    return app


def ensure_postgresql_database(url: str) -> None:
    """Create the bench database if missing (never the test databases)."""
    base, name = url.rsplit("/", 1)
    engine = create_engine(
        base.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
        isolation_level="AUTOCOMMIT",
    )
    with engine.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def copy_rows(table, rows: list[dict]) -> None:
    """PostgreSQL's COPY: what a bulk import of a million records uses."""
    if not rows:
        return
    columns = list(rows[0])
    connection = db.session.connection().connection.dbapi_connection
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([_plain(row[c]) for c in columns])


def _plain(value):
    return value.value if hasattr(value, "value") else value


def load(app, size: int) -> float:
    from app.contacts.demo import generate

    with app.app_context():
        present = db.session.scalar(select(func.count()).select_from(Contact))
        if present >= size:
            print(f"  {present} contacts already loaded", flush=True)
            return 0.0
        started = time.perf_counter()
        postgresql = db.engine.dialect.name == "postgresql"
        if postgresql:  # building the trigram index once is faster than maintaining it
            db.session.execute(text("DROP INDEX IF EXISTS ix_contact_search_name"))
            db.session.commit()
        batch_index = 0
        while present < size:
            count = min(BATCH, size - present)
            generate(
                count,
                seed=1000 + present,
                email_prefix="bench",
                write=copy_rows if postgresql else None,
            )
            db.session.commit()
            present += count
            batch_index += 1
            if batch_index % 4 == 0:
                print(f"  {present} contacts", flush=True)
        if postgresql:
            db.session.execute(
                text(
                    "CREATE INDEX ix_contact_search_name ON contact "
                    "USING gin (search_name gin_trgm_ops)"
                )
            )
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        return time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(app, repeat: int) -> list[dict]:
    from app.contacts.search import search_contacts

    results = []
    with app.app_context():
        dialect = db.engine.dialect.name
        raw = db.engine.raw_connection()
        for kind, queries in QUERIES.items():
            app_times, sql_times, found = [], [], 0
            for q in queries:  # warm-up: caches and plans, both paths
                search_contacts(q, limit=20)
                db.session.rollback()
            for _ in range(repeat):
                for q in queries:
                    started = time.perf_counter()
                    page = search_contacts(q, limit=20)
                    app_times.append((time.perf_counter() - started) * 1000)
                    found += len(page.items)
                    db.session.rollback()
                    started = time.perf_counter()
                    cursor = raw.cursor()
                    if dialect == "postgresql":
                        cursor.execute("SET pg_trgm.similarity_threshold = 0.45")
                    run_bare(cursor, kind, q, dialect)
                    cursor.close()
                    sql_times.append((time.perf_counter() - started) * 1000)
            raw.rollback()
            results.append(
                {
                    "kind": kind,
                    "p50": statistics.median(app_times),
                    "p95": percentile(app_times, 0.95),
                    "sql_p50": statistics.median(sql_times),
                    "sql_p95": percentile(sql_times, 0.95),
                    "found": found / (repeat * len(queries)),
                }
            )
        raw.close()
    return results


def run(label: str, url: str, size: int, repeat: int) -> None:
    print(f"{label}: {url}", flush=True)
    app = make_application(url)
    seconds = load(app, size)
    if seconds:
        print(f"  loaded {size} contacts in {seconds:.0f} s", flush=True)
    rows = measure(app, repeat)
    # Allocations are traced in a separate round: tracing slows Python down severalfold.
    tracemalloc.start()
    measure(app, 1)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"  {'query':<18} {'p50 ms':>8} {'p95 ms':>8} {'SQL p50':>8} {'SQL p95':>8} "
        f"{'ratio p50':>9} {'results':>7}"
    )
    for row in rows:
        print(
            f"  {row['kind']:<18} {row['p50']:8.1f} {row['p95']:8.1f} {row['sql_p50']:8.1f} "
            f"{row['sql_p95']:8.1f} {row['p50'] / max(row['sql_p50'], 0.001):9.2f} "
            f"{row['found']:7.1f}"
        )
    print(
        f"  peak Python allocations while searching: {peak / 1e6:.1f} MB; "
        f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20, help="rounds of the 5 queries each")
    parser.add_argument("--postgresql", help="PostgreSQL URL of a bench database")
    parser.add_argument("--sqlite", help="SQLite file")
    args = parser.parse_args()
    if not args.postgresql and not args.sqlite:
        parser.error("give --postgresql URL and/or --sqlite FILE")
    if args.postgresql:
        if args.postgresql.rsplit("/", 1)[1] in {"test", "postgres"} or args.postgresql.rsplit(
            "/", 1
        )[1].startswith("test_"):
            parser.error("use a database of its own (e.g. bench_contacts)")
        ensure_postgresql_database(args.postgresql)
        run(
            "PostgreSQL",
            args.postgresql.replace("postgresql://", "postgresql+psycopg://"),
            args.size,
            args.repeat,
        )
    if args.sqlite:
        run("SQLite", f"sqlite:///{Path(args.sqlite).resolve()}", args.size, args.repeat)


if __name__ == "__main__":
    main()
