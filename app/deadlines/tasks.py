"""The worker sends the e-mails of deadlines (acknowledgements, reminders, escalations)."""

from __future__ import annotations

from app.core.worker import periodic


@periodic("deadline_notices")
def send_notices() -> int:
    """Send the acknowledgements, reminders and escalations decided since the last run."""
    from app.deadlines.services import send_pending_notices

    return send_pending_notices()
