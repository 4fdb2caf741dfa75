"""The parapheur pages: deposit by upload, folder page, decisions, batch signing,
delegations and certificates."""

from __future__ import annotations

import io
import re

import pytest

from app.auth.services import find_user_by_email
from app.parapheur import services
from app.parapheur.services import Upload
from tests.conftest import csrf_token, login
from tests.parapheur_support import PKCS12_PASSWORD, make_pdf


@pytest.fixture
def desk(signing_app, make_user, signing_infrastructure):
    people = {
        "drafter": make_user(email="page-redaction@example.test", name="Paulette Rédige"),
        "viser": make_user(email="page-visa@example.test", name="Pierre Vise"),
        "signer": make_user(
            email="page-signe@example.test", name="Sandrine Signe", title="Directrice"
        ),
        "outsider": make_user(email="page-autre@example.test"),
        "admin": make_user(email="page-admin@example.test", role="admin"),
    }
    with signing_app.app_context():
        services.import_pkcs12(
            signing_infrastructure.identity("Sandrine Signe").pkcs12(),
            PKCS12_PASSWORD,
            email=people["signer"],
        )
    return people


def _folder(app, desk, title="Courrier", circuit=None):
    with app.app_context():
        folder = services.create_folder(
            title=title,
            type="courrier_sortant",
            actor=find_user_by_email(desk["drafter"]),
            documents=[Upload("courrier.pdf", make_pdf())],
            circuit=circuit or [{"step": "signature", "assignee": desk["signer"]}],
        )
        return folder.id


def _task_id(app, folder_id):
    with app.app_context():
        [task] = services.open_tasks(services.get_folder(folder_id))
        return task.id


def _current_document(app, folder_id):
    with app.app_context():
        return services.get_folder(folder_id).current_documents("main")[0].current_id


def test_a_folder_is_deposited_by_upload_and_its_page_shows_the_circuit(client, signing_app, desk):
    login(client, desk["drafter"])
    page = client.get("/parapheur/nouveau")
    assert page.status_code == 200 and 'name="documents"' in page.get_data(as_text=True)
    response = client.post(
        "/parapheur/nouveau",
        content_type="multipart/form-data",
        data={
            "csrf_token": csrf_token(client, "/parapheur/nouveau"),
            "title": "Réponse au maire",
            "type": "courrier_sortant",
            "circuit": "adhoc",
            "step-0-kind": "visa",
            "step-0-person": desk["viser"],
            "step-1-kind": "signature",
            "step-1-person": desk["signer"],
            "documents": [(io.BytesIO(make_pdf()), "reponse.pdf")],
            "annexes": [(io.BytesIO(make_pdf(text="Plan")), "plan.pdf")],
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert ("Réponse au maire" in html and "Pierre Vise" not in html) or "page-visa" in html
    assert re.search(r'<iframe class="pdf-preview" src="/parapheur/documents/\d+/apercu#', html)
    assert "plan.pdf" in html and "en attente" in html


def test_a_deposit_without_a_pdf_says_why_and_creates_nothing(client, signing_app, desk):
    login(client, desk["drafter"])
    response = client.post(
        "/parapheur/nouveau",
        content_type="multipart/form-data",
        data={
            "csrf_token": csrf_token(client, "/parapheur/nouveau"),
            "title": "Sans pièce",
            "type": "courrier_sortant",
            "circuit": "par_type",
            "documents": [(io.BytesIO(b"bonjour"), "note.txt")],
        },
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    assert "n&#39;est pas un PDF" in html or "n'est pas un PDF" in html
    with signing_app.app_context():
        assert services.list_folders(find_user_by_email(desk["drafter"]), scope="mine")[0] == []


def test_the_signer_signs_from_the_folder_page(client, signing_app, desk):
    folder_id = _folder(signing_app, desk)
    login(client, desk["signer"])
    page = client.get(f"/parapheur/{folder_id}").get_data(as_text=True)
    assert "Votre signature" in page and "Vous signez en votre nom" in page
    response = client.post(
        f"/parapheur/{folder_id}/etapes/{_task_id(signing_app, folder_id)}",
        data={"csrf_token": csrf_token(client, f"/parapheur/{folder_id}"), "decision": "sign"},
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    assert "Document signé." in html and "Signé" in html
    assert 'hx-get="/parapheur/documents/' in html  # the validation report loads lazily
    report = client.get(
        f"/parapheur/documents/{_current_document(signing_app, folder_id)}/validation",
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    assert "intacte" in report and "de confiance" in report and "document entier" in report


def test_a_refusal_from_the_page_needs_a_reason(client, signing_app, desk):
    folder_id = _folder(signing_app, desk)
    task_id = _task_id(signing_app, folder_id)
    login(client, desk["signer"])
    token = csrf_token(client, f"/parapheur/{folder_id}")
    html = client.post(
        f"/parapheur/{folder_id}/etapes/{task_id}",
        data={"csrf_token": token, "decision": "reject"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Le motif du refus est obligatoire." in html
    html = client.post(
        f"/parapheur/{folder_id}/etapes/{task_id}",
        data={"csrf_token": token, "decision": "reject", "comment": "Signature du maire manquante"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Motif du dernier refus" in html and "Signature du maire manquante" in html


def test_posting_without_the_csrf_token_is_refused(client, signing_app, desk):
    folder_id = _folder(signing_app, desk)
    login(client, desk["signer"])
    response = client.post(
        f"/parapheur/{folder_id}/etapes/{_task_id(signing_app, folder_id)}",
        data={"decision": "sign"},
    )
    assert response.status_code == 400
    with signing_app.app_context():
        assert services.get_folder(folder_id).status.value == "in_progress"


def test_outsiders_get_403_on_the_folder_and_its_preview(client, signing_app, desk):
    folder_id = _folder(signing_app, desk)
    document_id = _current_document(signing_app, folder_id)
    login(client, desk["outsider"])
    assert client.get(f"/parapheur/{folder_id}").status_code == 403
    assert client.get(f"/parapheur/documents/{document_id}/apercu").status_code == 403


def test_batch_signing_signs_only_what_was_opened_and_reports_each_folder(
    client, signing_app, desk
):
    first = _folder(signing_app, desk, "Premier")
    second = _folder(signing_app, desk, "Deuxième")
    third = _folder(signing_app, desk, "Troisième")
    login(client, desk["signer"])
    for folder_id in (first, third):
        preview = client.get(
            f"/parapheur/documents/{_current_document(signing_app, folder_id)}/apercu"
        )
        assert preview.status_code == 200 and preview.mimetype == "application/pdf"
    page = client.get("/parapheur/signature-par-lot").get_data(as_text=True)
    assert page.count('name="task"') == 3 and page.count("consulté") >= 2
    tasks = [_task_id(signing_app, f) for f in (first, second, third)]
    token = csrf_token(client, "/parapheur/signature-par-lot")
    confirm = client.post(
        "/parapheur/signature-par-lot", data={"csrf_token": token, "task": tasks}
    ).get_data(as_text=True)
    assert "Je confirme et je signe" in confirm and "ce parapheur sera refusé" in confirm
    with signing_app.app_context():
        assert all(
            services.get_folder(f).status.value == "in_progress" for f in (first, second, third)
        )
    results = client.post(
        "/parapheur/signature-par-lot", data={"csrf_token": token, "task": tasks, "confirm": "1"}
    ).get_data(as_text=True)
    assert "2 signés, 1 refusés." in results
    assert "Document non consulté : courrier.pdf." in results
    with signing_app.app_context():
        statuses = {f: services.get_folder(f).status.value for f in (first, second, third)}
    assert statuses == {first: "completed", second: "in_progress", third: "completed"}


def test_sign_batch_gives_one_result_per_folder(signing_app, desk):
    ids = [_folder(signing_app, desk, f"Lot {n}") for n in range(3)]
    tasks = [_task_id(signing_app, f) for f in ids]
    with signing_app.app_context():
        signer = find_user_by_email(desk["signer"])
        opened = {services.get_folder(f).current_documents("main")[0].current_id for f in ids}
        results = services.sign_batch([*tasks, 999999], signer, opened)
    assert [r.ok for r in results] == [True, True, True, False]
    assert all(len(r.signed_document_ids) == 1 for r in results[:3])
    assert results[3].message == "Tâche introuvable."


def test_delegations_page_creates_and_revokes(client, signing_app, desk):
    login(client, desk["signer"])
    token = csrf_token(client, "/parapheur/delegations")
    response = client.post(
        "/parapheur/delegations",
        data={
            "csrf_token": token,
            "delegate": desk["viser"],
            "document_types": ["facture"],
            "amount_ceiling": "15 000,50",
            "valid_from": "2026-01-01",
            "mention": "Pour la Directrice et par délégation",
        },
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    assert "Délégation de signature enregistrée." in html
    assert "15 000,50 €" in html and "Pour la Directrice et par délégation" in html
    with signing_app.app_context():
        [delegation] = services.delegations_of(find_user_by_email(desk["signer"]))
        assert delegation.amount_ceiling_cents == 1_500_050
    html = client.post(
        f"/parapheur/delegations/{delegation.id}/revocation",
        data={"csrf_token": token},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Délégation révoquée." in html and "révoquée" in html


def test_the_certificates_page_is_for_admins(client, signing_app, desk):
    login(client, desk["signer"])
    assert client.get("/parapheur/certificats").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client, "/parapheur/")})
    login(client, desk["admin"])
    html = client.get("/parapheur/certificats").get_data(as_text=True)
    assert "Sandrine Signe" in html and "PKCS#12" in html and "PAdES B-B" in html


def test_the_folder_list_shows_what_waits_for_me(client, signing_app, desk):
    _folder(signing_app, desk, "À signer vite")
    login(client, desk["signer"])
    html = client.get("/parapheur/").get_data(as_text=True)
    assert "À signer vite" in html and "1 parapheur attend votre signature." in html
    assert 'aria-current="page"' in html
