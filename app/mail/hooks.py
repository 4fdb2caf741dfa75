"""What the mail domain plugs into the registry: e-mails forgotten with their case."""

from __future__ import annotations

from sqlalchemy import update

from app.core.extensions import db
from app.correspondence.services import on_case_purge
from app.mail.models import MailMessage


@on_case_purge
def forget_case_messages(case, action: str) -> None:
    """The retention period of a case ran out: erase its e-mails' sender, subject and
    bodies (the key that recognises the same message again is kept)."""
    db.session.execute(
        update(MailMessage)
        .where(MailMessage.correspondence_id == case.id)
        .values(subject=None, from_address=None, text_body=None, html_body=None)
        .execution_options(synchronize_session=False)
    )
