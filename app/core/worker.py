"""Background work with huey: queued jobs and periodic jobs, run by ``missive worker``.

The queue is SqliteHuey (a file under instance/) unless REDIS_URL is set, then RedisHuey.
Jobs run inside an application context; nothing is scheduled inside web processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from pathlib import Path

from flask import Flask, current_app, has_app_context
from huey import Huey, RedisHuey, SqliteHuey, crontab

from app.core.config import PROJECT_ROOT

log = logging.getLogger(__name__)


def _make_huey() -> Huey:
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        return RedisHuey("missive", url=redis_url)
    path = Path(os.environ.get("MISSIVE_HUEY_DB") or PROJECT_ROOT / "instance" / "huey.db")
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("missive", filename=str(path))


huey = _make_huey()
_worker_app: Flask | None = None


def worker_app() -> Flask:
    """Return the application the worker process runs jobs in (built once)."""
    global _worker_app
    if _worker_app is None:
        from app import create_app

        _worker_app = create_app()
    return _worker_app


@contextmanager
def app_context():
    """Enter the application context of the worker (or reuse the caller's)."""
    if has_app_context():
        yield current_app
        return
    with worker_app().app_context():
        yield current_app


def job(retries: int = 3, retry_delay: int = 30) -> Callable:
    """Declare a function as a queued job: ``func.schedule(...)``/``func(...)`` enqueue it."""

    def decorator(func: Callable) -> Callable:
        @wraps(func)
        def run(*args, **kwargs):
            with app_context():
                return func(*args, **kwargs)

        return huey.task(retries=retries, retry_delay=retry_delay, name=func.__name__)(run)

    return decorator


@dataclass
class PeriodicJob:
    name: str
    func: Callable[[], object]
    schedule: str


_periodic: dict[str, PeriodicJob] = {}


def periodic(name: str, minute: str = "*", hour: str = "*") -> Callable:
    """Declare a function the worker runs on a schedule (and once in ``worker --once``)."""

    def decorator(func: Callable[[], object]) -> Callable[[], object]:
        _periodic[name] = PeriodicJob(name, func, f"{minute} {hour} * * *")

        @wraps(func)
        def run():
            with app_context():
                return func()

        huey.periodic_task(crontab(minute=minute, hour=hour), name=name)(run)
        return func

    return decorator


def periodic_jobs() -> list[PeriodicJob]:
    """Return the registered periodic jobs."""
    return list(_periodic.values())


def run_once() -> dict[str, str]:
    """Run every periodic job once, then every queued job; return a status per job."""
    results: dict[str, str] = {}
    with app_context():
        for periodic_job in _periodic.values():
            try:
                outcome = periodic_job.func()
                results[periodic_job.name] = f"ok {outcome}" if outcome is not None else "ok"
            except Exception as exc:  # one failing job must not stop the others
                log.exception("periodic job %s failed", periodic_job.name)
                results[periodic_job.name] = f"error {exc}"
        drained = 0
        while True:
            task = huey.dequeue()
            if task is None:
                break
            huey.execute(task)
            drained += 1
        results["queue"] = f"ok {drained}"
    return results


def run_consumer(workers: int = 2) -> None:
    """Run the huey consumer (queued and periodic jobs) until interrupted."""
    worker_app()  # build the app first: it imports and registers every job module
    consumer = huey.create_consumer(workers=workers, periodic=True, worker_type="thread")
    consumer.run()
