"""The worker polls the functional mailboxes every minute."""

from __future__ import annotations

from app.core.worker import periodic


@periodic("mail_fetch")
def fetch_mailboxes() -> int:
    """Take the new messages of every active mailbox; return how many were registered."""
    from app.mail.services import fetch_all

    return sum(report.registered for report in fetch_all())
