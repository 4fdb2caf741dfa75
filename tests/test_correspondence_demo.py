"""The demo office at work (`missive demo load`): cases on every channel from the demo
contacts, taken to various stages by the demo agents through the real circuits."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.auth.services import find_user_by_email
from app.core.db import utcnow
from app.core.extensions import db
from app.core.worker import huey
from app.correspondence.models import CaseStatus, Correspondence
from app.correspondence.numbering import PARIS
from app.deadlines.models import AckStatus, CaseClock
from app.demo import load_demo
from app.demo.organisation import DEMO_PASSWORD
from app.engine.models import HumanTask, TaskStatus
from app.inbox import queries
from tests.conftest import login

DOMAIN = "@departement.test"


@pytest.fixture
def demo(app):
    """The whole demo, loaded twice; the worker's jobs (OCR, mails) stay queued."""
    huey.immediate = False
    try:
        with app.app_context():
            started = time.monotonic()
            first = load_demo()
            elapsed = time.monotonic() - started
            second = load_demo()
    finally:
        huey.flush()  # the OCR and mail jobs the load queued are not this test's
        huey.immediate = True
    print(f"demo load: {elapsed:.1f} s ({app.config['DB_BACKEND']})")
    return first, second


def agent(login_name: str):
    return find_user_by_email(login_name + DOMAIN)


def test_demo_load_gives_a_living_office_once(app, client, demo):
    """One load (twice, for idempotence) checked from every side: it is the slow part."""
    first, second = demo
    registers_cases_on_every_channel(app, first)
    agents_find_work_in_their_inbox(app)
    fills_the_registry_and_the_dashboard(app, client)
    assert second == {key: 0 for key in second}


def registers_cases_on_every_channel(app, first):
    assert first["demo_cases"] >= 30
    with app.app_context():
        everything = list(db.session.execute(select(Correspondence)).scalars())
        # the demo items, plus the outgoing answers the parapheur produced for some of them
        cases = [c for c in everything if c.direction != "outgoing"]
        answers = [c for c in everything if c.direction == "outgoing"]
        assert len(cases) == first["demo_cases"]
        assert answers and all(a.attachments for a in answers)
        assert set(Counter(str(c.channel) for c in cases)) == {
            "paper",
            "email",
            "web",
            "internal",
            "api",
        }
        assert all(c.process_instance_id and not c.flags for c in cases)
        incoming = [c for c in cases if c.direction == "incoming"]
        assert sum(c.sender is not None for c in incoming) == len(incoming)
        scans = [link for c in cases if c.channel == "paper" for link in c.attachments]
        assert scans and all(link.document.mime_type == "application/pdf" for link in scans)
        statuses = Counter(str(c.status) for c in cases)
        assert statuses["closed"] >= 6 and statuses["in_progress"] >= 15
        assert statuses["registered"] >= 2  # waiting for the mail office to qualify them
        now = utcnow()
        overdue = [c for c in cases if c.status != CaseStatus.CLOSED and c.due_at < now]
        assert len(overdue) >= 3
        acknowledged = db.session.scalar(
            select(func.count())
            .select_from(CaseClock)
            .where(CaseClock.ack_status.in_([AckStatus.PRINTED, AckStatus.TO_SEND]))
        )
        assert acknowledged >= 10


def agents_find_work_in_their_inbox(app):
    with app.app_context():
        claire = agent("claire.martin")
        to_qualify = queries.list_tasks(claire, "all").tasks
        assert len(to_qualify) >= 3 and queries.view_counts(claire)["mine"] == 1
        assert {t.name for t in to_qualify} == {"Qualifier le courrier"}
        elodie = agent("elodie.roussel")
        recruitment = queries.list_tasks(elodie, "all").tasks
        assert "Examiner la candidature" in {t.name for t in recruitment}
        marie = agent("marie.lefebvre")
        nantes = queries.list_tasks(marie, "all").tasks
        assert {t.name for t in nantes} == {"Examiner la candidature", "Répondre au candidat"}
        assert queries.list_tasks(marie, "mine").tasks[0].name == "Répondre au candidat"
        assert {t.metadata_["delegation"] for t in nantes} == {"Délégation territoriale de Nantes"}
        assert {t.metadata_["channel"] for t in nantes} == {"Formulaire en ligne"}
        julie = agent("julie.perrin")
        assert queries.view_counts(julie)["mine"] >= 1
        assert queries.view_counts(julie)["overdue"] >= 1
        escalations = db.session.scalar(
            select(func.count())
            .select_from(HumanTask)
            .where(
                HumanTask.name == "Suivre le courrier en retard",
                HumanTask.status == TaskStatus.OPEN,
            )
        )
        assert escalations >= 2  # the heads of the late services were alerted


def fills_the_registry_and_the_dashboard(app, client):
    from app.stats.services import Period, report

    with app.app_context():
        today = utcnow().astimezone(PARIS).date()
        period = Period(today - timedelta(days=60), today)
        total = report(agent("admin"), period, "service").total
        assert total.volume >= 25
        assert total.answered_in_time >= 5 and total.overdue >= 3
        assert total.ack_measured >= 3
    login(client, "claire.martin" + DOMAIN, DEMO_PASSWORD)
    registry = client.get("/correspondences").get_data(as_text=True)
    assert len(set(re.findall(r"\d{4}-[AI]-\d{6}", registry))) >= 20
    admin = app.test_client()
    login(admin, "admin" + DOMAIN, DEMO_PASSWORD)
    stats = admin.get("/stats").get_data(as_text=True)
    assert "Direction des routes et des mobili" in stats  # a bar of the chart
    received = re.search(r"<strong[^>]*>(\d+)</strong>\s*courriers reçus", stats)
    assert received and int(received.group(1)) >= 25, stats[:3000]
