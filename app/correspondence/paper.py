"""Scanned paper: separator sheets, batch splitting by QR code, OCR in the worker.

The mail office prints separator sheets (a QR code, optionally naming the type of the
item that follows), slides one in front of each letter and scans the whole pile at once.
``split_batch`` finds the sheets (zxing-cpp on pages rendered by PDFium) and cuts the
scan into one PDF per letter. OCRmyPDF (Tesseract, French) later adds a searchable text
layer, as a new document derived from the scan, and the text goes into the search index.
"""

from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import img2pdf
import pikepdf
import pypdfium2
import segno
import zxingcpp
from PIL import Image

from app.core.errors import UnsupportedMediaType, ValidationFailed
from app.core.extensions import db
from app.correspondence import search
from app.correspondence.files import JPEG, PDF, PNG, TIFF
from app.correspondence.models import CaseDocument, CaseType, Correspondence
from app.documents.models import Document
from app.documents.services import add_document, content

log = logging.getLogger(__name__)

SEPARATOR_PREFIX = "MISSIVE:SEP:1:"
RENDER_SCALE = 100 / 72  # 100 dpi is plenty for a 6 cm QR code


@dataclass
class BatchItem:
    pdf: bytes
    pages: int
    type_code: str | None


# --- separator sheets ------------------------------------------------------------------


def _pdf_text(text: str) -> bytes:
    """A PDF string literal in WinAnsi (French accents), parentheses escaped."""
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("cp1252", "replace") + b")"


def separator_sheets(case_type: CaseType | None = None, count: int = 1) -> bytes:
    """A printable PDF of separator sheets (A4, vector QR code), for one type or none."""
    count = max(1, min(count, 200))
    payload = SEPARATOR_PREFIX + (case_type.code if case_type else "")
    matrix = segno.make(payload, error="h", micro=False).matrix
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name("/Helvetica-Bold"),
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )
    )
    module, size = 7.0, len(matrix)
    left, bottom = (595 - module * size) / 2, 330
    squares = b"".join(
        b"%.2f %.2f %.2f %.2f re\n"
        % (left + x * module, bottom + (size - 1 - y) * module, module, module)
        for y, row in enumerate(matrix)
        for x, dark in enumerate(row)
        if dark
    )
    label = case_type.label if case_type else "Type à qualifier"
    stream = (
        b"0 g\n" + squares + b"f\n"
        b"BT /F1 30 Tf 80 720 Td " + _pdf_text("FEUILLE DE SÉPARATION") + b" Tj ET\n"
        b"BT /F1 18 Tf 80 680 Td " + _pdf_text(f"Type : {label}") + b" Tj ET\n"
        b"BT /F1 12 Tf 80 250 Td "
        + _pdf_text("Placez cette feuille devant chaque courrier avant la numérisation du lot.")
        + b" Tj ET\n"
        b"BT /F1 12 Tf 80 232 Td "
        + _pdf_text("Elle est retirée automatiquement ; ne pas agrafer.")
        + b" Tj ET\n"
    )
    for _ in range(count):
        page = pdf.add_blank_page(page_size=(595, 842))
        page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        page.Contents = pdf.make_stream(stream)
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


# --- scans to PDF, splitting ------------------------------------------------------------


def scan_to_pdf(data: bytes, mime_type: str) -> bytes:
    """A PDF of a scan: PDFs as they are, TIFF (multi-page) / JPEG / PNG converted losslessly."""
    if mime_type == PDF:
        return data
    if mime_type not in (TIFF, JPEG, PNG):
        raise UnsupportedMediaType(
            "Seuls les fichiers PDF, TIFF, JPEG et PNG sont acceptés pour les numérisations.",
            errors=[{"field": "files", "message": f"Type {mime_type} refusé."}],
        )
    try:
        return img2pdf.convert(data)
    except Exception:  # alpha channel, odd colour modes: flatten with Pillow first
        image = Image.open(io.BytesIO(data))
        frames = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG")
            frames.append(buffer.getvalue())
        return img2pdf.convert(frames)


def separator_type(page_image: Image.Image) -> str | None:
    """The type code of a separator sheet ("" for none), or None if the page is a letter."""
    for barcode in zxingcpp.read_barcodes(page_image, formats=zxingcpp.BarcodeFormat.QRCode):
        if barcode.text.startswith(SEPARATOR_PREFIX):
            return barcode.text[len(SEPARATOR_PREFIX) :]
    return None


def split_batch(pdf_data: bytes) -> list[BatchItem]:
    """Cut a batch scan at its separator sheets (dropped); pages before the first sheet
    form an item too."""
    try:
        rendered = pypdfium2.PdfDocument(pdf_data)
        source = pikepdf.open(io.BytesIO(pdf_data))
    except Exception as exc:
        raise ValidationFailed(
            "Le fichier numérisé est illisible.",
            errors=[{"field": "files", "message": "PDF illisible."}],
        ) from exc
    groups: list[tuple[str | None, list[int]]] = []
    current: tuple[str | None, list[int]] | None = None
    try:
        for index in range(len(rendered)):
            page = rendered[index]
            image = page.render(scale=RENDER_SCALE, grayscale=True).to_pil()
            page.close()
            code = separator_type(image)
            if code is not None:
                current = (code or None, [])
                groups.append(current)
                continue
            if current is None:
                current = (None, [])
                groups.append(current)
            current[1].append(index)
    finally:
        rendered.close()
    items = []
    for type_code, pages in groups:
        if not pages:
            continue
        part = pikepdf.new()
        for index in pages:
            part.pages.append(source.pages[index])
        out = io.BytesIO()
        part.save(out)
        items.append(BatchItem(out.getvalue(), len(pages), type_code))
    return items


# --- OCR --------------------------------------------------------------------------------


def ocr_pdf(data: bytes, language: str = "fra") -> tuple[bytes, str]:
    """Add a text layer to a scanned PDF; return the new PDF and its text."""
    import ocrmypdf

    with tempfile.TemporaryDirectory(prefix="missive-ocr-") as workdir:
        source, target, sidecar = (Path(workdir) / n for n in ("in.pdf", "out.pdf", "out.txt"))
        source.write_bytes(data)
        ocrmypdf.ocr(
            source,
            target,
            language=[language],
            skip_text=True,
            output_type="pdf",
            optimize=0,
            sidecar=sidecar,
            progress_bar=False,
            jobs=1,
        )
        text = sidecar.read_text(encoding="utf-8", errors="replace") if sidecar.exists() else ""
        return target.read_bytes(), text.replace("\f", "\n").strip()


def ocr_case_document(case_id: int, document_id: int) -> Document | None:
    """OCR one scan of a case (once): store the searchable PDF and index its text."""
    case = db.session.get(Correspondence, case_id)
    original = db.session.get(Document, document_id)
    if case is None or original is None:
        return None
    done = db.session.query(Document).filter_by(parent_id=original.id, kind="ocr").first()
    if done is not None:
        return done
    searchable, text = ocr_pdf(content(original))
    derived = add_document(
        searchable,
        filename=original.filename.rsplit(".", 1)[0] + "-ocr.pdf",
        mime_type=PDF,
        kind="ocr",
        parent=original,
        description="Numérisation avec couche texte (OCR)",
        text=text or None,
    )
    case.attachments.append(CaseDocument(document=derived, role="ocr"))
    db.session.flush()
    if text:
        search.append_text(case, text)
    db.session.commit()
    log.info("case %s: OCR of document %s gave %d characters", case.chrono, original.id, len(text))
    return derived
