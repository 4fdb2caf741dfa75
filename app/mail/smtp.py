"""Sending a plain message through the configured SMTP server (confirmations to requesters).

Kept apart from the outgoing-letters module of the inbox (app/mail/outgoing.py) so the two
can be merged by the lead without conflicts.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app


def send_text(
    to: str | list[str],
    subject: str,
    body: str,
    *,
    reply_to: str | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> str:
    """Send a plain-text e-mail (with ``(filename, mime type, bytes)`` attachments);
    return its Message-ID."""
    config = current_app.config
    message = EmailMessage()
    message["From"] = config["MAIL_FROM"]
    message["To"] = to if isinstance(to, str) else ", ".join(to)
    message["Subject"] = subject
    if reply_to:
        message["Reply-To"] = reply_to
    message_id = make_msgid(domain="missive.local")
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    for filename, mime_type, data in attachments or []:
        maintype, _, subtype = mime_type.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=30) as server:
        if config.get("SMTP_STARTTLS"):
            server.starttls(context=ssl.create_default_context())
        if config.get("SMTP_USERNAME"):
            server.login(config["SMTP_USERNAME"], config.get("SMTP_PASSWORD") or "")
        server.send_message(message)
    return message_id
