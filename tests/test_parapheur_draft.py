"""Folders made from a reply draft: HTML (sanitised) or a template, rendered by WeasyPrint."""

from __future__ import annotations

import io

import pytest
from pdfminer.high_level import extract_text

from app.auth.services import find_user_by_email
from app.core.errors import ValidationFailed
from app.documents.rendering import html_to_pdf, sanitise_html
from app.documents.services import content
from app.engine import services as engine
from app.parapheur import services
from tests.parapheur_support import PKCS12_PASSWORD, stamp_texts


@pytest.fixture
def writers(signing_app, make_user, signing_infrastructure):
    drafter = make_user(email="brouillon@example.test", name="Bruno Brouillon")
    signer = make_user(email="chef@example.test", name="Chloé Cheffe", title="Cheffe de service")
    with signing_app.app_context():
        services.import_pkcs12(
            signing_infrastructure.identity("Chloé Cheffe").pkcs12(), PKCS12_PASSWORD, email=signer
        )
    return drafter, signer


def test_a_draft_becomes_a_pdf_folder_and_the_stamp_lands_on_its_placeholder(signing_app, writers):
    drafter, signer = writers
    with signing_app.app_context():
        folder = services.create_folder_from_draft(
            title="Réponse à M. Martin",
            type="courrier_sortant",
            actor=find_user_by_email(drafter),
            html="<p>Monsieur,</p><p>Votre demande de subvention est <strong>accordée"
            "</strong>.</p><script>alert(1)</script>",
            context={"object_line": "Subvention 2026"},
            circuit=[{"step": "signature", "assignee": signer}],
            origin=("correspondence", "42"),
        )
        [entry] = folder.current_documents("main")
        original = content(entry.original)
        assert (folder.origin_type, folder.origin_id) == ("correspondence", "42")
        assert entry.original.filename == "reponse-a-m-martin.pdf"
        [spot] = entry.layout["placeholders"]
        [task] = services.open_tasks(folder)
        engine.complete_task(task.id, {"decision": "sign"}, find_user_by_email(signer))
        signed = content(services.get_folder(folder.id).current_documents("main")[0].current)

    text = extract_text(io.BytesIO(original))
    assert "Votre demande de subvention est accordée." in text
    assert "Subvention 2026" in text and "alert(1)" not in text
    assert spot["page"] == 0 and spot["box"][0] > 250  # the right half of the page
    stamp = stamp_texts(signed)["Signature1"]
    assert stamp.splitlines()[:3] == [
        "Signé électroniquement par",
        "Chloé Cheffe",
        "Cheffe de service",
    ]


def test_a_folder_can_come_from_a_template_and_its_context(signing_app, writers):
    drafter, signer = writers
    with signing_app.app_context():
        folder = services.create_folder_from_draft(
            title="Arrêté de voirie",
            type="arrete",
            actor=find_user_by_email(drafter),
            template="parapheur/letter.html",
            context={"body": "<p>Article 1 : la route est fermée.</p>"},
            circuit=[{"step": "signature", "assignee": signer}],
        )
        text = extract_text(io.BytesIO(content(folder.current_documents("main")[0].original)))
    assert "Article 1 : la route est fermée." in text


def test_drafts_cannot_make_the_server_fetch_remote_resources(signing_app, signing_infrastructure):
    base = signing_infrastructure.authority.base
    html = sanitise_html(
        f'<p style="background:url({base}/fond.png)">Texte</p>'
        f'<img src="{base}/pixel.png" alt="pixel">'
    )
    assert "<img" in html  # kept by the sanitiser, refused by the renderer
    with signing_app.app_context():
        pdf = html_to_pdf(
            f"<html><head><link rel=stylesheet href='{base}/style.css'></head>"
            f"<body>{html}</body></html>"
        )
    assert pdf.startswith(b"%PDF") and "Texte" in extract_text(io.BytesIO(pdf))
    fetched = set(signing_infrastructure.authority.paths)
    assert not fetched & {"/fond.png", "/pixel.png", "/style.css"}


def test_html_or_template_but_not_both(signing_app, writers):
    drafter, _signer = writers
    with signing_app.app_context(), pytest.raises(ValidationFailed):
        services.create_folder_from_draft(
            title="X", type="note_interne", actor=find_user_by_email(drafter)
        )
