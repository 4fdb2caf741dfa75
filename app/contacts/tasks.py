"""Worker jobs of the contact base: nightly duplicate detection and retention."""

from __future__ import annotations

from datetime import timedelta

from app.contacts import services
from app.core.db import utcnow
from app.core.worker import periodic


@periodic("contacts_find_duplicates", minute="15", hour="2")
def find_recent_duplicates() -> int:
    """Score the contacts changed in the last day against the base (review queue)."""
    return services.find_duplicates(since=utcnow() - timedelta(hours=26))


@periodic("contacts_apply_retention", minute="45", hour="3")
def apply_retention() -> dict[str, int]:
    """Apply the retention periods (purge old exchanges, anonymise forgotten persons)."""
    return services.apply_retention()
