"""Inbox benchmark: first page of 50 of « À traiter », « Corbeilles de mes groupes » and a
text search, over 1,000,000 human tasks, 2,000 agents and 200 groups (open and closed).

Times the service layer (``app.inbox.queries.list_tasks``: viewer resolution, query,
ORM rows) against the bare SQL of the same page run on the raw driver connection in the
same run, on PostgreSQL and SQLite, and prints p50/p95, the ratio and peak memory.
The benchmark data only is bulk-inserted directly (COPY on PostgreSQL).

    .venv/bin/python bench/inbox.py                      # both databases, full size
    .venv/bin/python bench/inbox.py --tasks 50000 --db sqlite --samples 50
    .venv/bin/python bench/inbox.py --reuse              # keep the generated data

PostgreSQL: ``--pg-url`` (default postgresql://postgres@127.0.0.1:5432/bench_inbox; the
database is created if missing). SQLite: ``--sqlite-path`` (default /tmp/bench_inbox.db).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MISSIVE_HUEY_DB", str(Path(tempfile.gettempdir()) / "bench-huey.db"))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from app import create_app  # noqa: E402
from app.auth.models import User  # noqa: E402
from app.core.db import end_read_only_transaction  # noqa: E402
from app.core.extensions import db  # noqa: E402
from app.engine.models import NO_DUE_DATE  # noqa: E402
from app.inbox import queries  # noqa: E402

SURNAMES = [
    "martin",
    "bernard",
    "thomas",
    "petit",
    "robert",
    "richard",
    "durand",
    "dubois",
    "moreau",
    "laurent",
    "simon",
    "michel",
    "lefebvre",
    "leroy",
    "roux",
    "david",
    "bertrand",
    "morel",
    "fournier",
    "girard",
    "bonnet",
    "dupont",
    "lambert",
    "fontaine",
    "rousseau",
    "vincent",
    "muller",
    "lefevre",
    "faure",
    "andre",
    "mercier",
    "blanc",
    "guerin",
    "boyer",
    "garnier",
    "chevalier",
    "francois",
    "legrand",
    "gauthier",
    "garcia",
    "perrin",
    "robin",
    "clement",
    "morin",
    "nicolas",
    "henry",
    "roussel",
    "mathieu",
    "gautier",
    "masson",
]
SUBJECTS = [
    "demande de subvention",
    "permis de voirie",
    "inscription au college",
    "aide sociale",
    "reclamation transport scolaire",
    "candidature spontanee",
    "facture",
    "attestation",
    "signalement route",
    "demande de rendez-vous",
    "recours gracieux",
    "marche public",
]
CHANNELS = ["courrier", "email", "web", "interne", "api"]
TYPES = ["courrier", "facture", "candidature", "reclamation", "note"]
# Each agent's page is timed this many times and the median kept (the machine is shared:
# this damps the scheduler's noise without hiding a slow query).
REPEAT = 3
COLUMNS = [
    "id",
    "instance_id",
    "spiff_task_id",
    "element_id",
    "name",
    "title",
    "process_key",
    "form_key",
    "lane",
    "status",
    "assignee_id",
    "priority",
    "due_at",
    "due_sort",
    "follow_up_at",
    "created_at",
    "received_at",
    "owner_id",
    "delegation_state",
    "claimed_at",
    "completed_at",
    "completed_by_id",
    "candidate_groups",
    "candidate_users",
    "metadata",
    "search_text",
    "documentation",
]


def surname_pool(rng: random.Random) -> list[str]:
    """500 distinct surnames (50 common ones with numbered variants) for senders."""
    return [f"{name}{'' if i == 0 else i}" for i in range(10) for name in SURNAMES]


# --- data -----------------------------------------------------------------------------------


def generate(app, tasks: int, users: int, groups: int, seed: int = 7) -> dict:
    """Bulk-insert the benchmark organisation and tasks; return facts for the queries."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    is_pg = db.engine.dialect.name == "postgresql"
    group_names = [f"groupe-{i:03d}" for i in range(1, groups + 1)]
    memberships: dict[int, list[str]] = {}
    members: dict[str, list[int]] = {g: [] for g in group_names}
    for uid in range(1, users + 1):
        chosen = rng.sample(group_names, rng.choice((1, 1, 2, 2, 3)))
        memberships[uid] = chosen
        for g in chosen:
            members[g].append(uid)
    for g in group_names:  # every group has someone
        if not members[g]:
            uid = rng.randint(1, users)
            members[g].append(uid)
            memberships[uid].append(g)
    senders = surname_pool(rng)
    instances = (tasks + 1) // 2

    def ts(value):
        if value is None:
            return None
        return value if is_pg else value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")

    def js(value):
        return json.dumps(value, ensure_ascii=False)

    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        writer = _pg_writer(raw) if is_pg else _sqlite_writer(cursor)
        writer(
            "user_group",
            ["id", "name", "label"],
            ((i, g, g.replace("-", " ").capitalize()) for i, g in enumerate(group_names, 1)),
        )
        writer(
            "user_account",
            ["id", "email", "name", "role", "active", "created_at", "session_version"],
            (
                (uid, f"agent{uid:04d}@bench.test", f"Agent {uid:04d}", "agent", True, ts(now), 1)
                for uid in range(1, users + 1)
            ),
        )
        group_ids = {g: i for i, g in enumerate(group_names, 1)}
        writer(
            "group_membership",
            ["group_id", "user_id"],
            ((group_ids[g], uid) for uid, gs in memberships.items() for g in gs),
        )
        writer(
            "process_definition",
            ["id", "key", "name", "active", "created_at"],
            [(1, "bench", "Banc d'essai", True, ts(now))],
        )
        writer(
            "process_version",
            [
                "id",
                "definition_id",
                "version",
                "name",
                "content_hash",
                "filename",
                "source",
                "spec",
                "forms",
                "called_versions",
                "decision_keys",
                "starters",
                "deployed_at",
            ],
            [(1, 1, 1, "Banc", "0" * 64, "bench.bpmn", "", "", "{}", "{}", "[]", "{}", ts(now))],
        )
        writer(
            "process_instance",
            [
                "id",
                "version_id",
                "process_key",
                "status",
                "title",
                "state",
                "summary",
                "lock_version",
                "started_at",
                "updated_at",
            ],
            (
                (i, 1, "bench", "running", f"Dossier {i}", "", "{}", 1, ts(now), ts(now))
                for i in range(1, instances + 1)
            ),
        )
        candidates: list[tuple] = []
        task_rows = []

        def flush_tasks():
            writer("human_task", COLUMNS, task_rows)
            task_rows.clear()

        candidate_id = 0
        for tid in range(1, tasks + 1):
            group = rng.choice(group_names)
            cgroups = [group] if rng.random() > 0.1 else [group, rng.choice(group_names)]
            cgroups = list(dict.fromkeys(cgroups))
            is_open = rng.random() < 0.35
            created = now - timedelta(days=rng.randint(0, 400), minutes=rng.randint(0, 1440))
            due = None if rng.random() < 0.1 else now + timedelta(days=rng.randint(-10, 45))
            sender = rng.choice(senders)
            chrono = f"2026-{tid:07d}"
            subject = rng.choice(SUBJECTS)
            meta = {
                "chrono": chrono,
                "subject": subject,
                "sender_name": f"Jean {sender.capitalize()}",
                "type": rng.choice(TYPES),
                "amount": rng.randint(0, 50000),
                "channel": rng.choice(CHANNELS),
            }
            search = " ".join(["instruire", chrono, subject, "jean", sender, meta["type"]])
            assignee = None
            completed_at = completed_by = claimed = None
            if is_open:
                if rng.random() < 0.6:
                    assignee = rng.choice(members[group])
                    claimed = created
            else:
                assignee = completed_by = rng.choice(members[group])
                completed_at = created + timedelta(days=rng.randint(0, 20))
            task_rows.append(
                (
                    tid,
                    (tid + 1) // 2,
                    f"{tid:036d}",
                    "Task_bench",
                    "Instruire",
                    f"{chrono} — {subject}",
                    "bench",
                    None,
                    None,
                    "open" if is_open else "completed",
                    assignee,
                    rng.choice((20, 50, 50, 70, 90)),
                    ts(due),
                    ts(due or NO_DUE_DATE),
                    None,
                    ts(created),
                    ts(created),
                    None,
                    None,
                    ts(claimed),
                    ts(completed_at),
                    completed_by,
                    js(cgroups),
                    "[]",
                    js(meta),
                    search,
                    None,
                )
            )
            if is_open:
                for g in cgroups:
                    candidate_id += 1
                    candidates.append(
                        (
                            candidate_id,
                            tid,
                            g,
                            None,
                            ts(due or NO_DUE_DATE),
                            assignee is None,
                            search,
                        )
                    )
            if len(task_rows) >= 50_000:
                flush_tasks()
        flush_tasks()
        writer(
            "task_candidate",
            ["id", "task_id", "group_name", "user_id", "due_sort", "unclaimed", "search_text"],
            candidates,
        )
        raw.commit()
        if is_pg:
            for table in (
                "user_group",
                "user_account",
                "process_definition",
                "process_version",
                "process_instance",
                "human_task",
                "task_candidate",
            ):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            raw.commit()
            raw.driver_connection.autocommit = True
            raw.driver_connection.execute("VACUUM ANALYZE")
            raw.driver_connection.autocommit = False
        else:
            cursor.execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()
    return {"surnames": senders}


def _pg_writer(raw):
    def write(table, columns, rows):
        sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with raw.driver_connection.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)

    return write


def _sqlite_writer(cursor):
    def write(table, columns, rows):
        marks = ", ".join("?" for _ in columns)
        cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    return write


# --- bare SQL of the same pages ---------------------------------------------------------------


def bare_sql(dialect: str, view: str, n_branches: int, with_search: bool) -> str:
    """The hand-written SQL of one first page (what a DBA would write for it)."""
    p = "%s" if dialect == "postgresql" else "?"
    unclaimed = "unclaimed"
    like = f" AND t.search_text LIKE {p}" if with_search else ""
    page = 51
    mine = (
        f"SELECT t.id AS task_id FROM human_task t WHERE t.status = 'open' "
        f"AND t.assignee_id = {p} AND t.follow_up_at IS NULL{like} "
        f"ORDER BY t.due_sort, t.id LIMIT {page}"
    )
    like_c = f" AND c.search_text LIKE {p}" if with_search else ""
    basket = (
        f"SELECT c.task_id FROM task_candidate c WHERE c.group_name = {p} AND c.{unclaimed}"
        f"{like_c} ORDER BY c.due_sort, c.task_id LIMIT {page}"
    )
    named = basket.replace("c.group_name = ", "c.user_id = ")  # tasks offered by name
    parts = []
    if view in ("mine", "all"):
        parts.append(mine)
    if view in ("candidate", "all"):
        parts += [basket] * n_branches + [named]
    ids = " UNION ALL ".join(f"SELECT task_id FROM ({q}) b{i}" for i, q in enumerate(parts))
    return (
        "SELECT t.*, u.name, u.email FROM human_task t "
        "LEFT JOIN user_account u ON u.id = t.assignee_id "
        f"WHERE t.id IN ({ids}) ORDER BY t.due_sort, t.id LIMIT {page}"
    )


def naive_basket_sql(dialect: str, n_groups: int) -> str:
    """The obvious several-groups query, without the per-group ranges (for comparison)."""
    p = "%s" if dialect == "postgresql" else "?"
    marks = ", ".join(p for _ in range(n_groups))
    return (
        "SELECT t.*, u.name FROM human_task t LEFT JOIN user_account u ON u.id = t.assignee_id "
        "WHERE t.status = 'open' AND t.assignee_id IS NULL AND t.id IN (SELECT task_id FROM "
        f"task_candidate WHERE group_name IN ({marks})) ORDER BY t.due_sort, t.id LIMIT 51"
    )


# --- measurement ----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def end_request() -> None:
    """End the transaction as a web request does (app.create_app's teardown), then the
    session: a request that only read commits, so the connection keeps its prepared
    statements."""
    end_read_only_transaction()
    db.session.remove()


def measure(app, samples: int, facts: dict, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    dialect = db.engine.dialect.name
    user_ids = rng.sample(range(1, db.session.query(User).count() + 1), samples)
    terms = [rng.choice(facts["surnames"]) for _ in user_ids]
    results = []
    raw = db.engine.raw_connection()
    cursor = raw.cursor()
    try:
        for label, view, search in (
            ("À traiter", "mine", False),
            ("Corbeilles de mes groupes", "candidate", False),
            ("Recherche texte (à traiter + corbeilles)", "all", True),
        ):
            service_ms, bare_ms, naive_ms, rows = [], [], [], []
            cold_ms: list[float] = []
            # Two passes: the first finds the pages on disk or in the OS cache (reported as
            # "cold"), the second is the steady state of a server answering the same agents.
            for i, uid in enumerate(user_ids + user_ids):
                i %= len(user_ids)
                end_request()
                user = db.session.get(User, uid)
                groups = [g.name for g in user.groups]
                params = {"q": terms[i]} if search else {}
                timings = []
                for _ in range(REPEAT):
                    end_request()
                    user = db.session.get(User, uid)
                    start = time.perf_counter()
                    filters = queries.parse_filters(params, user)
                    page = queries.list_tasks(user, view, filters=filters, limit=50)
                    timings.append((time.perf_counter() - start) * 1000)
                elapsed = statistics.median(timings)
                warm = len(cold_ms) >= len(user_ids)
                if not warm:
                    cold_ms.append(elapsed)
                else:
                    service_ms.append(elapsed)
                    rows.append(len(page.tasks))

                sql = bare_sql(dialect, view, len(groups), search)
                args: list = []
                like = f"%{terms[i]}%"
                if view in ("mine", "all"):
                    args += [uid] + ([like] if search else [])
                if view in ("candidate", "all"):
                    for g in [*groups, uid]:
                        args += [g] + ([like] if search else [])
                timings = []
                for _ in range(REPEAT):
                    start = time.perf_counter()
                    cursor.execute(sql, args)
                    bare_rows = cursor.fetchall()
                    timings.append((time.perf_counter() - start) * 1000)
                if warm:
                    bare_ms.append(statistics.median(timings))
                assert min(len(bare_rows), 50) == len(page.tasks), (view, uid, len(bare_rows))
                if view == "candidate":
                    start = time.perf_counter()
                    cursor.execute(naive_basket_sql(dialect, len(groups)), groups)
                    cursor.fetchall()
                    if warm:
                        naive_ms.append((time.perf_counter() - start) * 1000)
            raw.rollback()
            db.session.remove()
            tracemalloc.start()
            queries.list_tasks(db.session.get(User, user_ids[0]), view, limit=50)
            page_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            results.append(
                {
                    "view": label,
                    "cold_p50": statistics.median(cold_ms),
                    "cold_p95": percentile(cold_ms, 0.95),
                    "service_p50": statistics.median(service_ms),
                    "service_p95": percentile(service_ms, 0.95),
                    "bare_p50": statistics.median(bare_ms),
                    "bare_p95": percentile(bare_ms, 0.95),
                    "naive_p50": statistics.median(naive_ms) if naive_ms else None,
                    "rows": statistics.mean(rows),
                    "page_peak_kib": page_peak / 1024,
                }
            )
        counts_ms = []
        for uid in user_ids:  # the tab counts every inbox page shows (no bare twin)
            timings = []
            for _ in range(REPEAT):
                end_request()
                user = db.session.get(User, uid)
                start = time.perf_counter()
                queries.view_counts(user)
                timings.append((time.perf_counter() - start) * 1000)
            counts_ms.append(statistics.median(timings))
        results.append(
            {"counts_p50": statistics.median(counts_ms), "counts_p95": percentile(counts_ms, 0.95)}
        )
    finally:
        raw.close()
    return results


def prepare_pg(url: str) -> None:
    """Create the bench database if it does not exist, then empty its schema."""
    name = url.rsplit("/", 1)[1]
    admin = create_engine(
        url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/postgres",
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        if not conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def run(backend: str, args) -> None:
    if backend == "postgresql":
        url = args.pg_url
        if not args.reuse:
            prepare_pg(url)
        uri = url.replace("postgresql://", "postgresql+psycopg://")
    else:
        if not args.reuse and os.path.exists(args.sqlite_path):
            os.remove(args.sqlite_path)
        uri = f"sqlite:///{args.sqlite_path}"
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": uri,
            "MISSIVE_STORAGE": str(Path(tempfile.gettempdir()) / "bench-storage"),
        }
    )
    with app.app_context():
        started = time.perf_counter()
        if args.reuse and db.session.execute(text("SELECT count(*) FROM human_task")).scalar():
            facts = {"surnames": surname_pool(random.Random(7))}
            print(f"[{backend}] reusing the existing data")
        else:
            upgrade()
            facts = generate(app, args.tasks, args.users, args.groups)
            print(
                f"[{backend}] generated {args.tasks:,} tasks "
                f"in {time.perf_counter() - started:.0f} s"
            )
        counts = db.session.execute(
            text(
                "SELECT count(*), sum(CASE WHEN status = 'open' THEN 1 ELSE 0 END) FROM human_task"
            )
        ).one()
        print(f"[{backend}] human_task rows: {counts[0]:,} (open {counts[1]:,})")
        results = measure(app, args.samples, facts)
        db.session.remove()
        db.engine.dispose()
    print(f"\n{backend}: first page of 50, {args.samples} agents sampled, times in ms")
    print(
        f"{'view':44} {'service p50':>11} {'p95':>7} {'bare p50':>9} {'p95':>7} "
        f"{'ratio p50':>9} {'ratio p95':>9} {'rows':>5} {'page KiB':>8}"
    )
    counts = results.pop()
    for r in results:
        print(
            f"{r['view']:44} {r['service_p50']:11.2f} {r['service_p95']:7.2f} "
            f"{r['bare_p50']:9.2f} {r['bare_p95']:7.2f} "
            f"{r['service_p50'] / r['bare_p50']:9.2f} {r['service_p95'] / r['bare_p95']:9.2f} "
            f"{r['rows']:5.0f} {r['page_peak_kib']:8.0f}"
        )
        print(
            f"{'  (first pass, cold cache: service)':44} {r['cold_p50']:11.2f} {r['cold_p95']:7.2f}"
        )
        if r["naive_p50"] is not None:
            print(f"{'  (naive IN over the groups, bare SQL)':44} {'':19} {r['naive_p50']:9.2f}")
    print(
        f"{'Compteurs des 5 onglets (service only)':44} {counts['counts_p50']:11.2f} "
        f"{counts['counts_p95']:7.2f}"
    )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (2 cores)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of the process so far: {peak:.0f} MiB\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--db", choices=("both", "postgresql", "sqlite"), default="both")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/bench_inbox")
    parser.add_argument(
        "--sqlite-path", default=str(Path(tempfile.gettempdir()) / "bench_inbox.db")
    )
    parser.add_argument("--reuse", action="store_true", help="keep the data of a previous run")
    args = parser.parse_args()
    for backend in ("postgresql", "sqlite") if args.db == "both" else (args.db,):
        run(backend, args)


if __name__ == "__main__":
    main()
