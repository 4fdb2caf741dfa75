"""A real SMTP server on localhost that keeps the messages it receives (aiosmtpd)."""

from __future__ import annotations

from email import message_from_bytes, policy

from aiosmtpd.controller import Controller

from tests.dovecot import free_port


class _Keep:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


class SmtpSink:
    def __init__(self):
        self.handler = _Keep()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self):
        return self.handler.messages

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
