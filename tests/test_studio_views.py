"""Studio pages over HTTP: who may open them, the modeler's JSON calls, CSRF, 409 on stale saves."""

from __future__ import annotations

import io
import re

import pytest

from app.auth.services import create_group, find_user_by_email
from app.engine import services as engine
from app.engine.handlers import service_handler
from tests.conftest import csrf_token, login
from tests.studio_helpers import deploy_circuit, linear_circuit


@pytest.fixture
def circuit(app):
    with app.app_context():
        create_group(name="redaction", label="Rédaction")
        create_group(name="dgs", label="Direction générale")
        deploy_circuit(linear_circuit())
    return "courrier_test"


def _token(client, path="/admin/processes/") -> str:
    html = client.get(path).get_data(as_text=True)
    return (
        re.search(r'name="csrf-token" content="([^"]+)"|name="csrf_token" value="([^"]+)"', html)
        .group(0)
        .split('"')[-2]
    )


def _draft_id(client, key="courrier_test") -> tuple[int, str]:
    html = client.get(f"/admin/processes/{key}/edit").get_data(as_text=True)
    draft_id = int(re.search(r'"draftId": (\d+)', html).group(1))
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    return draft_id, token


@pytest.mark.parametrize(
    "path",
    [
        "/admin/processes/",
        "/admin/processes/courrier_test/edit",
        "/admin/processes/courrier_test/diff",
        "/admin/processes/courrier_test/operations",
        "/admin/processes/incidents",
        "/admin/processes/log",
        "/admin/processes/courrier_test/versions/1/download",
        "/admin/processes/courrier_test/package",
    ],
)
def test_agents_get_403_on_every_studio_page(client, make_user, circuit, path):
    login(client, make_user(role="agent"))
    response = client.get(path)
    assert response.status_code == 403
    assert "Accès refusé" in response.get_data(as_text=True)


def test_agents_get_403_on_the_modeler_json_calls(app, client, make_user, circuit):
    analyst = make_user(role="analyst")
    login(client, analyst)
    draft_id, _token_value = _draft_id(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/admin/processes/")})
    login(client, make_user(role="agent"))
    token = csrf_token(client, "/")
    response = client.put(
        f"/admin/processes/drafts/{draft_id}",
        json={"source": "x", "revision": 1},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 403


def test_analyst_sees_versions_with_instance_counts_and_who_published(
    app, client, make_user, circuit
):
    email = make_user(role="analyst", name="Paul Renaud")
    with app.app_context():
        engine.start_instance("courrier_test", {}, find_user_by_email(email))
    login(client, email)
    html = client.get("/admin/processes/").get_data(as_text=True)
    assert "courrier_test" in html
    assert "1 en cours" in html
    assert "Circuits" in html  # the main navigation entry for analysts


def test_analysts_keep_403_on_user_administration_and_instance_operations(
    app, client, make_user, circuit
):
    email = make_user(role="analyst")
    with app.app_context():
        instance = engine.start_instance("courrier_test", {}, find_user_by_email(email))
    login(client, email)
    assert client.get("/admin/users").status_code == 403
    assert client.get(f"/admin/processes/instances/{instance.id}").status_code == 403
    token = _token(client)
    response = client.post(
        f"/admin/processes/instances/{instance.id}/suspend", data={"csrf_token": token}
    )
    assert response.status_code == 403


def test_modeler_saves_validates_and_publishes_through_json(app, client, make_user, circuit):
    login(client, make_user(role="analyst"))
    draft_id, token = _draft_id(client)
    headers = {"X-CSRFToken": token}
    loaded = client.get(f"/admin/processes/drafts/{draft_id}").get_json()
    assert loaded["revision"] == 1 and "Task_visa" in loaded["source"]
    changed = loaded["source"].replace('candidateGroups="redaction"', 'candidateGroups="dgs"')
    saved = client.put(
        f"/admin/processes/drafts/{draft_id}",
        json={"source": changed, "revision": 1},
        headers=headers,
    )
    assert saved.status_code == 200 and saved.get_json()["revision"] == 2
    assert saved.get_json()["problems"] == []
    published = client.post(
        f"/admin/processes/drafts/{draft_id}/publish",
        json={"revision": 2, "version_tag": "v2"},
        headers=headers,
    )
    assert published.status_code == 201
    assert published.get_json()["version"] == 2
    again = client.post(
        f"/admin/processes/drafts/{draft_id}/publish",
        json={"revision": published.get_json()["revision"]},
        headers=headers,
    )
    assert again.status_code == 200 and again.get_json()["created"] is False


def test_stale_save_over_http_is_a_409_problem_in_french(app, client, make_user, circuit):
    login(client, make_user(role="analyst", name="Paul Renaud"))
    draft_id, token = _draft_id(client)
    source = client.get(f"/admin/processes/drafts/{draft_id}").get_json()["source"]
    headers = {"X-CSRFToken": token}
    assert (
        client.put(
            f"/admin/processes/drafts/{draft_id}",
            json={"source": source, "revision": 1},
            headers=headers,
        ).status_code
        == 200
    )
    stale = client.put(
        f"/admin/processes/drafts/{draft_id}",
        json={"source": source, "revision": 1},
        headers=headers,
    )
    assert stale.status_code == 409
    assert stale.mimetype == "application/problem+json"
    body = stale.get_json()
    assert "Paul Renaud" in body["detail"] and body["revision"] == 2


def test_modeler_calls_without_csrf_token_are_refused(app, client, make_user, circuit):
    login(client, make_user(role="analyst"))
    draft_id, _token_value = _draft_id(client)
    response = client.put(
        f"/admin/processes/drafts/{draft_id}", json={"source": "x", "revision": 1}
    )
    assert response.status_code == 400


def test_invalid_publication_returns_422_with_element_ids(app, client, make_user, circuit):
    login(client, make_user(role="analyst"))
    draft_id, token = _draft_id(client)
    source = client.get(f"/admin/processes/drafts/{draft_id}").get_json()["source"]
    broken = source.replace('camunda:formKey="visa"', 'camunda:formKey="absent"')
    client.put(
        f"/admin/processes/drafts/{draft_id}",
        json={"source": broken, "revision": 1},
        headers={"X-CSRFToken": token},
    )
    response = client.post(
        f"/admin/processes/drafts/{draft_id}/publish",
        json={"revision": 2},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 422
    assert [e["element_id"] for e in response.get_json()["errors"]] == ["Task_visa"]


def test_diff_page_lists_the_changed_candidate_group(app, client, make_user, circuit):
    with app.app_context():
        deploy_circuit(
            linear_circuit().replace('candidateGroups="redaction"', 'candidateGroups="dgs"')
        )
    login(client, make_user(role="analyst"))
    html = client.get("/admin/processes/courrier_test/diff?from=1&to=2").get_data(as_text=True)
    assert "Groupes candidats" in html and "Task_redaction" in html
    assert client.get("/admin/processes/courrier_test/diff?from=x&to=2").status_code == 422


def test_import_form_turns_an_uploaded_diagram_into_a_draft(app, client, make_user):
    login(client, make_user(role="analyst"))
    token = _token(client)
    response = client.post(
        "/admin/processes/import",
        data={
            "csrf_token": token,
            "file": (io.BytesIO(linear_circuit(key="importe").encode()), "importe.bpmn"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/processes/importe/edit")


def test_admin_suspends_resumes_and_terminates_from_the_instance_page(
    app, client, make_user, circuit
):
    email = make_user(role="admin")
    with app.app_context():
        instance = engine.start_instance("courrier_test", {}, find_user_by_email(email))
    login(client, email)
    page = f"/admin/processes/instances/{instance.id}"
    html = client.get(page).get_data(as_text=True)
    assert "Chemin parcouru" in html and '"active": ["Task_redaction"]' in html
    token = _token(client, page)
    client.post(f"{page}/suspend", data={"csrf_token": token})
    assert "suspendue" in client.get(page).get_data(as_text=True)
    client.post(f"{page}/resume", data={"csrf_token": token})
    client.post(f"{page}/terminate", data={"csrf_token": token, "reason": "doublon"})
    with app.app_context():
        assert str(engine.get_instance(instance.id).status) == "terminated"


def test_batch_migration_page_reports_each_instance(app, client, make_user, circuit):
    email = make_user(role="admin")
    with app.app_context():
        instance_id = engine.start_instance("courrier_test", {}, find_user_by_email(email)).id
        deploy_circuit(
            linear_circuit().replace('candidateGroups="redaction"', 'candidateGroups="dgs"')
        )
    login(client, email)
    token = _token(client, "/admin/processes/courrier_test/operations")
    html = client.post(
        "/admin/processes/courrier_test/migrate",
        data={
            "csrf_token": token,
            "to_version": "2",
            "dry_run": "1",
            "instance_ids": [str(instance_id)],
        },
    ).get_data(as_text=True)
    assert 'data-status="possible"' in html
    html = client.post(
        "/admin/processes/courrier_test/migrate",
        data={
            "csrf_token": token,
            "to_version": "2",
            "dry_run": "0",
            "instance_ids": [str(instance_id)],
        },
    ).get_data(as_text=True)
    assert 'data-status="migrated"' in html


def test_operations_page_shows_waiting_counts(app, client, make_user, circuit):
    email = make_user(role="analyst")
    with app.app_context():
        engine.start_instance("courrier_test", {}, find_user_by_email(email))
    login(client, email)
    html = client.get("/admin/processes/courrier_test/operations").get_data(as_text=True)
    assert '"waiting": 1' in html
    assert 'data-element="Task_redaction"' in html


_FLAKY = {"failures_left": 0}


@service_handler("studio_test_flaky")
def _flaky(context):
    """A handler that fails as many times as asked, then works (for the incident tests)."""
    if _FLAKY["failures_left"] > 0:
        _FLAKY["failures_left"] -= 1
        raise RuntimeError("service distant indisponible")
    return {"sent": True}


def _with_service_task(xml: str) -> str:
    return xml.replace(
        '<bpmn:userTask id="Task_redaction" name="Rédiger" camunda:candidateGroups="redaction">',
        '<bpmn:serviceTask id="Task_redaction" name="Envoyer" camunda:type="external" '
        'camunda:topic="studio_test_flaky">',
    ).replace(
        '</bpmn:userTask>\n    <bpmn:userTask id="Task_visa"',
        '</bpmn:serviceTask>\n    <bpmn:userTask id="Task_visa"',
    )


def test_analyst_retries_an_incident_from_the_incidents_page(app, client, make_user):
    email = make_user(role="analyst")
    _FLAKY["failures_left"] = 1
    with app.app_context():
        create_group(name="dgs", label="Direction générale")
        deploy_circuit(_with_service_task(linear_circuit()))
        engine.start_instance("courrier_test", {}, find_user_by_email(email))
        (incident,) = engine.list_incidents()
        incident_id = incident.id
    login(client, email)
    html = client.get("/admin/processes/incidents").get_data(as_text=True)
    assert "service distant indisponible" in html
    token = _token(client, "/admin/processes/incidents")
    response = client.post(
        f"/admin/processes/incidents/{incident_id}/retry",
        data={"csrf_token": token, "next": "//evil.example/"},
    )
    assert response.headers["Location"] == "/admin/processes/incidents"
    with app.app_context():
        assert engine.list_incidents() == []


def test_deactivating_a_circuit_stops_new_instances(app, client, make_user, circuit):
    email = make_user(role="analyst")
    login(client, email)
    token = _token(client)
    client.post(
        "/admin/processes/courrier_test/activate", data={"csrf_token": token, "active": "0"}
    )
    with app.app_context():
        assert engine.get_definition("courrier_test").active is False
    assert "désactivé" in client.get("/admin/processes/").get_data(as_text=True)


def test_studio_log_shows_who_published(app, client, make_user, circuit):
    login(client, make_user(role="analyst", name="Paul Renaud"))
    draft_id, token = _draft_id(client)
    source = client.get(f"/admin/processes/drafts/{draft_id}").get_json()["source"]
    client.put(
        f"/admin/processes/drafts/{draft_id}",
        headers={"X-CSRFToken": token},
        json={"source": source.replace('"redaction"', '"dgs"'), "revision": 1},
    )
    client.post(
        f"/admin/processes/drafts/{draft_id}/publish",
        headers={"X-CSRFToken": token},
        json={"revision": 2},
    )
    html = client.get("/admin/processes/log").get_data(as_text=True)
    assert "draft.publish" in html and "process.deploy" in html
    assert "Paul Renaud" in html
