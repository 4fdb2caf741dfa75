"""The accusé de réception: every mention of CRPA R112-5 / R112-11-1 in the PDF text,
refusal when one is missing, e-mail to electronic requesters, paper batches, the case
document, the QR code's public status page."""

from __future__ import annotations

import io
import re
import subprocess
from datetime import date

import pikepdf
import pytest
import time_machine

from app.core.extensions import db
from app.correspondence import services as intake
from app.correspondence.models import CaseDocument, CaseStatus, Channel
from app.deadlines import receipts, services
from app.deadlines.models import AckStatus, DeadlineNotice
from app.documents.services import content
from tests.deadlines_helpers import admin, citizen, paris, register, rule, setup_office
from tests.smtp_sink import SmtpSink


@pytest.fixture
def office(app, make_user):
    return setup_office(app, make_user, deploy=False)


def pdf_text(data: bytes) -> str:
    """The text of a PDF as pdftotext extracts it, with whitespace folded."""
    result = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=data, capture_output=True, check=True
    )
    return re.sub(r"\s+", " ", result.stdout.decode("utf-8"))


def page_count(data: bytes) -> int:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        return len(pdf.pages)


def issue(case):
    with time_machine.travel(paris(2026, 12, 21), tick=False):
        document = services.issue_acknowledgement(case, None)
        db.session.commit()
    return document


def test_rejection_acknowledgement_carries_every_mention_and_the_remedies(app, office):
    with app.app_context():
        rule("reclamation", None, implicit_decision="rejection")
        case = register(
            paris(2026, 12, 18),
            type_code="reclamation",
            service_group="routes",
            sender=citizen(),
            subject="Nids de poule route de Vannes",
        )
        chrono = case.chrono
        text = pdf_text(content(issue(case)))
    assert "Département de Loire-Atlantique" in text
    assert "reçue le 18 décembre 2026" in text
    assert chrono in text
    assert "Service routes" in text
    assert "3 quai Ceineray" in text and "44041 NANTES CEDEX 1" in text
    assert "routes@departement.test" in text
    assert "02 40 99 10 00" in text
    assert "décision implicite de rejet" in text
    assert "réputée rejetée le 18 février 2027" in text
    assert "Délais et voies de recours" in text
    assert "tribunal administratif de Nantes" in text
    assert "6 allée de l'Île-Gloriette" in text
    assert "www.telerecours.fr" in text
    assert "attestation" not in text
    # paper: addressed to the requester's postal address, legal basis R112-5
    assert "Mme Claire DUPONT" in text and "12 rue des Lilas" in text and "44000 Nantes" in text
    assert "R. 112-5" in text
    assert "code de suivi" in text


def test_acceptance_acknowledgement_mentions_the_right_to_an_attestation(app, office):
    with app.app_context():
        rule("demande_information", None, implicit_decision="acceptance")
        case = register(
            paris(2026, 12, 18),
            channel=Channel.EMAIL,
            service_group="routes",
            sender=citizen(email="claire.dupont@example.org"),
        )
        text = pdf_text(content(issue(case)))
    assert "décision implicite d'acceptation" in text
    assert "réputée acceptée le 18 février 2027, sous réserve qu'elle soit complète" in text
    assert "attestation de cette décision implicite d'acceptation" in text
    assert "L. 232-3" in text
    assert "voies de recours" not in text
    assert "Envoyé par courriel à" in text and "claire.dupont@example.org" in text
    assert "R. 112-11-1" in text


def test_acknowledgement_lists_missing_documents_and_says_the_clock_waits_for_them(app, office):
    with app.app_context():
        rule("demande_information", None, implicit_decision="acceptance")
        case = register(paris(2026, 12, 18), service_group="routes", sender=citizen())
        with time_machine.travel(paris(2026, 12, 19), tick=False):
            services.request_missing_documents(
                case, ["Justificatif de domicile", "Devis des travaux"], date(2027, 1, 15), admin()
            )
        text = pdf_text(content(issue(case)))
    assert "Pièces manquantes" in text
    assert "Justificatif de domicile" in text and "Devis des travaux" in text
    assert "avant le 15 janvier 2027" in text
    assert "L. 114-5" in text
    assert "2 mois à compter de la réception des pièces manquantes" in text


def test_acknowledgement_after_a_transfer_gives_the_competent_service_and_its_date(app, office):
    with app.app_context():
        rule("demande_information", None, implicit_decision="rejection")
        case = register(paris(2026, 12, 18), service_group="colleges", sender=citizen())
        intake.redirect_case(case, "routes", "Hors compétence", None, paris(2027, 1, 4))
        db.session.commit()
        text = pdf_text(content(issue(case)))
    assert "reçue le 18 décembre 2026" in text
    assert (
        "transmise au service compétent par « Service colleges », qui l'a reçue le 4 janvier 2027"
        in text
    )
    assert "L. 114-2" in text
    assert "réputée rejetée le 4 mars 2027" in text
    assert "Service routes" in text


def test_information_request_acknowledgement_has_no_implicit_decision_section(app, office):
    with app.app_context():
        case = register(paris(2026, 12, 18), service_group="routes", sender=citizen())
        text = pdf_text(content(issue(case)))
    assert "reçue le 18 décembre 2026" in text
    assert "décision implicite" not in text


def test_acknowledgement_is_kept_as_a_case_document(app, office):
    with app.app_context():
        case = register(paris(2026, 12, 18), service_group="routes", sender=citizen())
        document = issue(case)
        link = db.session.query(CaseDocument).filter_by(document_id=document.id).one()
        assert link.correspondence_id == case.id
        assert link.role == "accuse_reception"
        assert "accusé de réception" in document.description
        assert document.mime_type == "application/pdf"
        assert case.clock.ack_document_id == document.id
        assert case.clock.ack_status == AckStatus.TO_PRINT


@pytest.mark.parametrize(
    ("field", "mention"),
    [
        ("phone", "le numéro de téléphone du service chargé du dossier"),
        ("email", "l'adresse électronique du service chargé du dossier"),
        ("address_lines", "l'adresse postale du service chargé du dossier"),
    ],
)
def test_generation_is_refused_when_a_service_detail_is_missing(app, office, field, mention):
    with app.app_context():
        case = register(paris(2026, 12, 18), service_group="routes", sender=citizen())
        setattr(case.service, field, None)
        db.session.commit()
        with pytest.raises(receipts.MissingMentions) as error:
            services.issue_acknowledgement(case, None)
        assert mention in error.value.detail
        assert "Service routes" in error.value.detail
        assert error.value.detail.startswith(
            f"Accusé de réception du courrier {case.chrono} impossible : mention obligatoire"
        )
        db.session.rollback()
        assert not case.attachments


def test_generation_is_refused_without_the_court_when_silence_means_rejection(app, office):
    with app.app_context():
        rule("reclamation", None, implicit_decision="rejection")
        services.save_receipt_settings(admin(), tribunal_name="", tribunal_address="")
        case = register(
            paris(2026, 12, 18), type_code="reclamation", service_group="routes", sender=citizen()
        )
        with pytest.raises(receipts.MissingMentions) as error:
            services.issue_acknowledgement(case, None)
        assert "les délais et voies de recours" in error.value.detail
        assert [e["field"] for e in error.value.errors] == ["voies_recours"]


def test_generation_is_refused_for_paper_without_the_requester_address(app, office):
    with app.app_context():
        case = register(paris(2026, 12, 18), service_group="routes")
        with pytest.raises(receipts.MissingMentions) as error:
            services.issue_acknowledgement(case, None)
        assert "l'adresse postale du demandeur" in error.value.detail


def test_generation_is_refused_before_the_case_has_a_service(app, office):
    with app.app_context():
        case = register(paris(2026, 12, 18), sender=citizen())
        with pytest.raises(receipts.MissingMentions) as error:
            services.issue_acknowledgement(case, None)
        assert "mentions obligatoires manquantes" in error.value.detail
        assert "la désignation du service chargé du dossier" in error.value.detail


def test_a_template_that_drops_a_mention_is_refused(app, office, monkeypatch):
    with app.app_context():
        rule("reclamation", None, implicit_decision="rejection")
        case = register(
            paris(2026, 12, 18), type_code="reclamation", service_group="routes", sender=citizen()
        )
        real = receipts.render_template

        def without_remedies(*args, **kwargs):
            return real(*args, **kwargs).replace('data-mention="voies_recours"', "")

        monkeypatch.setattr(receipts, "render_template", without_remedies)
        with pytest.raises(receipts.MissingMentions) as error:
            services.issue_acknowledgement(case, None)
        assert [e["field"] for e in error.value.errors] == ["voies_recours"]


def test_missing_mention_in_the_circuit_flags_the_case_instead_of_failing(app, office):
    with app.app_context():
        case = register(paris(2026, 12, 18), service_group="routes")
        assert services.try_issue_acknowledgement(case, None) is None
        db.session.commit()
        assert case.clock.ack_status == AckStatus.FAILED
        assert "l'adresse postale du demandeur" in case.clock.ack_error
        assert "acknowledgement" in case.flags


def test_electronic_requests_are_acknowledged_by_email_with_the_pdf(app, office):
    with SmtpSink() as sink, app.app_context():
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port)
        case = register(
            paris(2026, 12, 18),
            channel=Channel.WEB,
            service_group="routes",
            sender=citizen(email="claire.dupont@example.org"),
        )
        document = issue(case)
        assert case.clock.ack_status == AckStatus.TO_SEND
        assert services.send_pending_notices() == 1
        [message] = sink.messages
        assert message["To"] == "claire.dupont@example.org"
        assert message["Subject"] == f"Accusé de réception de votre demande n° {case.chrono}"
        assert message["Reply-To"] == "routes@departement.test"
        [attachment] = list(message.iter_attachments())
        assert attachment.get_filename() == f"accuse-reception-{case.chrono}.pdf"
        assert attachment.get_content() == content(document)
        body = message.get_body(("plain",)).get_content()
        assert f"/suivi/{case.chrono}?code=" in body
        db.session.refresh(case.clock)
        assert case.clock.ack_status == AckStatus.SENT
        assert case.clock.ack_sent_at is not None
        assert services.send_pending_notices() == 0  # sent once


def test_unreachable_smtp_keeps_the_notice_for_a_later_try(app, office):
    from tests.dovecot import free_port

    with app.app_context():
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=free_port())
        case = register(
            paris(2026, 12, 18),
            channel=Channel.EMAIL,
            service_group="routes",
            sender=citizen(email="claire.dupont@example.org"),
        )
        issue(case)
        assert services.send_pending_notices() == 0
        notice = db.session.query(DeadlineNotice).one()
        assert notice.sent_at is None and notice.attempts == 1 and notice.last_error
        assert case.clock.ack_status == AckStatus.TO_SEND


def test_paper_acknowledgements_are_printed_in_one_batch(app, office):
    with app.app_context():
        cases = [
            register(paris(2026, 12, 18), service_group="routes", sender=citizen())
            for _ in range(3)
        ]
        for case in cases:
            issue(case)
        courrier = _user(office["courrier"])
        assert [c.id for c in services.pending_paper_acknowledgements(courrier)] == [
            c.id for c in cases
        ]
        batch = services.print_acknowledgements(courrier)
        with pikepdf.open(io.BytesIO(content(batch))) as pdf:
            assert len(pdf.pages) == sum(page_count(content(c.clock.ack_document)) for c in cases)
        text = pdf_text(content(batch))
        assert all(c.chrono in text for c in cases)
        assert all(c.clock.ack_status == AckStatus.PRINTED for c in cases)
        assert services.print_acknowledgements(courrier) is None


def test_printing_batches_is_for_the_mail_office(app, office):
    from app.core.errors import PermissionDenied

    with app.app_context(), pytest.raises(PermissionDenied):
        services.print_acknowledgements(_user(office["routes"]))


def test_public_status_needs_the_check_code_and_shows_only_the_status(app, office):
    with app.app_context():
        case = register(paris(2026, 12, 18), service_group="routes", sender=citizen())
        code = case.clock.tracking_code
        assert services.public_status(case.chrono, code) == (
            "Votre demande a été reçue et enregistrée."
        )
        intake.assign_service(case, "routes", None)
        db.session.commit()
        assert services.public_status(case.chrono, code) == (
            "Votre demande est en cours de traitement par le service compétent."
        )
        assert services.public_status(case.chrono, f"{code[:4]}-{code[4:]}".lower())
        assert services.public_status(case.chrono, "AAAAAAAA") is None
        assert services.public_status("2026-A-999999", code) is None
        intake.close_case(case, None)
        db.session.commit()
        assert case.status == CaseStatus.CLOSED
        assert services.public_status(case.chrono, code) == (
            "Le traitement de votre demande est terminé."
        )


def _user(email):
    from app.auth.services import find_user_by_email

    return find_user_by_email(email)


def test_qr_code_of_the_acknowledgement_leads_to_the_status_page(app, office, client):
    import pypdfium2
    import zxingcpp

    with app.app_context():
        case = register(paris(2026, 12, 18), service_group="routes", sender=citizen())
        data = content(issue(case))
        chrono, code = case.chrono, case.clock.tracking_code
    pdf = pypdfium2.PdfDocument(data)
    found = [
        barcode.text
        for index in range(len(pdf))
        for barcode in zxingcpp.read_barcodes(pdf[index].render(scale=3).to_pil())
    ]
    assert found == [f"http://127.0.0.1:5000/suivi/{chrono}?code={code}"]
    page = client.get(found[0].removeprefix("http://127.0.0.1:5000"))
    assert page.status_code == 200
    assert "Votre demande a été reçue et enregistrée." in page.get_data(as_text=True)
