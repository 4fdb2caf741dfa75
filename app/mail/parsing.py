"""Reading an e-mail as it really arrives: broken boundaries, unknown charsets, 8-bit
headers, RFC 2231 and encoded-word file names, nested messages, TNEF (winmail.dat).

``parse_message`` never raises: what cannot be read is reported in ``problems`` and,
when nothing can be read at all, ``failed`` is set so a person looks at the raw bytes.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html import unescape

import nh3

from app.correspondence.files import sniff

log = logging.getLogger(__name__)

MAX_TEXT = 200_000
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MSGID = re.compile(r"<([^<>\s]+)>")
_FALLBACK_CHARSETS = ("utf-8", "cp1252")
_RAW_NAME = re.compile(r"(?:file)?name\s*=\s*\"?([^\";\r\n]+)", re.I)
_SAFE_NAME = re.compile(r"[^\w .-]+")


class _RememberedHeaders(HeaderRegistry):
    """The standard header classes, each (name, value) parsed once per message:
    ``EmailMessage`` parses a header again at every access (a part's Content-Type five
    times or more while it is read). Parsed headers are immutable strings."""

    def __init__(self) -> None:
        super().__init__()
        self._parsed: dict[tuple[str, str], object] = {}

    def __call__(self, name, value):
        key = (name, value)
        if key not in self._parsed:
            self._parsed[key] = super().__call__(name, value)
        return self._parsed[key]


@dataclass
class Attachment:
    filename: str
    mime_type: str
    data: bytes
    danger: str | None = None
    inline: bool = False


@dataclass
class ParsedMessage:
    message_id: str | None = None
    subject: str = ""
    from_name: str | None = None
    from_address: str | None = None
    sent_at: datetime | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    text: str = ""
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    failed: bool = False
    digest: str = ""
    key: str = ""


def content_digest(raw: bytes) -> str:
    """Digest of the message without its header (headers added in transit differ)."""
    match = _HEADER_END.search(raw)
    body = raw[match.end() :] if match else raw
    return hashlib.sha256(body.replace(b"\r\n", b"\n")).hexdigest()


def message_key(message_id: str | None, parsed: ParsedMessage, digest: str) -> str:
    """One key per message whatever mailbox it reached: Message-ID plus content digest
    (plus sender, date and subject, which tell apart identical bodies without an id)."""
    parts = [
        message_id or "",
        parsed.from_address or "",
        parsed.sent_at.isoformat() if parsed.sent_at else "",
        parsed.subject,
        digest,
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()


def _repair(text: str) -> str:
    """Strings from 8-bit headers carry surrogate escapes: read them as UTF-8 or cp1252."""
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    for charset in _FALLBACK_CHARSETS:
        try:
            return raw.decode(charset)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", "replace")


def _decode_words(text: str) -> str:
    """Decode RFC 2047 encoded-words left in a value (unknown charsets keep the text)."""
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (LookupError, UnicodeDecodeError, ValueError, HeaderParseError):
        return text


def _header(msg: Message, name: str, problems: list[str]) -> str | None:
    try:
        value = msg.get(name)
    except Exception as exc:  # a malformed header must not lose the message
        problems.append(f"En-tête {name} illisible : {exc}")
        raw = msg.get_all(name, failobj=[None]) if hasattr(msg, "get_all") else [None]
        value = raw[0] if raw else None
    if value is None:
        return None
    return _repair(" ".join(_decode_words(str(value)).split()))


def _decode_bytes(data: bytes, charset: str | None, problems: list[str]) -> str:
    for candidate in [charset, *_FALLBACK_CHARSETS] if charset else _FALLBACK_CHARSETS:
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            if candidate == charset:
                problems.append(f"Jeu de caractères « {charset} » illisible, texte relu")
    return data.decode("utf-8", "replace")


def _part_text(part: Message, problems: list[str]) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    return _decode_bytes(payload, part.get_content_charset(), problems)


def _filename(part: Message, problems: list[str]) -> str | None:
    try:
        name = part.get_filename()
    except Exception as exc:
        problems.append(f"Nom de pièce jointe illisible : {exc}")
        name = None
    if name is None:
        name = _raw_filename(part)
    if name is None:
        return None
    name = _decode_words(_repair(str(name)))
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip().strip("\x00")
    return name[:250] or None


def _raw_filename(part: Message) -> str | None:
    """A file name the parser gave up on (e.g. an unquoted encoded-word), read from the
    raw Content-Disposition or Content-Type header."""
    for header in ("Content-Disposition", "Content-Type"):
        for key, value in getattr(part, "raw_items", lambda: [])():
            if key.lower() != header.lower():
                continue
            found = _RAW_NAME.search(str(value))
            if found:
                return found.group(1).strip()
    return None


def sanitise_html(html: str) -> str:
    """HTML safe to show in a page: no script, style, event handler or remote frame."""
    return nh3.clean(
        html,
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel="noopener noreferrer nofollow",
    )


def _unpack_tnef(data: bytes, parsed: ParsedMessage) -> bool:
    """Add the files of a winmail.dat to the attachments; True when it could be read."""
    try:
        from tnefparse import TNEF

        tnef = TNEF(data)
    except Exception as exc:
        parsed.problems.append(f"winmail.dat illisible ({exc}) : conservé tel quel")
        return False
    for item in tnef.attachments:
        name = None
        try:
            name = item.long_filename()
        except Exception:
            name = None
        name = (
            name
            or (
                item.name.decode("cp1252", "replace") if isinstance(item.name, bytes) else item.name
            )
            or "piece-jointe"
        )
        content = item.data if isinstance(item.data, bytes) else bytes(item.data or b"")
        _add_attachment(parsed, str(name).strip("\x00"), content)
    body = getattr(tnef, "body", None)
    if body and not parsed.text:
        parsed.text = body.decode("cp1252", "replace") if isinstance(body, bytes) else str(body)
    html = getattr(tnef, "htmlbody", None)
    if html and not parsed.html:
        parsed.html = html.decode("utf-8", "replace") if isinstance(html, bytes) else str(html)
    return True


def _add_attachment(parsed: ParsedMessage, filename: str, data: bytes, inline: bool = False):
    sniffed = sniff(data, filename)
    parsed.attachments.append(
        Attachment(filename, sniffed.mime_type, data, danger=sniffed.danger, inline=inline)
    )


def _walk(part: Message, parsed: ParsedMessage, texts: list[str], htmls: list[str]) -> None:
    content_type = part.get_content_type()
    filename = _filename(part, parsed.problems)
    if content_type == "message/rfc822":
        _add_nested(part, filename, parsed)
        return
    if part.is_multipart():
        for child in part.get_payload() or []:
            if isinstance(child, Message):
                _walk(child, parsed, texts, htmls)
        return
    disposition = (part.get_content_disposition() or "").lower()
    if (
        content_type in ("application/ms-tnef", "application/vnd.ms-tnef")
        or (filename or "").lower() == "winmail.dat"
    ):
        data = part.get_payload(decode=True) or b""
        if not _unpack_tnef(data, parsed):
            _add_attachment(parsed, filename or "winmail.dat", data)
        return
    if content_type.startswith("multipart/"):  # its boundary is lost: read it as text
        parsed.problems.append("Structure multipart sans délimiteur lisible : lue comme texte")
        texts.append(_part_text(part, parsed.problems))
        return
    if disposition != "attachment" and not filename and content_type in ("text/plain", "text/html"):
        (texts if content_type == "text/plain" else htmls).append(_part_text(part, parsed.problems))
        return
    data = part.get_payload(decode=True)
    if data is None:
        payload = part.get_payload()
        data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    if not data and not filename:
        return
    extension = {"text/plain": ".txt", "text/html": ".html", "application/pdf": ".pdf"}.get(
        content_type, ""
    )
    _add_attachment(
        parsed,
        filename or f"piece-jointe-{len(parsed.attachments) + 1}{extension}",
        data,
        inline=disposition == "inline",
    )


def _add_nested(part: Message, filename: str | None, parsed: ParsedMessage) -> None:
    """A forwarded message (message/rfc822) is kept whole, as an .eml attachment."""
    inner = part.get_payload()
    inner_msg = inner[0] if isinstance(inner, list) and inner else None
    if isinstance(inner_msg, Message):
        try:
            data = inner_msg.as_bytes(policy=policy.compat32)
        except Exception:
            data = inner_msg.as_string(policy=policy.compat32).encode("utf-8", "replace")
        subject = _header(inner_msg, "Subject", parsed.problems)
    else:
        data, subject = part.get_payload(decode=True) or b"", None
    name = filename or _SAFE_NAME.sub("_", subject or "message")[:80] + ".eml"
    parsed.attachments.append(Attachment(name, "message/rfc822", data))


def parse_message(raw: bytes) -> ParsedMessage:
    """Read a raw message; never raises (see module docstring)."""
    parsed = ParsedMessage(digest=content_digest(raw))
    try:
        reading = policy.default.clone(header_factory=_RememberedHeaders())
        msg: EmailMessage = BytesParser(policy=reading).parsebytes(raw)
    except Exception as exc:
        log.warning("message could not be parsed: %s", exc)
        parsed.failed = True
        parsed.problems.append(f"Message illisible : {exc}")
        parsed.key = message_key(None, parsed, parsed.digest)
        return parsed
    try:
        _read(msg, parsed)
    except Exception as exc:
        log.warning("message only partly read: %s", exc, exc_info=True)
        parsed.failed = True
        parsed.problems.append(f"Message lu en partie seulement : {exc}")
    parsed.key = message_key(parsed.message_id, parsed, parsed.digest)
    return parsed


def _read(msg: EmailMessage, parsed: ParsedMessage) -> None:
    problems = parsed.problems
    for defect in msg.defects:
        problems.append(f"Structure : {type(defect).__name__}")
    raw_id = _header(msg, "Message-ID", problems)
    found = _MSGID.search(raw_id or "")
    parsed.message_id = found.group(1) if found else ((raw_id or "").strip("<> ") or None)
    parsed.subject = (_header(msg, "Subject", problems) or "")[:998]
    sender = _header(msg, "From", problems) or _header(msg, "Sender", problems)
    if sender:
        addresses = [a for a in getaddresses([sender]) if a[1] and "@" in a[1]]
        if addresses:
            parsed.from_name = _repair(addresses[0][0]) or None
            parsed.from_address = addresses[0][1].strip().lower()[:320]
    else:
        problems.append("Pas d'expéditeur (From)")
    date = _header(msg, "Date", problems)
    if date:
        try:
            sent = parsedate_to_datetime(date)
            parsed.sent_at = sent.astimezone(UTC) if sent.tzinfo else sent.replace(tzinfo=UTC)
        except (TypeError, ValueError, IndexError):
            problems.append(f"Date illisible : {date[:60]}")
    reply = _MSGID.search(_header(msg, "In-Reply-To", problems) or "")
    parsed.in_reply_to = reply.group(1) if reply else None
    parsed.references = _MSGID.findall(_header(msg, "References", problems) or "")[-20:]
    if not (parsed.message_id or parsed.subject or sender or date):
        parsed.failed = True
        problems.append("Aucun en-tête de courriel reconnu : ce n'est peut-être pas un message")
    texts: list[str] = []
    htmls: list[str] = []
    _walk(msg, parsed, texts, htmls)
    parsed.text = ("\n\n".join(t for t in texts if t.strip()) or parsed.text)[:MAX_TEXT]
    html = "\n".join(h for h in htmls if h.strip()) or parsed.html
    if html:
        parsed.html = sanitise_html(html[: MAX_TEXT * 5])
        if not parsed.text:
            plain = unescape(nh3.clean(html, tags=set()))
            parsed.text = " ".join(plain.split())[:MAX_TEXT]
