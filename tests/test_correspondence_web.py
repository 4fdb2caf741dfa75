"""Pages: public web forms with receipt and confirmation, registry, case page, paper and
internal-note registration, mailbox administration."""

from __future__ import annotations

import io
import re

import pytest

from app.core.extensions import db
from app.correspondence.models import Channel, Correspondence, FormSubmissionLog
from tests.conftest import csrf_token, login
from tests.intake_helpers import pdf_bytes, setup_registry
from tests.smtp_sink import SmtpSink

IDENTITY = {
    "civility": "Mme",
    "first_name": "Claire",
    "last_name": "Dupont",
    "email": "claire.dupont@example.org",
    "postal_code": "44600",
    "city": "Saint-Nazaire",
}


@pytest.fixture
def sink(app):
    with SmtpSink() as server:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=server.port)
        yield server
    app.config.update(SMTP_HOST="localhost", SMTP_PORT=25)


@pytest.fixture
def registry(app):
    setup_registry(app)


def submit(client, key, data, files=None):
    token = csrf_token(client, f"/demarches/{key}")
    payload = {"csrf_token": token, **data}
    for name, (filename, content) in (files or {}).items():
        payload[name] = (io.BytesIO(content), filename)
    return client.post(f"/demarches/{key}", data=payload, content_type="multipart/form-data")


def test_public_forms_are_listed_and_rendered_from_their_schema(client, registry):
    index = client.get("/demarches").get_data(as_text=True)
    for title in ("Demande d'information", "Réclamation", "Candidature spontanée"):
        assert title in index.replace("&#39;", "'")
    page = client.get("/demarches/candidature_spontanee").get_data(as_text=True)
    assert 'type="file"' in page and 'name="cv"' in page
    assert 'name="postal_code"' in page and 'name="site_web"' in page


def test_information_request_gets_a_receipt_with_its_number_and_a_confirmation(
    app, client, registry, sink
):
    response = submit(
        client,
        "demande_information",
        {
            **IDENTITY,
            "subject": "Horaires de la médiathèque",
            "message": "Bonjour, quels sont les horaires ?",
        },
    )
    assert response.status_code == 302
    receipt = client.get(response.headers["Location"]).get_data(as_text=True)
    chrono = re.search(r"\d{4}-A-\d{6}", receipt).group(0)
    with app.app_context():
        case = db.session.query(Correspondence).filter_by(chrono=chrono).one()
        assert case.channel == Channel.WEB
        assert case.case_type.code == "demande_information"
        assert case.sender.email == "claire.dupont@example.org"
        assert case.summary == "Bonjour, quels sont les horaires ?"
        assert case.data["form"]["postal_code"] == "44600"
        assert case.process_instance_id is not None
    [mail] = sink.messages
    assert mail["To"] == "claire.dupont@example.org"
    assert chrono in mail["Subject"] and chrono in mail.get_content()


def test_job_application_with_cv_goes_to_the_delegation_of_the_postal_code(
    app, client, registry, sink
):
    response = submit(
        client,
        "candidature_spontanee",
        {**IDENTITY, "position": "Agent d'entretien des routes"},
        {"cv": ("cv.pdf", pdf_bytes("CV"))},
    )
    assert response.status_code == 302
    with app.app_context():
        case = db.session.query(Correspondence).one()
        assert case.subject == "Candidature spontanée : Agent d'entretien des routes"
        assert case.service_group == "delegation-saint-nazaire"
        assert [a.document.filename for a in case.attachments] == ["cv.pdf"]


def test_invalid_answers_are_shown_in_french_and_nothing_is_registered(app, client, registry):
    response = submit(
        client,
        "candidature_spontanee",
        {**IDENTITY, "postal_code": "4460", "email": "pas-une-adresse", "position": "Agent"},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Le code postal comporte 5 chiffres." in page
    assert "adresse électronique valide" in page
    assert "Ce champ est obligatoire." in page  # the missing CV
    with app.app_context():
        assert db.session.query(Correspondence).count() == 0


def test_cv_of_a_refused_type_or_too_large_is_refused(app, client, registry):
    exe = submit(
        client,
        "candidature_spontanee",
        {**IDENTITY, "position": "Agent"},
        {"cv": ("cv.pdf", b"MZ" + b"\x00" * 100)},
    )
    assert exe.status_code == 422
    assert "Programme exécutable" in exe.get_data(as_text=True)
    big = submit(
        client,
        "candidature_spontanee",
        {**IDENTITY, "position": "Agent"},
        {"cv": ("cv.pdf", pdf_bytes() + b"%" * (5 * 1024 * 1024))},
    )
    assert big.status_code == 422
    assert "Fichier trop volumineux : 5 Mo au plus." in big.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(Correspondence).count() == 0


def test_honeypot_filled_by_a_robot_is_refused(app, client, registry):
    response = submit(
        client,
        "demande_information",
        {
            **IDENTITY,
            "subject": "Spam",
            "message": "Achetez maintenant !!!",
            "site_web": "http://spam",
        },
    )
    assert response.status_code == 422
    with app.app_context():
        assert db.session.query(Correspondence).count() == 0


def test_rate_limit_is_kept_in_the_database(app, client, registry, sink):
    app.config["MISSIVE_FORM_RATE_LIMIT"] = 2
    try:
        data = {**IDENTITY, "subject": "Question", "message": "Une question précise ?"}
        assert submit(client, "demande_information", data).status_code == 302
        assert submit(client, "demande_information", data).status_code == 302
        third = submit(client, "demande_information", data)
    finally:
        app.config["MISSIVE_FORM_RATE_LIMIT"] = 5
    assert third.status_code == 429
    with app.app_context():
        assert db.session.query(Correspondence).count() == 2
        assert db.session.query(FormSubmissionLog).count() == 2


@pytest.fixture
def clerk(client, make_user, registry):
    email = make_user(groups=["courrier-central"])
    login(client, email)
    return email


def test_paper_registration_page_registers_a_scan_and_shows_the_case(app, client, clerk):
    token = csrf_token(client, "/correspondences/paper/new")
    response = client.post(
        "/correspondences/paper/new",
        data={
            "csrf_token": token,
            "mode": "single",
            "received_at": "2026-03-02",
            "type": "reclamation",
            "subject": "Lettre de M. Martin",
            "sender_last_name": "Martin",
            "sender_city": "Ancenis",
            "files": (io.BytesIO(pdf_bytes("Lettre")), "lettre.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Lettre de M. Martin" in page and "MARTIN" in page and "lettre.pdf" in page
    with app.app_context():
        case = db.session.query(Correspondence).one()
        assert case.received_at.date().isoformat() == "2026-03-02"
        doc_id = case.attachments[0].document_id
    download = client.get(f"/correspondences/{case.id}/documents/{doc_id}")
    assert download.status_code == 200 and download.data.startswith(b"%PDF")
    listing = client.get("/correspondences?q=Martin").get_data(as_text=True)
    assert case.chrono in listing


def test_paper_registration_without_date_is_refused_with_a_field_error(client, clerk):
    token = csrf_token(client, "/correspondences/paper/new")
    response = client.post(
        "/correspondences/paper/new",
        data={"csrf_token": token, "files": (io.BytesIO(pdf_bytes()), "a.pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "Ce champ est obligatoire." in response.get_data(as_text=True)


def test_separator_sheets_are_printable(client, clerk):
    response = client.get("/correspondences/separator-sheets?type=reclamation&count=3")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")


def test_internal_note_goes_straight_to_the_chosen_service(app, client, make_user, registry):
    login(client, make_user(groups=["colleges"]))
    token = csrf_token(client, "/correspondences/notes/new")
    response = client.post(
        "/correspondences/notes/new",
        data={
            "csrf_token": token,
            "subject": "Travaux au collège",
            "service_group": "routes",
            "body": "Merci de prévoir la signalisation.",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        case = db.session.query(Correspondence).one()
        assert case.chrono[5:7] == "I-"
        assert case.service_group == "routes"
        from app.engine.models import HumanTask

        task = db.session.query(HumanTask).filter_by(instance_id=case.process_instance_id).one()
        assert task.name == "Traiter le courrier" and task.candidate_groups == ["routes"]


def test_confidential_case_page_is_refused_to_the_mail_office(app, client, clerk, make_user):
    from app.correspondence import services

    with app.app_context():
        case = services.register_case(
            services.Intake(
                channel=Channel.PAPER,
                subject="Personnel",
                service_group="routes",
                confidentiality="confidential",
            ),
            None,
            distribute=False,
        )
        case_id = case.id
    assert client.get(f"/correspondences/{case_id}").status_code == 403
    assert "Personnel" not in client.get("/correspondences").get_data(as_text=True)
    other = app.test_client()
    login(other, make_user(groups=["routes"]))
    assert other.get(f"/correspondences/{case_id}").status_code == 200


def test_mailbox_admin_page_adds_a_mailbox_and_hides_its_password(app, client, make_user, registry):
    login(client, make_user(role="admin"))
    token = csrf_token(client, "/admin/mailboxes/")
    response = client.post(
        "/admin/mailboxes/",
        data={
            "csrf_token": token,
            "name": "Accueil",
            "host": "imap.example.org",
            "port": "993",
            "username": "accueil",
            "password": "tres-secret",
            "folder": "INBOX",
            "use_tls": "on",
            "group_name": "routes",
        },
    )
    assert response.status_code == 302
    page = client.get("/admin/mailboxes/").get_data(as_text=True)
    assert "Accueil" in page and "tres-secret" not in page
    missing = client.post("/admin/mailboxes/", data={"csrf_token": token, "name": ""})
    assert missing.status_code == 422


def test_mailbox_page_marks_only_its_own_menu_entry_as_current(client, make_user, registry):
    login(client, make_user(role="admin"))
    page = client.get("/admin/mailboxes/").get_data(as_text=True)
    current = re.findall(r'<a href="([^"]+)" aria-current="page">', page)
    assert current == ["/admin/mailboxes/"]
    admin = client.get("/admin/").get_data(as_text=True)
    assert re.findall(r'<a href="([^"]+)" aria-current="page">', admin) == ["/admin/"]


def test_mailbox_admin_page_is_for_admins_only(client, clerk):
    assert client.get("/admin/mailboxes/").status_code == 403


def test_submission_is_kept_when_the_mail_server_is_down(app, client, registry):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=1)  # nothing listens there
    try:
        response = submit(
            client,
            "demande_information",
            {**IDENTITY, "subject": "Question", "message": "Une question précise ?"},
        )
    finally:
        app.config.update(SMTP_HOST="localhost", SMTP_PORT=25)
    assert response.status_code == 302
    assert re.search(
        r"\d{4}-A-\d{6}", client.get(response.headers["Location"]).get_data(as_text=True)
    )
    with app.app_context():
        assert db.session.query(Correspondence).count() == 1
