"""API skeleton: bearer tokens, problem+json everywhere, the OpenAPI document."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from app.api import services as token_services
from app.auth.services import find_user_by_email
from tests.conftest import login, make_app

PROBLEM_KEYS = {"type", "title", "status", "detail"}


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status
    return body


def test_me_answers_with_the_token_owner(client, make_user, api_token):
    email = make_user(groups=[])
    body = client.get("/api/v1/me", headers=api_token(email)).get_json()
    assert body["email"] == email


def test_missing_token_is_401_problem_with_challenge(client):
    response = client.get("/api/v1/me")
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_token_is_401(client):
    assert_problem(client.get("/api/v1/me", headers={"Authorization": "Bearer msv_nope"}), 401)


def test_revoked_token_stops_working(app, client, make_user):
    email = make_user()
    with app.app_context():
        token, clear = token_services.create_token(find_user_by_email(email))
        token_id = token.id
    headers = {"Authorization": f"Bearer {clear}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    with app.app_context():
        token_services.revoke_token(token_id)
    assert_problem(client.get("/api/v1/me", headers=headers), 401)


def test_token_is_stored_as_a_digest(app, make_user):
    from app.api.models import ApiToken
    from app.core.extensions import db

    email = make_user()
    with app.app_context():
        _token, clear = token_services.create_token(find_user_by_email(email))
        stored = db.session.query(ApiToken).one()
        assert clear not in (stored.token_hash, stored.prefix)
        assert len(stored.token_hash) == 64


def test_token_of_disabled_account_is_refused(app, client, make_user):
    from app.auth import services

    email = make_user()
    with app.app_context():
        _token, clear = token_services.create_token(find_user_by_email(email))
        user = find_user_by_email(email)
        services.update_user(
            user,
            actor=None,
            name=user.name,
            email=email,
            role="agent",
            title=None,
            org_unit=None,
            groups=[],
            active=False,
        )
    assert_problem(client.get("/api/v1/me", headers={"Authorization": f"Bearer {clear}"}), 401)


def test_browser_session_does_not_authenticate_the_api(client, make_user):
    login(client, make_user())
    assert client.get("/").status_code == 200
    assert_problem(client.get("/api/v1/me"), 401)


def test_unknown_api_path_is_404_problem(client):
    assert_problem(client.get("/api/v1/does-not-exist"), 404)


def test_wrong_method_is_405_problem_with_allow(client, make_user, api_token):
    response = client.delete("/api/v1/me", headers=api_token(make_user()))
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_invalid_query_parameter_is_422_with_field_errors(client, make_user, api_token):
    response = client.get("/api/v1/tasks?scope=everything", headers=api_token(make_user()))
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "scope"
    assert "choix possibles" in body["errors"][0]["message"]


def test_tasks_answer_a_page(client, make_user, api_token):
    body = client.get("/api/v1/tasks", headers=api_token(make_user())).get_json()
    assert set(body) == {"items", "next_cursor"}


def test_openapi_document_is_valid_and_lists_the_routes(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert "/api/v1/tasks" in document["paths"]
    assert "/api/v1/me" in document["paths"]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


@pytest.fixture
def crashing_app(tmp_path):
    """A separate SQLite application with one route that fails, to see the 500 path."""
    application = make_app("sqlite", tmp_path)

    @application.get("/api/v1/boom")
    def boom():
        raise RuntimeError("boom")

    @application.get("/boom")
    def boom_page():
        raise RuntimeError("boom")

    return application


def test_unexpected_error_is_500_problem_without_traceback(crashing_app):
    response = crashing_app.test_client().get("/api/v1/boom")
    body = assert_problem(response, 500)
    assert "Traceback" not in response.get_data(as_text=True)
    assert "boom" not in body["detail"]


def test_unexpected_error_on_a_page_is_a_french_500_page(crashing_app):
    response = crashing_app.test_client().get("/boom")
    assert response.status_code == 500
    assert "Une erreur est survenue" in response.get_data(as_text=True)


def test_html_404_is_french(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert "Page introuvable" in response.get_data(as_text=True)
