"""Sending e-mail through the configured SMTP server (SMTP_* settings)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app


class MailError(RuntimeError):
    """The message could not be handed to the SMTP server; the caller may retry later."""


def build_message(
    to: list[str], subject: str, text: str, *, html: str | None = None, reply_to: str | None = None
) -> EmailMessage:
    """A UTF-8 message from MAIL_FROM, plain text with an optional HTML alternative."""
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="missive.local")
    if reply_to:
        message["Reply-To"] = reply_to
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return message


def send_mail(
    to: list[str], subject: str, text: str, *, html: str | None = None, reply_to: str | None = None
) -> EmailMessage:
    """Send one message to ``to``; raise MailError when the server refuses or is down."""
    config = current_app.config
    message = build_message(to, subject, text, html=html, reply_to=reply_to)
    try:
        with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=20) as smtp:
            if config.get("SMTP_STARTTLS"):
                smtp.starttls(context=ssl.create_default_context())
            if config.get("SMTP_USERNAME"):
                smtp.login(config["SMTP_USERNAME"], config.get("SMTP_PASSWORD") or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"Envoi impossible vers {config['SMTP_HOST']}: {exc}") from exc
    return message
