"""What deadlines plug into the registry: notices forgotten with their case."""

from __future__ import annotations

from sqlalchemy import update

from app.core.extensions import db
from app.correspondence.services import on_case_purge
from app.deadlines.models import DeadlineNotice


@on_case_purge
def forget_case_notices(case, action: str) -> None:
    """The retention period of a case ran out: its notices forget the requester's
    address (the dates of the acknowledgement stay for the statistics)."""
    db.session.execute(
        update(DeadlineNotice)
        .where(DeadlineNotice.correspondence_id == case.id)
        .values(recipients=[])
        .execution_options(synchronize_session=False)
    )
