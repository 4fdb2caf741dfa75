"""The parapheur API: deposit with an ad-hoc circuit, steps and versions, errors."""

from __future__ import annotations

import io
import json

import pytest

from app.parapheur import services
from tests.parapheur_support import PKCS12_PASSWORD, make_pdf


@pytest.fixture
def team(signing_app, make_user, signing_infrastructure, api_token):
    emails = {
        "drafter": make_user(email="api-redaction@example.test", name="Rédactrice API"),
        "viser": make_user(email="api-visa@example.test", name="Viseur API"),
        "signer": make_user(email="api-signature@example.test", name="Signataire API"),
        "outsider": make_user(email="api-autre@example.test"),
    }
    with signing_app.app_context():
        services.import_pkcs12(
            signing_infrastructure.identity("Signataire API").pkcs12(),
            PKCS12_PASSWORD,
            email=emails["signer"],
        )
    return {key: (email, api_token(email)) for key, email in emails.items()}


def _deposit(client, headers, metadata, files=None):
    data = {"metadata": json.dumps(metadata)}
    for name, items in (
        files if files is not None else {"documents": [("courrier.pdf", make_pdf())]}
    ).items():
        data[name] = [(io.BytesIO(body), filename) for filename, body in items]
    return client.post(
        "/api/v1/parapheur/folders", data=data, headers=headers, content_type="multipart/form-data"
    )


def _circuit(team):
    return [
        {"step": "visa", "assignee": team["viser"][0]},
        {"step": "signature", "assignee": team["signer"][0]},
    ]


def test_deposit_returns_the_folder_and_its_process_instance(client, team):
    response = _deposit(
        client,
        team["drafter"][1],
        {"title": "Réponse API", "type": "courrier_sortant", "circuit": _circuit(team)},
        {
            "documents": [("a.pdf", make_pdf()), ("b.pdf", make_pdf(pages=2))],
            "annexes": [("annexe.pdf", make_pdf(text="Annexe"))],
        },
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {"id", "process_instance_id"}
    assert response.headers["Location"].endswith(f"/api/v1/parapheur/folders/{body['id']}")
    instance = client.get(
        f"/api/v1/process-instances/{body['process_instance_id']}", headers=team["drafter"][1]
    ).get_json()
    assert instance["process_key"] == "parapheur_adhoc"


def test_the_folder_shows_steps_with_who_when_decision_comment_and_every_version(client, team):
    folder_id = _deposit(
        client,
        team["drafter"][1],
        {"title": "Réponse API", "type": "courrier_sortant", "circuit": _circuit(team)},
    ).get_json()["id"]
    [visa] = client.get("/api/v1/tasks?scope=mine", headers=team["viser"][1]).get_json()["items"]
    done = client.post(
        f"/api/v1/tasks/{visa['id']}/complete",
        headers=team["viser"][1],
        json={"data": {"decision": "approve", "comment": "Bon pour signature"}},
    )
    assert done.status_code == 200, done.get_json()
    [signature] = client.get("/api/v1/tasks?scope=candidate", headers=team["signer"][1]).get_json()[
        "items"
    ]
    signed = client.post(
        f"/api/v1/tasks/{signature['id']}/complete",
        headers=team["signer"][1],
        json={"data": {"decision": "sign"}},
    )
    assert signed.status_code == 200, signed.get_json()

    body = client.get(
        f"/api/v1/parapheur/folders/{folder_id}", headers=team["drafter"][1]
    ).get_json()
    assert body["status"] == "completed" and body["version"] == 1
    done_steps = [(s["kind"], s["by"], s["decision"], s["comment"]) for s in body["steps"]]
    assert done_steps == [
        ("submit", team["drafter"][0], "submit", None),
        ("visa", team["viser"][0], "approve", "Bon pour signature"),
        ("signature", team["signer"][0], "sign", None),
    ]
    assert all(s["at"] and s["status"] == "done" for s in body["steps"])
    [document] = body["documents"]
    original, signed_version = document["versions"]
    assert (original["kind"], signed_version["kind"]) == ("original", "signature")
    assert signed_version["signed_by"] == team["signer"][0]
    assert document["current_document_id"] == signed_version["document_id"]
    content = client.get(
        f"/api/v1/documents/{signed_version['document_id']}/content", headers=team["drafter"][1]
    )
    assert content.status_code == 200 and content.data.startswith(b"%PDF")
    report = client.get(
        f"/api/v1/parapheur/documents/{signed_version['document_id']}/validation",
        headers=team["viser"][1],
    ).get_json()
    assert report["signatures"][0]["ok"] is True


def test_a_refusal_shows_its_reason_and_a_pending_correction(client, team):
    folder_id = _deposit(
        client,
        team["drafter"][1],
        {"title": "Réponse", "type": "courrier_sortant", "circuit": _circuit(team)},
    ).get_json()["id"]
    [visa] = client.get("/api/v1/tasks?scope=mine", headers=team["viser"][1]).get_json()["items"]
    missing = client.post(
        f"/api/v1/tasks/{visa['id']}/complete",
        headers=team["viser"][1],
        json={"data": {"decision": "reject"}},
    )
    assert missing.status_code == 422
    assert missing.get_json()["errors"][0]["field"] == "comment"
    client.post(
        f"/api/v1/tasks/{visa['id']}/complete",
        headers=team["viser"][1],
        json={"data": {"decision": "reject", "comment": "Mauvais destinataire"}},
    )
    body = client.get(
        f"/api/v1/parapheur/folders/{folder_id}", headers=team["drafter"][1]
    ).get_json()
    assert body["status"] == "rejected"
    assert body["rejection"]["reason"] == "Mauvais destinataire"
    assert body["rejection"]["by"] == team["viser"][0]
    pending = [s for s in body["steps"] if s["status"] == "pending"]
    assert [(s["kind"], s["assignee"]) for s in pending] == [("correction", team["drafter"][0])]

    response = client.post(
        f"/api/v1/parapheur/folders/{folder_id}/resubmit",
        headers=team["drafter"][1],
        content_type="multipart/form-data",
        data={
            "metadata": json.dumps({"comment": "Destinataire corrigé"}),
            "documents": [(io.BytesIO(make_pdf(text="v2")), "courrier-v2.pdf")],
        },
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["version"] == 2 and response.get_json()["status"] == "in_progress"


def test_deposit_errors_are_problem_json(client, team):
    headers = team["drafter"][1]
    not_pdf = _deposit(
        client,
        headers,
        {"title": "X", "type": "courrier_sortant", "circuit": _circuit(team)},
        {"documents": [("lettre.docx", b"PK\x03\x04 pas un pdf")]},
    )
    assert not_pdf.status_code == 415
    assert not_pdf.headers["Content-Type"] == "application/problem+json"

    unknown = _deposit(
        client,
        headers,
        {
            "title": "X",
            "type": "courrier_sortant",
            "circuit": [{"step": "signature", "assignee": "personne@example.test"}],
        },
    )
    assert unknown.status_code == 422
    assert unknown.get_json()["errors"] == [
        {
            "field": "circuit.0.assignee",
            "message": "Aucun agent actif n'a l'adresse personne@example.test.",
        }
    ]

    bad_type = _deposit(
        client, headers, {"title": "X", "type": "lettre", "circuit": _circuit(team)}
    )
    assert bad_type.status_code == 422 and bad_type.get_json()["errors"][0]["field"] == "type"

    no_document = _deposit(
        client, headers, {"title": "X", "type": "courrier_sortant", "circuit": _circuit(team)}, {}
    )
    assert no_document.status_code == 422

    as_json = client.post("/api/v1/parapheur/folders", headers=headers, json={"title": "X"})
    assert as_json.status_code == 415

    anonymous = client.get("/api/v1/parapheur/folders/1")
    assert anonymous.status_code == 401


def test_others_cannot_read_a_folder_or_its_documents(client, team):
    folder_id = _deposit(
        client,
        team["drafter"][1],
        {"title": "Confidentiel", "type": "note_interne", "circuit": _circuit(team)},
    ).get_json()["id"]
    assert (
        client.get(
            f"/api/v1/parapheur/folders/{folder_id}", headers=team["outsider"][1]
        ).status_code
        == 403
    )
    body = client.get(f"/api/v1/parapheur/folders/{folder_id}", headers=team["viser"][1]).get_json()
    document_id = body["documents"][0]["current_document_id"]
    assert (
        client.get(
            f"/api/v1/documents/{document_id}/content", headers=team["outsider"][1]
        ).status_code
        == 403
    )
    assert (
        client.get("/api/v1/parapheur/folders/999999", headers=team["drafter"][1]).status_code
        == 404
    )
    listed = client.get(
        "/api/v1/parapheur/folders?scope=all", headers=team["outsider"][1]
    ).get_json()
    assert listed == {"items": [], "next_cursor": None}


def test_delegations_through_the_api(client, team):
    created = client.post(
        "/api/v1/parapheur/delegations",
        headers=team["signer"][1],
        json={"delegate": team["viser"][0], "document_types": ["facture"], "amount_ceiling": 5000},
    )
    assert created.status_code == 201, created.get_json()
    delegation = created.get_json()
    assert (delegation["delegator"], delegation["amount_ceiling"]) == (team["signer"][0], 5000)
    listed = client.get("/api/v1/parapheur/delegations", headers=team["viser"][1]).get_json()
    assert [d["id"] for d in listed["items"]] == [delegation["id"]]
    forbidden = client.post(
        f"/api/v1/parapheur/delegations/{delegation['id']}/revoke", headers=team["viser"][1]
    )
    assert forbidden.status_code == 403
    revoked = client.post(
        f"/api/v1/parapheur/delegations/{delegation['id']}/revoke", headers=team["signer"][1]
    )
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]


def test_the_openapi_document_describes_the_parapheur(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert {
        "/parapheur/folders",
        "/parapheur/folders/{folder_id}",
        "/parapheur/folders/{folder_id}/resubmit",
        "/parapheur/documents/{document_id}/validation",
    } <= {path.removeprefix("/api/v1") for path in document["paths"]}
    post = document["paths"]["/api/v1/parapheur/folders"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert "201" in post["responses"]
