"""Pages and API of deadlines: permissions, CSRF, forms with French errors, the public
status page reached by the QR code."""

from __future__ import annotations

import re
from datetime import date

import pytest
import time_machine

from app.core.extensions import db
from app.correspondence.models import Channel
from app.deadlines.models import Closure, DeadlineRule
from tests.conftest import csrf_token, login
from tests.deadlines_helpers import ADMIN, citizen, paris, register, setup_office

TODAY = paris(2026, 12, 21)


def signed_in(app, email: str):
    """Another browser, signed in as ``email``."""
    other = app.test_client()
    login(other, email)
    return other


@pytest.fixture
def office(app, make_user):
    people = setup_office(app, make_user, deploy=False)
    with app.app_context(), time_machine.travel(paris(2026, 12, 18, 11), tick=False):
        case = register(paris(2026, 12, 18), service_group="routes", sender=citizen())
        people["case_id"], people["chrono"] = case.id, case.chrono
        people["code"] = case.clock.tracking_code
    return people


def test_admin_configures_a_rule_and_a_closure(app, client, office):
    login(client, ADMIN)
    token = csrf_token(client, "/admin/delais")
    response = client.post(
        "/admin/delais/regles",
        data={
            "csrf_token": token,
            "type_code": "reclamation",
            "channel": "",
            "target_days": "10",
            "ack_days": "7",
            "acknowledge": "on",
            "reminder_days": "2",
            "silence_months": "2",
            "implicit_decision": "rejection",
        },
    )
    assert response.status_code == 302
    client.post(
        "/admin/delais/fermetures",
        data={"csrf_token": token, "day": "2026-12-31", "label": "Fermeture de fin d'année"},
    )
    page = client.get("/admin/delais").get_data(as_text=True)
    assert "Silence vaut rejet" in page and "31 décembre 2026" in page
    with app.app_context():
        rule = db.session.query(DeadlineRule).one()
        assert (rule.case_type.code, rule.target_days) == ("reclamation", 10)
        assert db.session.query(Closure).one().day == date(2026, 12, 31)


def test_invalid_rule_form_shows_french_errors_and_keeps_input(app, client, office):
    login(client, ADMIN)
    token = csrf_token(client, "/admin/delais")
    response = client.post(
        "/admin/delais/regles",
        data={
            "csrf_token": token,
            "target_days": "0",
            "ack_days": "7",
            "reminder_days": "2",
            "silence_months": "2",
            "implicit_decision": "none",
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Délai de réponse : entre 1 et 120." in html
    assert 'value="0"' in html


def test_deadline_admin_is_for_admins_and_needs_csrf(app, client, office):
    login(client, office["routes"])
    assert client.get("/admin/delais").status_code == 403
    admin = signed_in(app, ADMIN)
    assert admin.post("/admin/delais/fermetures", data={"day": "2026-12-31"}).status_code == 400


def test_case_page_shows_both_clocks_and_issues_the_acknowledgement(app, client, office):
    with time_machine.travel(TODAY, tick=False):
        login(client, office["routes"])
        page = client.get(f"/correspondences/{office['case_id']}/delais")
        html = page.get_data(as_text=True)
        assert page.status_code == 200
        assert "12 janvier 2027" in html and "15 jours ouvrés" in html
        token = csrf_token(client, f"/correspondences/{office['case_id']}/delais")
        response = client.post(
            f"/correspondences/{office['case_id']}/delais/accuse", data={"csrf_token": token}
        )
        assert response.status_code == 302
        html = client.get(f"/correspondences/{office['case_id']}/delais").get_data(as_text=True)
        assert "À imprimer" in html and "accuse-reception-" in html


def test_other_services_cannot_open_the_deadlines_of_a_case(app, client, office):
    login(client, office["colleges"])
    assert client.get(f"/correspondences/{office['case_id']}/delais").status_code == 403


def test_missing_documents_form_suspends_then_resumes(app, client, office):
    url = f"/correspondences/{office['case_id']}/delais"
    with time_machine.travel(TODAY, tick=False):
        login(client, office["routes"])
        token = csrf_token(client, url)
        client.post(
            url + "/pieces",
            data={
                "csrf_token": token,
                "missing_documents": "Justificatif de domicile\nDevis",
                "documents_due_on": "2027-01-15",
            },
        )
        html = client.get(url).get_data(as_text=True)
        assert "Justificatif de domicile, Devis" in html and "en attente" in html
        client.post(url + "/pieces-recues", data={"csrf_token": token})
        html = client.get(url).get_data(as_text=True)
        assert "reçues le" in html


def test_mail_office_prints_the_paper_batch(app, client, office):
    with time_machine.travel(TODAY, tick=False):
        login(client, office["routes"])
        token = csrf_token(client, f"/correspondences/{office['case_id']}/delais")
        client.post(
            f"/correspondences/{office['case_id']}/delais/accuse", data={"csrf_token": token}
        )
        mail_office = signed_in(app, office["courrier"])
        page = mail_office.get("/accuses-reception").get_data(as_text=True)
        assert office["chrono"] in page
        token = csrf_token(mail_office, "/accuses-reception")
        response = mail_office.post("/accuses-reception/imprimer", data={"csrf_token": token})
        assert response.status_code == 302
        pdf = mail_office.get(response.headers["Location"])
        assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
        assert client.get("/accuses-reception").status_code == 403
        assert client.get(response.headers["Location"]).status_code == 403


def test_public_status_page_shows_only_the_status(app, client, office):
    url = f"/suivi/{office['chrono']}?code={office['code']}"
    page = client.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Votre demande a été reçue et enregistrée." in html
    main = re.search(r"<main.*</main>", html, re.S).group(0)
    assert "Dupont" not in main and "DUPONT" not in main and "Lilas" not in main
    assert "routes" not in main.lower()
    assert client.get(f"/suivi/{office['chrono']}?code=AAAA-AAAA").status_code == 404
    assert client.get("/suivi/2026-A-999999?code=" + office["code"]).status_code == 404
    form = client.get(f"/suivi?chrono={office['chrono']}&code={office['code']}")
    assert form.status_code == 302 and form.headers["Location"].startswith("/suivi/2026-A-")


def test_api_reads_suspends_and_acknowledges(app, client, office, api_token):
    headers = api_token(office["routes"])
    base = f"/api/v1/correspondences/{office['case_id']}"
    with time_machine.travel(TODAY, tick=False):
        body = client.get(base + "/deadlines", headers=headers).get_json()
        assert body["due_on"] == "2027-01-12"
        assert body["acknowledgement"]["status"] == "pending"
        suspended = client.post(
            base + "/missing-documents",
            json={"missing_documents": ["Devis"], "documents_due_on": "2027-01-15"},
            headers=headers,
        )
        assert suspended.status_code == 200 and suspended.get_json()["suspended"] is True
        invalid = client.post(base + "/missing-documents", json={}, headers=headers)
        assert invalid.status_code == 422
        assert invalid.mimetype == "application/problem+json"
        acknowledged = client.post(base + "/acknowledgement", headers=headers)
        assert acknowledged.status_code == 201
        assert acknowledged.get_json()["acknowledgement"]["status"] == "to_print"
        resumed = client.post(base + "/missing-documents/received", headers=headers)
        assert resumed.get_json()["suspended"] is False


def test_api_refuses_other_services_and_explains_missing_mentions(app, client, office, api_token):
    base = f"/api/v1/correspondences/{office['case_id']}"
    assert client.get(base + "/deadlines", headers=api_token(office["colleges"])).status_code == 403
    with app.app_context():
        email_case = register(paris(2026, 12, 18), channel=Channel.EMAIL, service_group="routes")
        case_id = email_case.id
    response = client.post(
        f"/api/v1/correspondences/{case_id}/acknowledgement", headers=api_token(office["routes"])
    )
    assert response.status_code == 422
    problem = response.get_json()
    assert "mention obligatoire manquante" in problem["detail"]
    assert problem["errors"] == [
        {
            "field": "destinataire_postal",
            "message": "Mention manquante : l'adresse postale du demandeur.",
        }
    ]


def test_stats_api_returns_the_callers_figures(app, client, office, api_token):
    with time_machine.travel(TODAY, tick=False):
        response = client.get(
            "/api/v1/stats/indicators?from=2026-12-01&to=2026-12-31",
            headers=api_token(office["routes"]),
        )
    body = response.get_json()
    assert response.status_code == 200
    assert body["total"]["volume"] == 1
    assert [row["label"] for row in body["rows"]] == ["Service routes"]
