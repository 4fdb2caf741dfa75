"""The background worker: periodic jobs and the queue, run once on demand."""

from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import func, select

from app.auth.models import LoginAttempt
from app.core.db import utcnow
from app.core.extensions import db
from app.core.worker import huey, job, periodic_jobs, run_once

calls: list[int] = []


@job()
def remember(value: int) -> None:
    calls.append(value)


def test_periodic_jobs_are_registered():
    assert "purge_login_attempts" in {j.name for j in periodic_jobs()}


def test_run_once_purges_stale_login_failures(app):
    with app.app_context():
        db.session.add(LoginAttempt(email="a@example.test", at=utcnow() - timedelta(days=1)))
        db.session.add(LoginAttempt(email="b@example.test", at=utcnow()))
        db.session.commit()
        result = run_once()
        remaining = db.session.scalar(select(func.count()).select_from(LoginAttempt))
    assert result["purge_login_attempts"] == "ok 1"
    assert remaining == 1


def test_queued_job_runs_in_the_worker(app):
    calls.clear()
    huey.immediate = False
    try:
        with app.app_context():
            remember(41)
            assert calls == []
            result = run_once()
    finally:
        huey.immediate = True
    assert calls == [41]
    assert result["queue"] == "ok 1"


def test_worker_once_command(app):
    runner = CliRunner()
    from app.cli import worker_command

    with app.app_context():
        outcome = runner.invoke(worker_command, ["--once"])
    assert outcome.exit_code == 0, outcome.output
    assert '"purge_login_attempts": "ok' in outcome.output
