"""The registry and the inbox together: the tasks of a case's circuit carry what the inbox
shows and searches (chrono, subject, sender, type, channel, service, délégation, amount),
and the task page shows the case's documents (PDF inline) and history."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import select

from app.auth.services import find_user_by_email
from app.core.extensions import db
from app.correspondence.models import Correspondence
from app.demo import load_organisation
from app.engine.models import HumanTask, TaskStatus
from app.engine.services import claim_task, complete_task
from app.inbox import queries
from tests.conftest import csrf_token, login
from tests.intake_helpers import pdf_bytes

CLAIRE = "claire.martin@departement.test"  # mail office
MARIE = "marie.lefebvre@departement.test"  # délégation de Nantes
OLIVIER = "olivier.gautier@departement.test"  # accounting
NANTES = "Délégation territoriale de Nantes"


@pytest.fixture
def office(app):
    """The demo organisation (units, délégations, groups, agents), types and circuits."""
    from app.correspondence import demo

    with app.app_context():
        load_organisation()
        demo.load_case_types()
        demo.deploy_processes()


def open_task(case_id: int) -> HumanTask:
    case = db.session.get(Correspondence, case_id)
    return db.session.execute(
        select(HumanTask).where(
            HumanTask.instance_id == case.process_instance_id, HumanTask.status == TaskStatus.OPEN
        )
    ).scalar_one()


def apply_online(client, postal_code: str = "44000") -> int:
    token = csrf_token(client, "/demarches/candidature_spontanee")
    response = client.post(
        "/demarches/candidature_spontanee",
        data={
            "csrf_token": token,
            "civility": "Mme",
            "first_name": "Inès",
            "last_name": "Kerbrat",
            "email": "ines.kerbrat@example.org",
            "postal_code": postal_code,
            "city": "Nantes",
            "position": "Assistante sociale",
            "message": "Je vous adresse ma candidature spontanée.",
            "cv": (io.BytesIO(pdf_bytes("Curriculum vitae")), "cv-kerbrat.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
    return db.session.execute(select(Correspondence.id)).scalar_one()


def test_job_application_task_carries_the_case_variables_of_its_delegation(app, client, office):
    with app.app_context():
        case_id = apply_online(client)
        case = db.session.get(Correspondence, case_id)
        task = open_task(case_id)
        assert task.candidate_groups == ["delegation-nantes"]
        meta = task.metadata_
        assert {k: meta[k] for k in ("chrono", "subject", "sender_name", "type", "channel")} == {
            "chrono": case.chrono,
            "subject": "Candidature spontanée : Assistante sociale",
            "sender_name": case.sender.display_name,
            "type": "Candidature",
            "channel": "Formulaire en ligne",
        }
        assert (meta["service"], meta["delegation"]) == (NANTES, NANTES)
        assert task.received_at == case.received_at
        marie = find_user_by_email(MARIE)

        def found(**raw) -> list[int]:
            filters = queries.parse_filters(raw, marie)
            return [t.id for t in queries.list_tasks(marie, "candidate", filters=filters).tasks]

        assert found() == [task.id]
        assert found(q="kerbrat") == [task.id]
        assert found(q=case.chrono) == [task.id]
        assert found(delegation=NANTES, channel="Formulaire en ligne") == [task.id]
        assert found(channel="Courriel") == []
        assert queries.list_tasks(find_user_by_email(CLAIRE), "candidate").tasks == []


def test_invoice_tasks_show_the_amount_and_the_service_chosen_by_routing(
    app, client, office, api_token
):
    headers = api_token(CLAIRE)
    response = client.post(
        "/api/v1/correspondences",
        data={
            "metadata": json.dumps(
                {
                    "subject": "Facture n° 2026-118 travaux collège",
                    "type": "facture",
                    "sender": {"organisation_name": "Menuiserie Océane", "kind": "organisation"},
                    "data": {"amount": 1250.5},
                }
            ),
            "file": (io.BytesIO(pdf_bytes("Facture")), "facture.pdf"),
        },
        headers=headers,
        content_type="multipart/form-data",
    )
    assert response.status_code == 201, response.get_json()
    case_id = response.get_json()["id"]
    with app.app_context():
        qualify = open_task(case_id)
        assert qualify.candidate_groups == ["courrier-central"]
        assert (qualify.metadata_["amount"], qualify.metadata_["channel"]) == (
            1250.5,
            "Application métier",
        )
        assert qualify.metadata_["sender_name"] == "Menuiserie Océane"
        claire = find_user_by_email(CLAIRE)
        claim_task(qualify.id, claire)
        complete_task(
            qualify.id,
            {"type_code": "facture", "subject": "Facture n° 2026-118", "confidentiality": "normal"},
            claire,
        )
        process = open_task(case_id)
        assert process.candidate_groups == ["comptabilite"]
        meta = process.metadata_
        assert (meta["service"], meta["delegation"], meta["type"], meta["amount"]) == (
            "Service comptabilité et mandatement",
            "",
            "Facture",
            1250.5,
        )
        assert meta["subject"] == "Facture n° 2026-118"
        olivier = find_user_by_email(OLIVIER)
        filters = queries.parse_filters({"service": "Service comptabilité et mandatement"}, olivier)
        assert [t.id for t in queries.list_tasks(olivier, "candidate", filters=filters).tasks] == [
            process.id
        ]


def test_task_page_shows_the_case_documents_inline_and_its_history(app, client, office):
    with app.app_context():
        case_id = apply_online(client)
        task_id = open_task(case_id).id
        chrono = db.session.get(Correspondence, case_id).chrono
    agent = app.test_client()
    login(agent, MARIE, "missive-demo")
    page = agent.get(f"/taches/{task_id}").get_data(as_text=True)
    assert "cv-kerbrat.pdf" in page
    preview = f"/taches/{task_id}/documents/"
    assert f'<iframe class="pdf-preview" src="{preview}' in page
    document_url = page.split(f'src="{preview}', 1)[1].split('"', 1)[0]
    pdf = agent.get(preview + document_url)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith("inline")
    assert pdf.data.startswith(b"%PDF")
    for label in ("Enregistré", "Circuit démarré", "Attribué au service"):
        assert f"— {label}" in page
    assert chrono in page and NANTES in page
    outsider = app.test_client()
    login(outsider, OLIVIER, "missive-demo")
    assert outsider.get(f"/taches/{task_id}").status_code == 403
    assert outsider.get(preview + document_url).status_code == 403
