"""Acknowledgements of receipt per second through the service, as a ratio to weasyprint.

    .venv/bin/python bench/ack.py [--cases 200] [--database URL]

Registers N paper requests (silence means rejection, documents missing: every mention of
the letter is present), then measures in the same run:

* raw: weasyprint rendering the very HTML of each acknowledgement to PDF (the HTML is
  prepared beforehand);
* service: ``app.deadlines.services.issue_acknowledgement`` + commit, one case at a time
  — gather the mentions, check them, render the template and its QR code, weasyprint,
  store the PDF, attach it to the case, queue it for the paper batch, audit.

Prints acknowledgements per second, the ratio service/raw (target ≤ 1.3) and peak memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="missive-bench-"))
os.environ["MISSIVE_HUEY_DB"] = str(WORK / "huey.db")
os.environ.pop("REDIS_URL", None)


def _peak_rss() -> int:
    """The process's resident-memory high-water mark (VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(func):
    """Run ``func``: its result, seconds, and the peak RSS reached while it ran."""
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    started = time.perf_counter()
    result = func()
    return result, time.perf_counter() - started, _peak_rss()


def build(app, count: int) -> list[int]:
    """An office with contact details and letterhead, and ``count`` paper requests."""
    from app.auth.models import Group, OrgUnit
    from app.contacts.models import Contact
    from app.core.extensions import db
    from app.correspondence import demo as intake_demo
    from app.correspondence import services as intake
    from app.correspondence.models import Channel
    from app.deadlines.models import DeadlineRule, ReceiptSettings

    with app.app_context():
        intake_demo.load_case_types()
        unit = OrgUnit(
            code="svc-routes",
            name="Service exploitation de la route",
            kind="service",
            address_lines="Hôtel du Département\n3 quai Ceineray",
            postal_code="44041",
            city="NANTES CEDEX 1",
            email="routes@departement.test",
            phone="02 40 99 10 00",
        )
        db.session.add(Group(name="routes", label="Routes", org_unit=unit))
        db.session.add(
            ReceiptSettings(
                id=1,
                authority_name="Département de Loire-Atlantique",
                letterhead_lines="Hôtel du Département — 3 quai Ceineray — 44041 Nantes Cedex 1",
                signatory="Le Président du Conseil départemental",
                tribunal_name="tribunal administratif de Nantes",
                tribunal_address="6 allée de l'Île-Gloriette\nCS 24111\n44041 Nantes Cedex",
            )
        )
        db.session.commit()
        type_id = intake.get_case_type("reclamation").id
        db.session.add(DeadlineRule(case_type_id=type_id, implicit_decision="rejection"))
        db.session.commit()
        ids = []
        for index in range(count):
            sender = Contact(
                kind="person",
                civility="Mme",
                first_name="Claire",
                last_name=f"Dupont-{index}",
                address_lines=f"{index + 1} rue des Lilas",
                postal_code="44000",
                city="Nantes",
            )
            case = intake.record_case(
                intake.Intake(
                    channel=Channel.PAPER,
                    subject=f"Nids de poule sur la route départementale {index}",
                    type_code="reclamation",
                    service_group="routes",
                    sender=sender,
                ),
            )
            ids.append(case.id)
        db.session.commit()
        from app.deadlines.services import request_missing_documents

        for case_id in ids[::3]:  # a third with missing documents (the longest letters)
            from app.correspondence.models import Correspondence

            request_missing_documents(
                db.session.get(Correspondence, case_id),
                ["Photographies des dégâts", "Justificatif de domicile"],
                date(2099, 1, 1),
                None,
            )
        return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: SQLite)")
    args = parser.parse_args()

    from tests.conftest import make_app

    if args.database:
        import tests.conftest as harness

        harness.PG_URL = args.database
        app = make_app("postgresql", WORK)
    else:
        app = make_app("sqlite", WORK)
    ids = build(app, args.cases)

    from weasyprint import HTML

    from app.core.extensions import db
    from app.correspondence.models import Correspondence
    from app.deadlines import receipts, services

    with app.test_request_context():
        htmls = [
            receipts.render_html(services.receipt_content(db.session.get(Correspondence, i)))
            for i in ids
        ]
        db.session.rollback()
        base_url = app.root_path
        for html in htmls[:3]:  # warm-up: fonts, caches
            HTML(string=html, base_url=base_url).write_pdf()

        def raw():
            return sum(len(HTML(string=h, base_url=base_url).write_pdf()) for h in htmls)

        def service():
            for case_id in ids:
                services.issue_acknowledgement(db.session.get(Correspondence, case_id), None)
                db.session.commit()
            return len(ids)

        raw_bytes, raw_seconds, raw_peak = measure(raw)
        issued, service_seconds, service_peak = measure(service)
        assert issued == args.cases

    raw_rate = args.cases / raw_seconds
    service_rate = args.cases / service_seconds
    print(f"database: {app.config['SQLALCHEMY_DATABASE_URI'].split(':')[0]}, {args.cases} cases")
    print(
        f"raw weasyprint (same HTML):   {raw_rate:7.1f} PDF/s "
        f"({raw_seconds:.1f} s, {raw_bytes / args.cases / 1024:.0f} KiB/PDF, "
        f"{raw_peak / 2**20:.1f} MiB peak RSS)"
    )
    print(
        f"service (case -> PDF stored): {service_rate:7.1f} PDF/s "
        f"({service_seconds:.1f} s, {service_peak / 2**20:.1f} MiB peak RSS)"
    )
    ratio = raw_rate / service_rate
    print(f"ratio service/raw (time per acknowledgement): {ratio:.2f}  (target <= 1.3)")
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
