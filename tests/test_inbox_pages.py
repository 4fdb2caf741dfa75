"""The inbox pages: list with counts and columns, task page (form, draft, documents,
circuit, history, comments), permissions (403), absences and notifications."""

from __future__ import annotations

import re

import pytest

from app.documents.services import add_document
from app.engine import services as engine
from app.inbox import services
from tests.conftest import csrf_token, login
from tests.inbox_support import make_agents, start_case, user


@pytest.fixture
def agents(app, make_user):
    return make_agents(app, make_user)


def as_agent(app, email):
    """A browser session signed in as ``email``."""
    browser = app.test_client()
    login(browser, email)
    return browser


def post(client, path, data, page="/"):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, page)})


def test_inbox_lists_views_with_counts_and_chosen_columns(app, client, agents):
    with app.app_context():
        start_case(chrono="2026-00777", sender_name="Jeanne Martin", amount=1250.5)
    client = as_agent(app, agents.alice)
    html = client.get("/?vue=candidate").get_data(as_text=True)
    assert 'data-testid="count-candidate">1<' in html
    assert 'data-testid="count-mine">0<' in html
    assert "2026-00777" in html and "Jeanne Martin" in html
    assert 'aria-current="page"' in html
    assert "Prendre" in html
    token = csrf_token(client, "/?vue=candidate")
    client.post(
        "/vues/candidate/reglages",
        data={"columns": ["title", "amount"], "sort": "priority", "csrf_token": token},
    )
    html = client.get("/?vue=candidate").get_data(as_text=True)
    assert "1 250,50 €" in html
    assert "Jeanne Martin" not in html


def test_list_page_shows_filter_errors_in_french_and_still_lists(app, client, agents):
    with app.app_context():
        start_case()
    client = as_agent(app, agents.alice)
    response = client.get("/?vue=candidate&due_to=demain")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "aujourd&#39;hui" in html and 'aria-invalid="true"' in html


def test_claiming_from_the_list_moves_the_task_to_a_traiter(app, client, agents):
    with app.app_context():
        task_id = start_case()
    client = as_agent(app, agents.alice)
    response = post(client, f"/taches/{task_id}/prendre", {"next": "/?vue=candidate"})
    assert response.status_code == 302
    html = client.get("/").get_data(as_text=True)
    assert 'data-testid="count-mine">1<' in html
    client = as_agent(app, agents.bob)
    post(client, f"/taches/{task_id}/prendre", {})
    assert "Cette tâche est prise par Alice Durand." in client.get("/").get_data(as_text=True)


def test_task_page_is_forbidden_to_agents_outside_the_task(app, client, agents):
    with app.app_context():
        task_id = start_case()
    client = as_agent(app, agents.chloe)
    assert client.get(f"/taches/{task_id}").status_code == 403
    assert client.get(f"/taches/{task_id}/circuit.bpmn").status_code == 403
    assert post(client, f"/taches/{task_id}/prendre", {}).status_code == 302
    with app.app_context():
        assert engine.get_task(task_id).assignee_id is None
    client = as_agent(app, agents.admin)
    assert client.get(f"/taches/{task_id}").status_code == 200


def test_task_form_is_validated_on_the_server_with_french_field_errors(app, client, agents):
    with app.app_context():
        task_id = start_case()
        services.claim(task_id, user(agents.alice))
    client = as_agent(app, agents.alice)
    page = client.get(f"/taches/{task_id}").get_data(as_text=True)
    assert 'name="decision"' in page and 'name="reponse"' in page
    response = post(
        client,
        f"/taches/{task_id}/terminer",
        {"decision": "accord", "reponse": "court"},
        f"/taches/{task_id}",
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Au moins 10 caractères." in html
    assert re.search(r'value="accord"\s+checked', html)
    response = post(
        client,
        f"/taches/{task_id}/terminer",
        {"decision": "accord", "reponse": "Votre demande est accordée."},
        f"/taches/{task_id}",
    )
    assert response.status_code == 302
    with app.app_context():
        assert str(engine.get_task(task_id).status) == "completed"


def test_draft_is_saved_from_the_form_and_shown_again(app, client, agents):
    with app.app_context():
        task_id = start_case()
        services.claim(task_id, user(agents.alice))
    client = as_agent(app, agents.alice)
    post(
        client,
        f"/taches/{task_id}/terminer",
        {"reponse": "Brouillon de réponse", "save_draft": "1"},
        f"/taches/{task_id}",
    )
    html = client.get(f"/taches/{task_id}").get_data(as_text=True)
    assert "Brouillon enregistré le" in html
    assert "Brouillon de réponse</textarea>" in html


def test_case_documents_come_from_registered_providers_with_inline_pdf_preview(app, client, agents):
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    attached: dict[int, int] = {}

    def provider(task, viewer):
        document_id = attached.get(task.instance_id)
        if document_id is None:
            return []
        from app.documents.services import get_document

        return [get_document(document_id)]

    services.register_task_documents(provider)
    try:
        with app.app_context():
            task_id = start_case()
            task = engine.get_task(task_id)
            doc = add_document(pdf, filename="courrier scanné.pdf", mime_type="application/pdf")
            other = add_document(b"secret", filename="autre.txt", mime_type="text/plain")
            engine.db.session.commit()
            attached[task.instance_id] = doc.id
            doc_id, other_id = doc.id, other.id
        client = as_agent(app, agents.alice)
        html = client.get(f"/taches/{task_id}").get_data(as_text=True)
        assert "courrier scanné.pdf" in html
        assert f'<iframe class="pdf-preview" src="/taches/{task_id}/documents/{doc_id}"' in html
        response = client.get(f"/taches/{task_id}/documents/{doc_id}")
        assert response.status_code == 200
        assert response.mimetype == "application/pdf"
        assert response.headers["Content-Disposition"].startswith("inline")
        assert response.data == pdf
        assert client.get(f"/taches/{task_id}/documents/{other_id}").status_code == 404
        client = as_agent(app, agents.chloe)
        assert client.get(f"/taches/{task_id}/documents/{doc_id}").status_code == 403
    finally:
        services._document_providers.remove(provider)


def test_task_page_shows_history_circuit_and_comments(app, client, agents):
    with app.app_context():
        task_id = start_case()
        services.claim(task_id, user(agents.alice))
        services.add_comment(task_id, user(agents.alice), "À voir avec @bob.leroy")
    client = as_agent(app, agents.bob)
    html = client.get(f"/taches/{task_id}").get_data(as_text=True)
    assert "Dossier ouvert" in html and "Tâche prise" in html
    assert 'data-current="Task_instruire"' in html
    assert "bpmn-navigated-viewer.production.min.js" in html
    assert "À voir avec @bob.leroy" in html
    diagram = client.get(f"/taches/{task_id}/circuit.bpmn")
    assert diagram.mimetype == "application/xml"
    assert b'id="Task_instruire"' in diagram.data


def test_reassign_delegate_and_resolve_from_the_task_page(app, client, agents):
    with app.app_context():
        task_id = start_case()
        services.claim(task_id, user(agents.alice))
    client = as_agent(app, agents.alice)
    page = f"/taches/{task_id}"
    post(client, f"{page}/deleguer", {"delegate": agents.chloe, "reason": "avis"}, page)
    client = as_agent(app, agents.chloe)
    html = client.get(page).get_data(as_text=True)
    assert "Rendre la tâche" in html and "déléguée par Alice Durand" in html
    post(client, f"{page}/rendre-au-proprietaire", {"comment": "Avis favorable"}, page)
    client = as_agent(app, agents.alice)
    post(client, f"{page}/reattribuer", {"assignee": agents.bob, "reason": "Suite"}, page)
    with app.app_context():
        task = engine.get_task(task_id)
        assert task.assignee.email == agents.bob
        assert task.owner_id is None


def test_substitute_sees_pour_le_compte_de_in_the_list(app, client, agents):
    with app.app_context():
        task_id = start_case(chrono="2026-00900")
        alice = user(agents.alice)
        services.claim(task_id, alice)
    client = as_agent(app, agents.alice)
    from app.inbox.queries import today

    day = today().isoformat()
    response = post(
        client,
        "/absences",
        {"substitute": agents.chloe, "starts_on": day, "ends_on": day},
        "/absences",
    )
    assert response.status_code == 302
    client = as_agent(app, agents.chloe)
    html = client.get("/").get_data(as_text=True)
    assert "2026-00900" in html and "pour le compte de Alice Durand" in html
    assert "Vous remplacez Alice Durand" in html
    assert client.get(f"/taches/{task_id}").status_code == 200


def test_absence_form_refuses_bad_input_in_french(app, client, agents):
    client = as_agent(app, agents.alice)
    response = post(
        client,
        "/absences",
        {"substitute": agents.alice, "starts_on": "2030-01-10", "ends_on": "2030-01-01"},
        "/absences",
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Choisissez un autre agent." in html and "La fin précède le début." in html


def test_notification_counter_and_preferences(app, client, agents):
    with app.app_context():
        task_id = start_case()
        services.add_comment(task_id, user(agents.alice), "@bob.leroy à toi")
    client = as_agent(app, agents.bob)
    html = client.get("/").get_data(as_text=True)
    assert re.search(r'data-testid="nav-badge">1<', html)
    assert "vous cite" in client.get("/notifications").get_data(as_text=True)
    post(client, "/notifications/lues", {}, "/notifications")
    assert 'data-testid="nav-badge"' not in client.get("/").get_data(as_text=True)
    post(
        client,
        "/notifications/preferences",
        {"email_on_mention": "on"},
        "/notifications/preferences",
    )
    with app.app_context():
        prefs = services.preferences(user(agents.bob))
        assert (prefs.email_on_assignment, prefs.email_on_mention, prefs.daily_digest) == (
            False,
            True,
            False,
        )


def test_bulk_form_flashes_a_result_per_task(app, client, agents):
    with app.app_context():
        free, taken = start_case(chrono="2026-1"), start_case(chrono="2026-2")
        services.claim(taken, user(agents.bob))
    client = as_agent(app, agents.alice)
    post(client, "/taches/lot", {"action": "claim", "task_ids": [str(free), str(taken)]})
    html = client.get("/").get_data(as_text=True)
    assert "1 tâche(s) traitée(s)." in html
    assert f"Tâche n° {taken}" in html


def test_saved_filter_from_the_page_is_applied_by_its_link(app, client, agents):
    with app.app_context():
        start_case(chrono="2026-00555", priority=90)
        start_case(chrono="2026-00556", priority=10)
    client = as_agent(app, agents.alice)
    post(
        client,
        "/filtres",
        {"name": "Urgences", "view": "candidate", "priority_min": "70", "visibility": "public"},
    )
    with app.app_context():
        saved = services.visible_filters(user(agents.bob))[0]
    client = as_agent(app, agents.bob)
    html = client.get(f"/?filtre={saved.id}").get_data(as_text=True)
    assert "2026-00555" in html and "2026-00556" not in html


def test_keyboard_shortcuts_are_announced_and_scripted(app, client, agents):
    client = as_agent(app, agents.alice)
    html = client.get("/").get_data(as_text=True)
    assert "js/inbox.js" in html and 'id="shortcuts"' in html and 'aria-live="polite"' in html
    script = client.get("/static/js/inbox.js").get_data(as_text=True)
    for key in ('case "j"', 'case "k"', 'case "Enter"', 'case "c"', 'case "?"'):
        assert key in script
