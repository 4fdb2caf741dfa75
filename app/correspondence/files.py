"""What an uploaded or attached file really is: type sniffing, limits, dangerous content.

The type is read from the bytes (magic numbers), not trusted from the client. Executables
and office documents carrying macros are dangerous: uploads refuse them, the mail ingest
stores them in quarantine and flags the case.
"""

from __future__ import annotations

import io
import mimetypes
import zipfile
from dataclasses import dataclass

from app.core.errors import PayloadTooLarge, UnsupportedMediaType

PDF = "application/pdf"
TIFF = "image/tiff"
JPEG = "image/jpeg"
PNG = "image/png"
SCAN_TYPES = {PDF, TIFF, JPEG, PNG}
OFFICE_TYPES = {
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
}
DOCUMENT_TYPES = SCAN_TYPES | OFFICE_TYPES | {"text/plain", "text/csv", "application/xml"}

DANGEROUS_EXTENSIONS = {
    ".exe", ".com", ".bat", ".cmd", ".scr", ".pif", ".cpl", ".msi", ".msp", ".dll", ".sys",
    ".js", ".jse", ".vbs", ".vbe", ".wsf", ".wsh", ".ps1", ".psm1", ".hta", ".jar", ".lnk",
    ".reg", ".sh", ".apk", ".app", ".iso", ".img", ".vhd",
    ".docm", ".dotm", ".xlsm", ".xltm", ".xlam", ".pptm", ".potm", ".ppam", ".ppsm", ".sldm",
}  # fmt: skip
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass
class Sniffed:
    mime_type: str
    danger: str | None = None


def _zip_type(data: bytes, filename: str) -> tuple[str, str | None]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            mimetype = (
                archive.read("mimetype").decode("ascii", "replace").strip()
                if "mimetype" in names
                else None
            )
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, RuntimeError):
        return "application/zip", None
    danger = None
    if any(n.lower().endswith("vbaproject.bin") for n in names):
        danger = "Document bureautique contenant des macros"
    if mimetype and mimetype.startswith("application/vnd.oasis.opendocument"):
        if any(n.lower().startswith("basic/") for n in names):
            danger = "Document bureautique contenant des macros"
        return mimetype, danger
    if "word/document.xml" in names:
        return "application/vnd.openxmlformats-officedocument.wordprocessingml.document", danger
    if "xl/workbook.xml" in names:
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", danger
    if "ppt/presentation.xml" in names:
        return "application/vnd.openxmlformats-officedocument.presentationml.presentation", danger
    return "application/zip", danger


def sniff(data: bytes, filename: str = "") -> Sniffed:
    """The real type of some bytes and, when they are dangerous, why."""
    head = data[:8]
    extension = ("." + filename.rsplit(".", 1)[-1].lower()) if "." in filename else ""
    if (
        head.startswith(b"MZ")
        or head.startswith(b"\x7fELF")
        or head[:4]
        in (
            b"\xca\xfe\xba\xbe",
            b"\xcf\xfa\xed\xfe",
        )
    ):
        return Sniffed("application/x-msdownload", "Programme exécutable")
    if head.startswith(b"%PDF"):
        mime = PDF
    elif head[:4] in (b"II*\x00", b"MM\x00*"):
        mime = TIFF
    elif head.startswith(b"\xff\xd8\xff"):
        mime = JPEG
    elif head.startswith(b"\x89PNG"):
        mime = PNG
    elif head.startswith(b"GIF8"):
        mime = "image/gif"
    elif head.startswith(b"PK\x03\x04"):
        mime, danger = _zip_type(data, filename)
        if danger is None and extension in DANGEROUS_EXTENSIONS:
            danger = "Extension de fichier à risque"
        return Sniffed(mime, danger)
    elif head == _OLE:
        mime = {
            ".xls": "application/vnd.ms-excel",
            ".msg": "application/vnd.ms-outlook",
            ".ppt": "application/vnd.ms-powerpoint",
        }.get(extension, "application/msword")
        if b"_\x00V\x00B\x00A\x00_\x00P\x00R\x00O\x00J\x00E\x00C\x00T" in data or (
            b"VBA" in data and b"\x00A\x00t\x00t\x00r\x00i\x00b\x00u\x00t" in data
        ):
            return Sniffed(mime, "Document bureautique contenant des macros")
    else:
        guessed = mimetypes.guess_type(filename)[0] if filename else None
        mime = guessed or ("text/plain" if _looks_like_text(data) else "application/octet-stream")
    danger = "Extension de fichier à risque" if extension in DANGEROUS_EXTENSIONS else None
    return Sniffed(mime, danger)


def _looks_like_text(data: bytes) -> bool:
    sample = data[:4096]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        return all(b >= 9 for b in sample)
    return True


def check_upload(
    data: bytes, filename: str, *, allowed: set[str], max_bytes: int, field: str = "file"
) -> str:
    """The sniffed type of an upload; 413 when too large, 415 when of a refused type."""
    if len(data) > max_bytes:
        megabytes = max_bytes // (1024 * 1024)
        raise PayloadTooLarge(
            f"Le fichier « {filename} » dépasse la taille autorisée ({megabytes} Mo).",
            errors=[
                {"field": field, "message": f"Fichier trop volumineux : {megabytes} Mo au plus."}
            ],
        )
    if not data:
        raise UnsupportedMediaType(
            f"Le fichier « {filename} » est vide.",
            errors=[{"field": field, "message": "Fichier vide."}],
        )
    sniffed = sniff(data, filename)
    if sniffed.danger or sniffed.mime_type not in allowed:
        reason = sniffed.danger or f"type {sniffed.mime_type} non accepté"
        raise UnsupportedMediaType(
            f"Le fichier « {filename} » est refusé : {reason}.",
            errors=[{"field": field, "message": f"Fichier refusé : {reason}."}],
        )
    return sniffed.mime_type
