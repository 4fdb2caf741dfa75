"""PDF work with pyHanko: reading a PDF's layout, PAdES signing, validation reports.

Nothing here touches the database: services hand in bytes and a loaded signer and get
bytes back, so the expensive part of a signature can run before any row is locked.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers import Signer
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator import ValidationContext

from app.core.errors import Conflict, UnsupportedMediaType, ValidationFailed

log = logging.getLogger(__name__)

PLACEHOLDER = "[[signature]]"
LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
STAMP_WIDTH, STAMP_HEIGHT, MARGIN, GAP = 215.0, 70.0, 36.0, 8.0
# Bytes reserved in the file for the CMS signature: chain and signature, plus a timestamp
# token when one is asked for (pyHanko would otherwise sign twice to measure it).
_CMS_BASE, _TIMESTAMP_RESERVE = 3072, 8192


class SignatureFailure(Conflict):
    """pyHanko could not sign (key, timestamp authority, validation material): 409."""

    kind = "signature-failed"


@dataclass
class Placement:
    """Where a stamp is drawn."""

    page: int  # 0-based; -1 is the last page
    box: tuple[float, float, float, float] | None  # None: an invisible signature


@dataclass
class Signed:
    """A signed PDF and the field and level of its new signature."""

    data: bytes
    field_name: str
    level: str


# --- reading ------------------------------------------------------------------------------


def read_layout(data: bytes, filename: str = "document") -> dict:
    """Check an uploaded PDF and read what signing needs: pages, last page size, placeholders.

    Raises UnsupportedMediaType for non-PDF content and ValidationFailed for PDFs that
    cannot be signed (damaged, encrypted).
    """
    if not data.lstrip()[:5].startswith(b"%PDF-"):
        raise UnsupportedMediaType(
            f"« {filename} » n'est pas un PDF.",
            errors=[{"field": "documents", "message": f"{filename} : PDF attendu."}],
        )
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        if reader.encrypted:
            raise ValidationFailed(
                f"« {filename} » est un PDF chiffré : il ne peut pas être signé.",
                errors=[{"field": "documents", "message": f"{filename} : PDF chiffré."}],
            )
        pages = int(reader.root["/Pages"]["/Count"])
        last = _media_box(reader, pages - 1)
    except ValidationFailed:
        raise
    except Exception as exc:  # pyHanko raises PdfReadError, KeyError, ValueError…
        raise ValidationFailed(
            f"« {filename} » est un PDF illisible : {exc}",
            errors=[{"field": "documents", "message": f"{filename} : PDF illisible."}],
        ) from exc
    return {"pages": pages, "last_page": list(last), "placeholders": find_placeholders(data)}


def _media_box(reader: PdfFileReader, index: int) -> tuple[float, float]:
    page = reader.find_page_for_modification(index)[0].get_object()
    node = page
    while node is not None and "/MediaBox" not in node:
        node = node.get("/Parent")
        node = node.get_object() if node is not None else None
    x1, y1, x2, y2 = (float(v) for v in (node or page)["/MediaBox"])
    return abs(x2 - x1), abs(y2 - y1)


def find_placeholders(data: bytes, text: str = PLACEHOLDER) -> list[dict]:
    """Where ``text`` is printed in the PDF, page by page, as stamp boxes under its top edge."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTChar, LTContainer

    found: list[dict] = []
    try:
        for index, page in enumerate(extract_pages(io.BytesIO(data), laparams=None)):
            chars: list = []

            def walk(item, chars=chars):
                if isinstance(item, LTChar):
                    chars.append(item)
                elif isinstance(item, LTContainer):
                    for child in item:
                        walk(child)

            walk(page)
            line = "".join(c.get_text() for c in chars)
            start = line.find(text)
            while start != -1:
                run = chars[start : start + len(text)]
                x1, top = min(c.x0 for c in run), max(c.y1 for c in run)
                found.append(
                    {
                        "page": index,
                        "box": [
                            round(x1, 2),
                            round(top - STAMP_HEIGHT, 2),
                            round(x1 + STAMP_WIDTH, 2),
                            round(top, 2),
                        ],
                    }
                )
                start = line.find(text, start + len(text))
    except Exception:  # an odd PDF: no placeholder, the stamp goes to its default place
        log.warning("placeholder search failed", exc_info=True)
    return found


def placement(layout: dict, index: int, seal: bool = False) -> Placement:
    """Where the ``index``-th stamp goes: the matching placeholder, else the last page's
    bottom right (signatures, stacked upwards) or bottom left (seals)."""
    placeholders = layout.get("placeholders") or []
    if not seal and index < len(placeholders):
        spot = placeholders[index]
        return Placement(spot["page"], tuple(round(v) for v in spot["box"]))
    width = (layout.get("last_page") or [595.0, 842.0])[0]
    slot = index if seal else index - len(placeholders)
    y1 = MARGIN + slot * (STAMP_HEIGHT + GAP)
    x1 = MARGIN if seal else width - MARGIN - STAMP_WIDTH
    # pyHanko lays stamps out with exact fractions: whole points only.
    return Placement(-1, tuple(round(v) for v in (x1, y1, x1 + STAMP_WIDTH, y1 + STAMP_HEIGHT)))


# --- signing -------------------------------------------------------------------------------


def sign_pdf(
    data: bytes,
    signer: Signer,
    *,
    level: str,
    stamp_lines: list[str] | None,
    where: Placement | None,
    reason: str,
    location: str | None = None,
    signer_name: str | None = None,
    tsa_url: str | None = None,
    trust_roots: list[asn1_x509.Certificate] | None = None,
    field_prefix: str = "Signature",
) -> Signed:
    """Sign a PDF as an incremental update (earlier signatures stay valid)."""
    if level not in LEVELS:
        raise SignatureFailure(f"Niveau PAdES inconnu : {level}")
    if level != "B-B" and not tsa_url:
        raise SignatureFailure(
            f"Le niveau {level} exige une autorité d'horodatage (MISSIVE_TSA_URL)."
        )
    try:  # one parse of the input: the writer's reader also lists the existing fields
        writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
        existing = {name for name, _value, _ref in fields.enumerate_sig_fields(writer.prev)}
    except (PdfError, OSError, ValueError) as exc:
        raise SignatureFailure(f"PDF illisible : {exc}") from exc
    number = len(existing) + 1
    while f"{field_prefix}{number}" in existing:
        number += 1
    field_name = f"{field_prefix}{number}"
    validation_context = None
    if level in ("B-LT", "B-LTA"):
        validation_context = ValidationContext(
            trust_roots=trust_roots or [], allow_fetching=True, revocation_mode="hard-fail"
        )
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        reason=reason,
        location=location,
        name=signer_name,
        embed_validation_info=validation_context is not None,
        validation_context=validation_context,
        use_pades_lta=level == "B-LTA",
    )
    timestamper = None
    if level != "B-B":
        from pyhanko.sign.timestamps.requests_client import HTTPTimeStamper

        timestamper = HTTPTimeStamper(tsa_url, timeout=20)
    spec = fields.SigFieldSpec(field_name)
    style = None
    if where is not None and where.box is not None:
        spec = fields.SigFieldSpec(field_name, on_page=where.page, box=where.box)
        text = "\n".join(stamp_lines or [signer_name or ""]).replace("%", "%%")
        style = TextStampStyle(
            stamp_text=text, border_width=1, text_box_style=TextBoxStyle(font_size=8)
        )
    pdf_signer = signers.PdfSigner(
        meta, signer, timestamper=timestamper, stamp_style=style, new_field_spec=spec
    )
    der_size = (
        _CMS_BASE
        + sum(len(c.dump()) for c in signer.cert_registry)
        + len(signer.signing_cert.dump())
        + (_TIMESTAMP_RESERVE if timestamper else 0)
    )
    reserve = 2 * der_size  # hexadecimal digits in /Contents
    try:
        output = pdf_signer.sign_pdf(writer, bytes_reserved=reserve)
    except (SigningError, PdfError, OSError, ValueError) as exc:
        raise SignatureFailure(f"La signature a échoué : {exc}") from exc
    except Exception as exc:  # timestamp authority, revocation fetch, token errors
        raise SignatureFailure(f"La signature a échoué : {type(exc).__name__}: {exc}") from exc
    return Signed(output.getvalue(), field_name, level)


# --- validation ----------------------------------------------------------------------------

_COVERAGE = {
    "ENTIRE_FILE": "document entier",
    "ENTIRE_REVISION": "révision entière (des ajouts ont suivi)",
    "CONTIGUOUS_BLOCK_FROM_START": "partielle",
    "UNCLEAR": "indéterminée",
}
_MODIFICATIONS = {
    "NONE": "aucune",
    "LTA_UPDATES": "ajouts d'horodatage et de validation",
    "FORM_FILLING": "remplissage de formulaire ou signature suivante",
    "ANNOTATIONS": "annotations",
    "OTHER": "modifications du contenu",
}


def validation_report(data: bytes, trust_roots: list[asn1_x509.Certificate]) -> dict:
    """What pyHanko's validator says of every signature in a PDF (offline, no fetching)."""
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        regular = list(reader.embedded_regular_signatures)
        document_timestamps = list(reader.embedded_timestamp_signatures)
        has_dss = "/DSS" in reader.root
    except Exception as exc:
        return {"readable": False, "error": f"PDF illisible : {exc}", "signatures": []}
    from pyhanko.sign.validation import validate_pdf_signature

    report = {"readable": True, "signatures": [], "document_timestamps": len(document_timestamps)}
    for embedded in regular:
        context = ValidationContext(trust_roots=trust_roots, allow_fetching=False)
        try:
            status = validate_pdf_signature(embedded, signer_validation_context=context)
        except Exception as exc:
            report["signatures"].append(
                {
                    "field": embedded.field_name,
                    "intact": False,
                    "valid": False,
                    "trusted": False,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
            continue
        timestamp = status.timestamp_validity
        coverage = status.coverage.name if status.coverage is not None else "UNCLEAR"
        modification = (
            status.modification_level.name if status.modification_level is not None else "NONE"
        )
        level = "B-B"
        if timestamp is not None:
            level = "B-LTA" if document_timestamps else ("B-LT" if has_dss else "B-T")
        report["signatures"].append(
            {
                "field": embedded.field_name,
                "signer": _common_name(status.signing_cert),
                "signer_subject": status.signing_cert.subject.human_friendly,
                "issuer": status.signing_cert.issuer.human_friendly,
                "intact": bool(status.intact),
                "valid": bool(status.valid),
                "trusted": bool(status.trusted),
                "signing_time": _iso(status.signer_reported_dt),
                "timestamp": _iso(timestamp.timestamp) if timestamp is not None else None,
                "timestamp_valid": bool(timestamp.valid and timestamp.intact)
                if timestamp is not None
                else None,
                "coverage": coverage,
                "coverage_label": _COVERAGE.get(coverage, coverage),
                "modifications": modification,
                "modifications_label": _MODIFICATIONS.get(modification, modification),
                "changes_allowed": bool(status.docmdp_ok) if status.docmdp_ok is not None else True,
                "level": level,
                "ok": bool(status.bottom_line),
                "summary": status.summary(),
            }
        )
    return report


def _common_name(certificate: asn1_x509.Certificate) -> str:
    subject = certificate.subject.native
    return subject.get("common_name") or certificate.subject.human_friendly


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
