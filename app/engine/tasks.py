"""The engine's periodic work in the worker: due timers, then due service tasks."""

from __future__ import annotations

from app.core.worker import periodic
from app.engine import services


@periodic("engine_timers")
def fire_timers() -> int:
    """Fire the timers that are due (reminders, escalations, waits)."""
    return services.fire_due_timers()


@periodic("engine_jobs")
def run_jobs() -> int:
    """Run service tasks waiting for (re)execution."""
    return services.run_due_jobs()
