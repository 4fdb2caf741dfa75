"""The IMAP side of a functional mailbox (imapclient): connect, list, fetch, move."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from app.mail.models import Mailbox

FETCH_ITEMS = [b"BODY.PEEK[]", b"INTERNALDATE"]
TIMEOUT = 60


@dataclass
class Fetched:
    uid: int
    raw: bytes
    internal_date: datetime | None


@contextmanager
def connect(mailbox: Mailbox, password: str) -> Iterator[IMAPClient]:
    """A logged-in client for the mailbox (implicit TLS, STARTTLS on port 143, or plain)."""
    context = ssl.create_default_context()
    implicit = mailbox.use_tls and mailbox.port != 143
    client = IMAPClient(
        mailbox.host, port=mailbox.port, ssl=implicit, ssl_context=context, timeout=TIMEOUT
    )
    try:
        if mailbox.use_tls and not implicit:
            client.starttls(context)
        client.login(mailbox.username, password)
        yield client
    finally:
        try:
            client.logout()
        except Exception:  # the connection may already be gone; nothing to clean up
            client.shutdown()


def open_folder(client: IMAPClient, folder: str) -> int:
    """Select a folder for writing; return its UIDVALIDITY."""
    info = client.select_folder(folder)
    return int(info[b"UIDVALIDITY"])


def pending_uids(client: IMAPClient) -> list[int]:
    """UIDs of the messages still in the selected folder (oldest first)."""
    return sorted(int(uid) for uid in client.search(["NOT", "DELETED"]))


def fetch(client: IMAPClient, uids: list[int]) -> list[Fetched]:
    """Raw bytes and server reception date of messages, without setting \\Seen."""
    found = client.fetch(uids, FETCH_ITEMS)
    result = []
    for uid in uids:
        item = found.get(uid)
        if not item or b"BODY[]" not in item:
            continue
        when = item.get(b"INTERNALDATE")
        if isinstance(when, datetime):
            when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
        result.append(Fetched(uid, bytes(item[b"BODY[]"]), when))
    return result


def ensure_folder(client: IMAPClient, folder: str) -> None:
    """Create the folder where processed messages go, when missing."""
    if not client.folder_exists(folder):
        client.create_folder(folder)
        with suppress(IMAPClientError):  # subscription is a convenience for mail clients
            client.subscribe_folder(folder)


def move_messages(client: IMAPClient, uids: list[int], folder: str) -> None:
    """Move messages to ``folder`` (MOVE, or COPY + delete + expunge of those UIDs)."""
    if not uids:
        return
    if client.has_capability("MOVE"):
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.delete_messages(uids)
    if client.has_capability("UIDPLUS"):
        client.uid_expunge(uids)
    else:
        client.expunge()


def flag_messages(client: IMAPClient, uids: list[int]) -> None:
    """Flag messages (\\Flagged) that could not be registered: they stay in the folder,
    marked for a person to look at, and are tried again at the next run."""
    if uids:
        client.add_flags(uids, [rb"\Flagged"])
