"""Mail ingest throughput against a real Dovecot, as a ratio to the raw libraries.

    .venv/bin/python bench/ingest.py [--messages 2000] [--size 20000] [--database URL]

Puts N messages of about SIZE bytes, each with a PDF attachment, in a throwaway Dovecot,
then measures in the same run:

* raw: imapclient fetch (BODY.PEEK[], batches of MISSIVE_MAIL_BATCH) + Python's email
  parsing (policy.default, every part decoded);
* ingest: ``app.mail.services.fetch_mailbox`` — parse, store the raw message and the
  attachments, number, register, index, audit, commit per batch, move to « Traités »;
  circuits are queued for the worker (not started here);
* distribution (a sample): starting the circuits of registered items.

After the timed ingest (outside it) the run checks that the chrono numbers are 1..N without
a gap and that the audit chain verifies.

Prints messages per second, the ratio ingest/raw (target ≤ 3) and peak memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="missive-bench-"))
os.environ["MISSIVE_HUEY_DB"] = str(WORK / "huey.db")
os.environ.pop("REDIS_URL", None)

from imapclient import IMAPClient  # noqa: E402

from tests.dovecot import PASSWORD, Dovecot  # noqa: E402
from tests.mail_fixtures import with_pdf  # noqa: E402


def raw_pass(port: int, batch: int) -> int:
    """What the libraries alone do: fetch every message and parse every part."""
    client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=60)
    client.login("bench", PASSWORD)
    client.select_folder("INBOX")
    uids = sorted(client.search(["NOT", "DELETED"]))
    parser = BytesParser(policy=policy.default)
    parsed = 0
    for start in range(0, len(uids), batch):
        chunk = uids[start : start + batch]
        fetched = client.fetch(chunk, [b"BODY.PEEK[]", b"INTERNALDATE"])
        for uid in chunk:
            msg = parser.parsebytes(fetched[uid][b"BODY[]"])
            for part in msg.walk():
                if part.is_multipart():
                    continue
                if part.get_content_maintype() == "text":
                    part.get_content()
                else:
                    part.get_payload(decode=True)
            parsed += 1
    client.logout()
    return parsed


def _peak_rss() -> int:
    """The process's resident-memory high-water mark (VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


CPU: dict[str, float] = {}


def measure(func, label: str):
    """Run ``func``: its result, wall seconds, and the peak RSS reached while it ran
    (the process's CPU seconds, all threads, go to ``CPU[label]``)."""
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    started, cpu = time.perf_counter(), time.process_time()
    result = func()
    elapsed = time.perf_counter() - started
    CPU[label] = time.process_time() - cpu
    return result, elapsed, _peak_rss()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: SQLite)")
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--distribute-sample", type=int, default=50)
    args = parser.parse_args()

    server = Dovecot(["bench"]).start()
    try:
        messages = [with_pdf(i, size=args.size) for i in range(args.messages)]
        average = sum(len(m) for m in messages) // len(messages)
        with server.client("bench") as client:
            for raw in messages:
                client.append("INBOX", raw)
        del messages
        print(f"{args.messages} messages of {average} bytes on average in Dovecot")

        raw_pass(server.port, args.batch)  # warm-up: Dovecot indexes the new messages
        count, raw_seconds, raw_peak = measure(lambda: raw_pass(server.port, args.batch), "raw")
        assert count == args.messages

        from tests.conftest import make_app

        overrides = {"MISSIVE_MAIL_BATCH": args.batch, "MISSIVE_MAIL_MAX_PER_RUN": 10**6}
        if args.database:
            os.environ["TEST_DATABASE_URL"] = args.database
            import tests.conftest as harness

            harness.PG_URL = args.database
            app = make_app("postgresql", WORK, **overrides)
        else:
            app = make_app("sqlite", WORK, **overrides)
        from app.core.extensions import db
        from app.core.worker import huey
        from app.correspondence.demo import deploy_processes, load_case_types
        from app.mail import services as mail

        huey.immediate = False
        with app.app_context():
            load_case_types()
            deploy_processes()
            box = mail.add_mailbox(
                name="bench", host="127.0.0.1", port=server.port, username="bench",
                password=PASSWORD, use_tls=False,
            )  # fmt: skip
            report, ingest_seconds, ingest_peak = measure(
                lambda: mail.fetch_mailbox(db.session.get(type(box), box.id)), "ingest"
            )
            assert report.registered == args.messages, report.as_dict()
            assert report.error is None, report.error
            assert server.count("bench") == 0

            from sqlalchemy import select

            from app.core import audit
            from app.correspondence.models import Correspondence
            from app.correspondence.services import distribute_case

            numbers = db.session.execute(
                select(Correspondence.sequence).order_by(Correspondence.sequence)
            ).scalars()
            assert list(numbers) == list(range(1, args.messages + 1)), "chrono numbers"
            assert audit.verify_chain() == [], "audit chain"

            sample = list(
                db.session.execute(
                    select(Correspondence.id)
                    .order_by(Correspondence.id)
                    .limit(args.distribute_sample)
                ).scalars()
            )
            started = time.perf_counter()
            for case_id in sample:
                distribute_case(case_id)
            distribute_seconds = time.perf_counter() - started

        raw_rate = args.messages / raw_seconds
        ingest_rate = args.messages / ingest_seconds
        print(f"database: {app.config['SQLALCHEMY_DATABASE_URI'].split(':')[0]}")
        print(
            f"raw imapclient fetch + email parsing: {raw_rate:8.1f} messages/s "
            f"({raw_seconds:.1f} s, {raw_peak / 2**20:.1f} MiB peak RSS)"
        )
        print(
            f"Missive ingest (registration):       {ingest_rate:8.1f} messages/s "
            f"({ingest_seconds:.1f} s, {ingest_peak / 2**20:.1f} MiB peak RSS)"
        )
        print(f"ratio ingest/raw (time per message): {raw_rate / ingest_rate:8.2f}  (target <= 3)")
        print(
            f"ratio of CPU seconds (this process):   {CPU['ingest'] / CPU['raw']:8.2f}  "
            f"(raw {CPU['raw']:.1f} s, ingest {CPU['ingest']:.1f} s; less sensitive to load)"
        )
        if sample:
            print(
                f"circuit start (distribution sample of {len(sample)}): "
                f"{len(sample) / distribute_seconds:.1f} items/s"
            )
        print(
            f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
