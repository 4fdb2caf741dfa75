"""The one way Missive sends e-mail: through the configured SMTP server (SMTP_* settings).

``send_mail`` hands one message (several recipients, attachments, plain text with an
optional HTML alternative) to the server or raises ``MailError``; it never retries by
itself. Reliability is the caller's: the inbox's notifications and the deadlines' notices
are outboxes (the row stays pending and the worker tries again), the web-form
confirmation is a worker job with retries.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app

# (file name, MIME type, bytes)
Attachment = tuple[str, str, bytes]


class MailError(RuntimeError):
    """The message could not be handed to the SMTP server; the caller may retry later."""


def build_message(
    to: str | Iterable[str],
    subject: str,
    text: str,
    *,
    html: str | None = None,
    reply_to: str | None = None,
    attachments: Iterable[Attachment] = (),
) -> EmailMessage:
    """A UTF-8 message from MAIL_FROM: plain text, optional HTML alternative, attachments.

    Everything Missive sends is automatic (``Auto-Submitted``, RFC 3834), so out-of-office
    replies are not sent back to it.
    """
    recipients = [to] if isinstance(to, str) else list(to)
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="missive.local")
    message["Auto-Submitted"] = "auto-generated"
    if reply_to:
        message["Reply-To"] = reply_to
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    for filename, mime_type, data in attachments:
        maintype, _, subtype = (mime_type or "application/octet-stream").partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message


def send_mail(
    to: str | Iterable[str],
    subject: str,
    text: str,
    *,
    html: str | None = None,
    reply_to: str | None = None,
    attachments: Iterable[Attachment] = (),
) -> str:
    """Send one message; return its Message-ID. Raise MailError when the server refuses
    it or cannot be reached."""
    config = current_app.config
    message = build_message(
        to, subject, text, html=html, reply_to=reply_to, attachments=attachments
    )
    try:
        with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=20) as smtp:
            if config.get("SMTP_STARTTLS"):
                smtp.starttls(context=ssl.create_default_context())
            if config.get("SMTP_USERNAME"):
                smtp.login(config["SMTP_USERNAME"], config.get("SMTP_PASSWORD") or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"Envoi impossible vers {config['SMTP_HOST']} : {exc}") from exc
    return message["Message-ID"]
