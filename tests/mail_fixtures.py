"""E-mails built for the tests, reproducing the hard cases met in real mailboxes."""

from __future__ import annotations

import base64
import struct
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime

from tests.intake_helpers import pdf_bytes

__all__ = ["pdf_bytes"]

FIXED_DATE = "Mon, 02 Mar 2026 09:15:00 +0100"


def simple(
    subject: str = "Demande d'information",
    sender: str = "Claire Dupont <claire.dupont@example.org>",
    body: str = "Bonjour, je souhaite un renseignement.",
    message_id: str | None = "<msg-1@example.org>",
    attachment: tuple[str, str, bytes] | None = None,
    extra_headers: dict | None = None,
    date: str | None = FIXED_DATE,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "routes@departement.test"
    msg["Subject"] = subject
    if date:
        msg["Date"] = date
    if message_id:
        msg["Message-ID"] = message_id
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if attachment:
        name, mime, data = attachment
        maintype, subtype = mime.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def with_pdf(index: int, size: int = 20_000) -> bytes:
    """A message of about ``size`` bytes with a PDF attachment (the benchmark's message)."""
    pdf = pdf_bytes(f"Piece {index}")
    body = ("Madame, Monsieur, veuillez trouver ci-joint ma demande. " * 20)[:1000]
    encoded_room = max(0, size - 1800 - len(body))  # headers, MIME parts, base64 growth
    padding = b"%" + b"x" * max(0, encoded_room * 3 // 4 - len(pdf)) + b"\n"
    return simple(
        subject=f"Demande numéro {index}",
        message_id=f"<bench-{index}@example.org>",
        body=body,
        attachment=(f"demande-{index}.pdf", "application/pdf", pdf + padding),
    )


def latin1_body_and_encoded_subject() -> bytes:
    return (
        b"From: =?iso-8859-1?Q?Ren=E9e_L=E9v=EAque?= <renee@example.org>\r\n"
        b"To: accueil@departement.test\r\n"
        b"Subject: =?iso-8859-1?Q?R=E9clamation_:_d=E9neigement?=\r\n"
        b"Date: " + FIXED_DATE.encode() + b"\r\n"
        b"Message-ID: <latin1@example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        b"La route n'a pas \xe9t\xe9 d\xe9neig\xe9e depuis trois jours.\r\n"
    )


def unknown_charset() -> bytes:
    return (
        b"From: bob@example.org\r\nSubject: Charset inconnu\r\nDate: "
        + FIXED_DATE.encode()
        + b"\r\nMessage-ID: <unk@example.org>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=x-fantaisie\r\n\r\nCaf\xc3\xa9 cr\xc3\xa8me\r\n"
    )


def broken_boundary() -> bytes:
    """A multipart whose declared boundary never appears, then one never closed."""
    return (
        b"From: alice@example.org\r\nSubject: Boundary perdue\r\nDate: "
        + FIXED_DATE.encode()
        + b"\r\nMessage-ID: <broken@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="ABSENT"\r\n\r\n'
        b"--AUTRE\r\nContent-Type: text/plain\r\n\r\nTexte visible malgre tout.\r\n--AUTRE\r\n"
    )


def unclosed_boundary() -> bytes:
    return (
        b"From: alice@example.org\r\nSubject: Sans fin\r\nDate: "
        + FIXED_DATE.encode()
        + b"\r\nMessage-ID: <unclosed@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B1"\r\n\r\n'
        b"--B1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCorps du message.\r\n"
        b"--B1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
        b'filename="coupe.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + base64.encodebytes(pdf_bytes("coupe"))
    )


def nested_message() -> bytes:
    inner = simple(
        subject="Message transféré",
        message_id="<inner@example.org>",
        attachment=("plan.pdf", "application/pdf", pdf_bytes("plan")),
    )
    outer = EmailMessage()
    outer["From"] = "Paul Martin <paul@example.org>"
    outer["Subject"] = "Fwd: Message transféré"
    outer["Date"] = FIXED_DATE
    outer["Message-ID"] = "<outer@example.org>"
    outer.set_content("Je vous transfère ce message.")
    outer.add_attachment(message_from_bytes(inner, policy=policy.default))
    return outer.as_bytes()


def tricky_filenames() -> bytes:
    """RFC 2231 (with continuation) and RFC 2047 encoded-word file names."""
    pdf = base64.encodebytes(pdf_bytes("noms"))
    return (
        b"From: claire@example.org\r\nSubject: Noms de fichiers\r\nDate: "
        + FIXED_DATE.encode()
        + b"\r\nMessage-ID: <names@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n'
        b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDeux pieces.\r\n"
        b"--XX\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment;\r\n"
        b" filename*0*=utf-8''Re%C3%A7u%20de%20d%C3%A9p%C3%B4t;\r\n"
        b" filename*1*=%20%C3%A9t%C3%A9.pdf\r\n\r\n"
        + pdf
        + b"--XX\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="=?UTF-8?B?'
        + base64.b64encode("Attestation élève.pdf".encode())
        + b'?="\r\n\r\n'
        + pdf
        + b"--XX--\r\n"
    )


def no_message_id_no_date() -> bytes:
    return simple(
        subject="Sans identifiant",
        message_id=None,
        date=None,
        body="Ce message n'a ni Message-ID ni date.",
    )


def dangerous_attachments() -> bytes:
    msg = EmailMessage()
    msg["From"] = "pirate@example.net"
    msg["Subject"] = "Votre facture"
    msg["Date"] = FIXED_DATE
    msg["Message-ID"] = "<danger@example.net>"
    msg.set_content("Voir pièces jointes.")
    msg.add_attachment(
        b"MZ\x90\x00" + b"\x00" * 200,
        maintype="application",
        subtype="octet-stream",
        filename="facture.pdf.exe",
    )
    msg.add_attachment(
        _docm(), maintype="application", subtype="octet-stream", filename="facture.docm"
    )
    msg.add_attachment(
        pdf_bytes("vraie facture"), maintype="application", subtype="pdf", filename="facture.pdf"
    )
    return msg.as_bytes()


def _docm() -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        archive.writestr("word/vbaProject.bin", b"\xd0\xcf\x11\xe0macro")
    return out.getvalue()


def _tnef_attribute(level: int, attr_id: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BII", level, attr_id, len(data)) + data + struct.pack("<H", checksum)


def tnef_blob(files: list[tuple[str, bytes]]) -> bytes:
    """A minimal TNEF stream (what Outlook sends as winmail.dat) holding files."""
    blob = struct.pack("<IH", 0x223E9F78, 0x0001)
    blob += _tnef_attribute(1, 0x00089006, struct.pack("<I", 0x00010000))  # TNEF version
    blob += _tnef_attribute(1, 0x00069007, struct.pack("<II", 1252, 0))  # OEM code page
    for name, data in files:
        blob += _tnef_attribute(2, 0x00069002, b"\x01\x00\x00\x00" + b"\x00" * 10)  # rendering
        blob += _tnef_attribute(2, 0x00018010, name.encode("cp1252") + b"\x00")  # title
        blob += _tnef_attribute(2, 0x0006800F, data)  # data
    return blob


def tnef_message() -> bytes:
    msg = EmailMessage()
    msg["From"] = "outlook@example.org"
    msg["Subject"] = "Dossier via Outlook"
    msg["Date"] = FIXED_DATE
    msg["Message-ID"] = "<tnef@example.org>"
    msg.set_content("Voir winmail.dat")
    msg.add_attachment(
        tnef_blob([("releve.pdf", pdf_bytes("releve")), ("note.txt", b"Une note")]),
        maintype="application",
        subtype="ms-tnef",
        filename="winmail.dat",
    )
    return msg.as_bytes()


def reply_to(message_id: str, subject: str) -> bytes:
    return simple(
        subject=subject,
        message_id="<reply-1@example.org>",
        body="Voici le complément demandé.",
        extra_headers={"In-Reply-To": message_id, "References": message_id},
    )


def now_date() -> str:
    from datetime import UTC, datetime

    return format_datetime(datetime.now(UTC))


def eight_bit_headers() -> bytes:
    """Raw UTF-8 in headers and in a file name (RFC 6532 style, or just broken mailers)."""
    pdf = base64.encodebytes(pdf_bytes("8bit"))
    return (
        "From: Jérôme Lefèvre <jerome@example.org>\r\nSubject: Dossier n°12 : réponse\r\n"
        "Date: ".encode()
        + FIXED_DATE.encode()
        + b"\r\nMessage-ID: <8bit@example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="Z"\r\n\r\n'
        b"--Z\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + "Pièce jointe ci-dessous.\r\n".encode()
        + b"--Z\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        + 'Content-Disposition: attachment; filename="relevé d\'identité.pdf"\r\n\r\n'.encode()
        + pdf
        + b"--Z--\r\n"
    )
