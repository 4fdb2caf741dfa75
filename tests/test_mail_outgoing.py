"""The one sending path (app/mail/outgoing.py) against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import pytest

from app.mail.outgoing import MailError, send_mail
from tests.dovecot import free_port
from tests.intake_helpers import pdf_bytes
from tests.smtp_sink import SmtpSink


@pytest.fixture
def sink(app):
    with SmtpSink() as server:
        saved = app.config["SMTP_HOST"], app.config["SMTP_PORT"]
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=server.port)
        yield server
        app.config["SMTP_HOST"], app.config["SMTP_PORT"] = saved


def test_one_message_reaches_several_recipients_with_its_attachment(app, sink):
    with app.app_context():
        message_id = send_mail(
            ["usager@example.org", "service@departement.test"],
            "Accusé de réception n° 2026-A-000001",
            "Madame, Monsieur,\n\nVotre demande est bien reçue.",
            reply_to="routes@departement.test",
            attachments=[("accuse.pdf", "application/pdf", pdf_bytes("AR"))],
        )
    [message] = sink.messages
    assert message["Message-ID"] == message_id
    assert message["To"] == "usager@example.org, service@departement.test"
    assert message["Reply-To"] == "routes@departement.test"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["From"] == app.config["MAIL_FROM"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "accuse.pdf"
    assert attachment.get_content().startswith(b"%PDF")
    assert "bien reçue" in message.get_body(("plain",)).get_content()


def test_a_single_address_and_an_html_alternative(app, sink):
    with app.app_context():
        send_mail("agent@departement.test", "Tâche", "Texte", html="<p>Texte</p>")
    [message] = sink.messages
    assert message["To"] == "agent@departement.test"
    assert message.get_body(("html",)).get_content().strip() == "<p>Texte</p>"


def test_an_unreachable_server_is_a_mail_error_for_the_caller_to_retry(app):
    saved = app.config["SMTP_HOST"], app.config["SMTP_PORT"]
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())
    try:
        with app.app_context(), pytest.raises(MailError, match="Envoi impossible"):
            send_mail(["a@example.org"], "Sujet", "Texte")
    finally:
        app.config["SMTP_HOST"], app.config["SMTP_PORT"] = saved
