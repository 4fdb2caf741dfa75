"""Notification e-mails delivered to a real local SMTP server (aiosmtpd): on assignment,
on mention, the daily digest, per-user preferences, and nothing lost when SMTP is down."""

from __future__ import annotations

import email
import socket
from datetime import timedelta
from email import policy

import pytest
from aiosmtpd.controller import Controller

from app.inbox import queries, services
from tests.inbox_support import make_agents, start_case, user


class Sink:
    """Keeps every message the SMTP server receives."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 Message accepted"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if address in m["X-Envelope-To"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp(app):
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    saved = app.config["SMTP_HOST"], app.config["SMTP_PORT"]
    app.config["SMTP_HOST"], app.config["SMTP_PORT"] = "127.0.0.1", controller.port
    yield sink
    app.config["SMTP_HOST"], app.config["SMTP_PORT"] = saved
    controller.stop()


@pytest.fixture
def agents(app, make_user):
    return make_agents(app, make_user)


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def test_assignment_sends_an_email_with_a_link_to_the_task(app, agents, smtp):
    with app.app_context():
        task_id = start_case(subject="Subvention école")
        services.claim(task_id, user(agents.alice))
        services.reassign(task_id, agents.bob, user(agents.alice), "Dossier de Bob")
        assert services.deliver_pending_emails() == 1
        assert services.deliver_pending_emails() == 0
    [message] = smtp.to(agents.bob)
    assert "Alice Durand vous a attribué" in message["Subject"]
    assert f"/taches/{task_id}" in body(message)
    assert message["From"].addresses[0].addr_spec == "ne-pas-repondre@missive.local"


def test_mention_sends_an_email_unless_the_agent_turned_it_off(app, agents, smtp):
    with app.app_context():
        task_id = start_case()
        services.set_preferences(
            user(agents.denis), email_on_assignment=True, email_on_mention=False, daily_digest=True
        )
        services.add_comment(task_id, user(agents.alice), "@bob.leroy et @denis.roux, avis ?")
        services.deliver_pending_emails()
        assert services.unread_count(user(agents.denis)) == 1  # still told in the app
    assert [m["Subject"] for m in smtp.to(agents.bob)] == [
        "[Missive] Alice Durand vous cite dans « 2026-00001 — Demande de subvention »"
    ]
    assert smtp.to(agents.denis) == []


def test_emails_wait_in_the_outbox_while_smtp_is_down(app, agents, smtp):
    with app.app_context():
        task_id = start_case()
        services.add_comment(task_id, user(agents.alice), "@bob.leroy")
        port = app.config["SMTP_PORT"]
        app.config["SMTP_PORT"] = free_port()
        try:
            assert services.deliver_pending_emails() == 0
        finally:
            app.config["SMTP_PORT"] = port
        assert services.deliver_pending_emails() == 1
    assert len(smtp.to(agents.bob)) == 1


def test_daily_digest_is_sent_once_a_day_to_agents_with_work(app, agents, smtp, time_machine):
    with app.app_context():
        late = start_case(chrono="2026-00999", due="P1D")
        services.claim(late, user(agents.alice))
        start_case(chrono="2026-01000", group="instruction")
        start_case(chrono="2026-01001", group="juridique")
        services.set_preferences(
            user(agents.bob), email_on_assignment=True, email_on_mention=True, daily_digest=False
        )
    time_machine.move_to(queries.today() + timedelta(days=3, hours=7))
    with app.app_context():
        sent = services.send_daily_digests()
        assert services.send_daily_digests() == 0
    recipients = sorted(m["X-Envelope-To"] for m in smtp.messages)
    assert sent == 3
    # bob opted out; the admin and the outsider have nothing to do
    assert recipients == sorted([agents.alice, agents.chloe, agents.denis])
    [digest] = smtp.to(agents.alice)
    text = body(digest)
    assert "À traiter : 1" in text and "En retard :" in text and "2026-00999" in text
    assert "Ne plus recevoir ce résumé" in text


def test_worker_jobs_send_the_outbox(app, agents, smtp):
    from app.core.worker import run_once

    with app.app_context():
        task_id = start_case()
        services.add_comment(task_id, user(agents.alice), "@bob.leroy")
        results = run_once()
    assert results["inbox_notification_emails"] == "ok 1"
    assert len(smtp.to(agents.bob)) >= 1
