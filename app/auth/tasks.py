"""Periodic housekeeping of sign-in data."""

from __future__ import annotations

from app.auth.services import purge_login_attempts
from app.core.worker import periodic


@periodic("purge_login_attempts", minute="*/15")
def purge_old_login_attempts() -> int:
    """Forget failed sign-ins once they no longer count for throttling."""
    return purge_login_attempts()
