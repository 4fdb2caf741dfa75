"""Worker jobs of the inbox: notification e-mails and the daily digest."""

from __future__ import annotations

from app.core.worker import periodic
from app.inbox.services import deliver_pending_emails, send_daily_digests


@periodic("inbox_notification_emails", minute="*")
def notification_emails() -> int:
    """Send the assignment and mention e-mails waiting in the outbox."""
    return deliver_pending_emails()


@periodic("inbox_daily_digest", minute="0", hour="7")
def daily_digest() -> int:
    """Send each agent who wants it the morning summary of their inbox."""
    return send_daily_digests()
