"""Paper: separator sheets, batch splitting by QR code, OCR into a searchable layer."""

from __future__ import annotations

import io

import pikepdf
import pypdfium2
import pytest
from PIL import Image, ImageDraw, ImageFont

from app.auth.services import find_user_by_email
from app.core.errors import UnsupportedMediaType
from app.core.extensions import db
from app.correspondence import paper, services
from app.correspondence.models import CaseType
from app.documents.services import content
from tests.intake_helpers import setup_registry

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def scanned_letter(lines: list[str]) -> Image.Image:
    """A page as a scanner gives it: an image of printed text, no text layer."""
    page = Image.new("L", (1240, 1754), 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(FONT, 38)
    for i, line in enumerate(lines):
        draw.text((110, 180 + i * 70), line, fill=0, font=font)
    return page


def as_scanned_pages(pdf: bytes) -> list[Image.Image]:
    """Print and scan again: render a PDF's pages to images (as the scanner would)."""
    document = pypdfium2.PdfDocument(pdf)
    pages = [
        document[i].render(scale=150 / 72, grayscale=True).to_pil() for i in range(len(document))
    ]
    document.close()
    return pages


def to_pdf(images: list[Image.Image]) -> bytes:
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=150)
    return out.getvalue()


@pytest.fixture
def clerk(app, make_user):
    setup_registry(app)
    return make_user(groups=["courrier-central"])


def test_separator_sheet_is_detected_with_its_type(app, clerk):
    with app.app_context():
        reclamation = db.session.query(CaseType).filter_by(code="reclamation").one()
        sheet = as_scanned_pages(paper.separator_sheets(reclamation))[0]
        assert paper.separator_type(sheet) == "reclamation"
        blank = as_scanned_pages(paper.separator_sheets(None))[0]
        assert paper.separator_type(blank) == ""
        letter = scanned_letter(["Madame, Monsieur,"])
        assert paper.separator_type(letter) is None


def test_batch_scan_is_split_into_one_item_per_letter_with_its_type(app, clerk):
    with app.app_context():
        types = {t.code: t for t in db.session.query(CaseType)}
        sep_reclamation = as_scanned_pages(paper.separator_sheets(types["reclamation"]))[0]
        sep_plain = as_scanned_pages(paper.separator_sheets(None))[0]
        batch = to_pdf(
            [
                sep_reclamation,
                scanned_letter(["Objet : route effondrée", "Page 1"]),
                scanned_letter(["Page 2"]),
                sep_plain,
                scanned_letter(["Objet : inscription au collège"]),
            ]
        )
        cases = services.register_paper(
            [("lot-du-matin.pdf", batch)], find_user_by_email(clerk), batch=True
        )
        assert len(cases) == 2
        first, second = cases
        assert first.case_type.code == "reclamation"
        assert second.case_type is None
        scans = [a for a in first.attachments if a.role == "scan"]
        assert len(pikepdf.open(io.BytesIO(content(scans[0].document))).pages) == 2
        assert first.data["scan"] == {"batch": "lot-du-matin.pdf", "position": 1, "pages": 2}
        assert [a.role for a in second.attachments] == ["scan", "ocr"]


def test_ocr_makes_scanned_letters_searchable_in_the_registry(app, clerk):
    with app.app_context():
        page = scanned_letter(["Objet : demande de déneigement", "de la route de Clisson"])
        tiff = io.BytesIO()
        page.save(tiff, format="TIFF", dpi=(150, 150))
        user = find_user_by_email(clerk)
        [case] = services.register_paper(
            [("lettre.tiff", tiff.getvalue())], user, subject="Lettre de M. Durand"
        )
        ocr = next(a.document for a in case.attachments if a.role == "ocr")
        assert "neigement" in ocr.text
        assert ocr.parent.mime_type == "application/pdf"
        found, _ = services.search_cases(user, q="déneigement Clisson")
        assert [c.id for c in found] == [case.id]
        assert services.search_cases(user, q="inexistant")[0] == []


def test_scans_of_other_types_are_refused(app, clerk):
    with app.app_context(), pytest.raises(UnsupportedMediaType):
        services.register_paper([("lettre.docx", b"PK\x03\x04rubbish")], find_user_by_email(clerk))
