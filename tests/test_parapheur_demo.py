"""The demo is usable end to end: a demo signer signs a demo folder from the browser with
the demo certificates, and a demo letter is answered through the parapheur; pdfsig trusts
both signatures once it trusts the throwaway demo authority."""

from __future__ import annotations

import re
import subprocess

import pytest
from sqlalchemy import select

from app.auth.services import find_user_by_email
from app.core.db import utcnow
from app.core.extensions import db
from app.correspondence import replies
from app.correspondence import services as intake
from app.correspondence.models import CaseStatus, Channel
from app.demo import load_demo
from app.demo.organisation import DEMO_PASSWORD
from app.documents.services import content
from app.engine import services as engine
from app.parapheur import services
from app.parapheur.demo import demo_ca_path
from app.parapheur.models import Folder, FolderStatus
from tests.conftest import csrf_token, login
from tests.parapheur_support import pdfsig

PRESIDENT = "michel.le-goff@departement.test"


@pytest.fixture
def demo(app, tmp_path):
    """The demo loaded, and an NSS database trusting its authority (for pdfsig)."""
    with app.app_context():
        load_demo()
        authorities = demo_ca_path().read_text()
    nssdb = tmp_path / "nssdb"
    nssdb.mkdir()
    subprocess.run(
        ["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"],
        check=True,
        capture_output=True,
    )
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", authorities, re.S)
    for index, pem in enumerate(pems):  # the file keeps every authority a load generated
        path = tmp_path / f"ca-{index}.pem"
        path.write_text(pem + "\n")
        subprocess.run(
            [
                "certutil",
                "-A",
                "-d",
                f"sql:{nssdb}",
                "-n",
                f"demo-{index}",
                "-t",
                "CT,C,C",
                "-i",
                str(path),
            ],
            check=True,
            capture_output=True,
        )
    return nssdb


def test_the_president_signs_the_demo_letter_from_the_browser(app, client, demo, tmp_path):
    with app.app_context():
        folder = db.session.execute(
            select(Folder).where(Folder.origin_type == "demo", Folder.origin_id == "1")
        ).scalar_one()
        [task] = services.open_tasks(folder)
        assert task.form_key == "signature"
        folder_id, task_id = folder.id, task.id
        document_id = folder.current_documents("main")[0].current_id
    assert login(client, PRESIDENT, DEMO_PASSWORD).status_code == 302
    page = client.get(f"/parapheur/{folder_id}").get_data(as_text=True)
    assert "Votre signature" in page
    assert client.get(f"/parapheur/documents/{document_id}/apercu").mimetype == "application/pdf"
    response = client.post(
        f"/parapheur/{folder_id}/etapes/{task_id}",
        data={"decision": "sign", "csrf_token": csrf_token(client, f"/parapheur/{folder_id}")},
    )
    assert response.status_code == 302
    assert "Document signé." in client.get(response.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        folder = services.get_folder(folder_id)
        assert folder.status == FolderStatus.COMPLETED
        data = content(folder.current_documents("main")[0].current)
        report = services.validation_report(
            folder.current_documents("main")[0].current_id, find_user_by_email(PRESIDENT)
        )
    [check] = pdfsig(data, demo, tmp_path)
    assert check.valid and check.trusted and check.whole_document
    assert check.value("Signer Certificate Common Name") == "Michel Le Goff"
    assert report["document_id"]  # the page's validation report reads it too


def test_a_demo_letter_is_answered_through_the_parapheur(app, demo, tmp_path):
    with app.app_context():
        case = intake.register_case(
            intake.Intake(
                channel=Channel.PAPER,
                subject="Déneigement de la RD 178",
                received_at=utcnow(),
                type_code="demande_information",
                service_group="routes",
            ),
            None,
        )
        agent = find_user_by_email("julie.perrin@departement.test")
        instance = engine.get_instance(case.process_instance_id)
        [treat] = [t for t in engine.instance_tasks(instance) if t.status == "open"]
        engine.complete_task(treat.id, {"action": "reply"}, agent)
        [draft] = [t for t in engine.instance_tasks(instance) if t.status == "open"]
        engine.complete_task(
            draft.id, {"response_text": "Monsieur,\n\nLa RD 178 sera déneigée."}, agent
        )
        folder = replies.reply_folder(case)
        [visa] = services.open_tasks(folder)
        engine.complete_task(
            visa.id, {"decision": "approve"}, find_user_by_email("helene.fournier@departement.test")
        )
        [signature] = services.open_tasks(folder)
        # the DGS signs it for the President, by the demo delegation
        engine.complete_task(
            signature.id, {"decision": "sign"}, find_user_by_email("jean.morel@departement.test")
        )
        db.session.refresh(case)
        assert case.status == CaseStatus.CLOSED
        data = content(replies.answer_of(case).document)
    [check] = pdfsig(data, demo, tmp_path)
    assert check.valid and check.trusted and check.whole_document
    assert check.value("Signer Certificate Common Name") == "Jean Morel"
