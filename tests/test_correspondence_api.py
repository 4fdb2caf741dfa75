"""API intake: registration with files, errors, registry search and one item."""

from __future__ import annotations

import json

import pytest

from tests.intake_helpers import pdf_bytes, setup_registry


@pytest.fixture
def registrar(app, make_user, api_token):
    setup_registry(app)
    email = make_user(groups=["courrier-central"], email="greffe@example.test")
    return api_token(email)


def post(client, headers, metadata, files=None):
    data = {"metadata": json.dumps(metadata)}
    for i, (name, content) in enumerate(files or []):
        data[f"file{i}" if i else "file"] = (__import__("io").BytesIO(content), name)
    return client.post(
        "/api/v1/correspondences", data=data, headers=headers, content_type="multipart/form-data"
    )


def test_registration_answers_number_dates_and_started_circuit(client, registrar):
    response = post(
        client,
        registrar,
        {
            "subject": "Demande de subvention pour le festival",
            "type": "demande_information",
            "received_at": "2026-03-02",
            "sender": {"name": "Claire DUPONT", "email": "claire@example.org"},
        },
        [("lettre.pdf", pdf_bytes("Lettre"))],
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {"id", "chrono", "received_at", "due_at", "process_instance_id"}
    assert body["chrono"].endswith("-A-000001")
    assert body["received_at"].startswith("2026-03-02T11:00")
    assert body["due_at"] == "2026-03-23T22:59:59+00:00"  # 15 working days, end of day in Paris
    assert body["process_instance_id"] is not None

    item = client.get(f"/api/v1/correspondences/{body['id']}", headers=registrar).get_json()
    assert item["channel"] == "api"
    assert item["sender"]["email"] == "claire@example.org"
    assert item["sender"]["name"] == "Claire DUPONT"
    assert [d["filename"] for d in item["documents"]] == ["lettre.pdf"]
    assert isinstance(item["documents"][0]["id"], int)
    assert [e["action"] for e in item["history"]][:2] == [
        "correspondence.register",
        "correspondence.distribute",
    ]


def test_invalid_metadata_gives_field_errors(client, registrar):
    response = post(client, registrar, {"subject": "", "confidentiality": "secret", "x": 1})
    assert response.status_code == 422
    fields = {e["field"] for e in response.get_json()["errors"]}
    assert {"subject", "confidentiality", "x"} <= fields


def test_unknown_type_or_service_is_a_field_error(client, registrar):
    response = post(client, registrar, {"subject": "Objet", "type": "inconnu"})
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "type"
    response = post(
        client, registrar, {"subject": "Objet", "service_group": "nulle-part", "copies": ["x"]}
    )
    assert response.status_code == 422
    assert {e["field"] for e in response.get_json()["errors"]} == {"service_group", "copies"}


def test_copies_and_service_given_by_the_application_are_kept(app, client, registrar):
    created = post(
        client, registrar, {"subject": "Objet", "service_group": "routes", "copies": ["dgs"]}
    ).get_json()
    item = client.get(f"/api/v1/correspondences/{created['id']}", headers=registrar).get_json()
    assert item["service_group"] == "routes"
    assert item["copies"] == ["dgs"]


def test_executable_is_refused_with_415_and_nothing_registered(app, client, registrar):
    response = post(client, registrar, {"subject": "Objet"}, [("facture.pdf", b"MZ\x90\x00" * 64)])
    assert response.status_code == 415
    listing = client.get("/api/v1/correspondences", headers=registrar).get_json()
    assert listing["items"] == []


def test_too_large_file_is_refused_with_413(app, client, registrar):
    app.config["MISSIVE_INTAKE_MAX_FILE_MB"] = 1
    try:
        big = pdf_bytes() + b"%" * (1024 * 1024 + 10)
        response = post(client, registrar, {"subject": "Objet"}, [("gros.pdf", big)])
    finally:
        app.config.pop("MISSIVE_INTAKE_MAX_FILE_MB")
    assert response.status_code == 413


def test_agent_outside_the_mail_office_cannot_register_through_the_api(
    client, registrar, make_user, api_token
):
    headers = api_token(make_user(groups=["routes"]))
    assert post(client, headers, {"subject": "Objet"}).status_code == 403


def test_registry_lists_filters_and_searches(client, registrar):
    for subject, channel in [
        ("Nid de poule route de Vannes", "api"),
        ("Inscription au collège", "paper"),
        ("Demande de documentation", "api"),
    ]:
        assert post(client, registrar, {"subject": subject, "channel": channel}).status_code == 201
    listing = client.get("/api/v1/correspondences?limit=2", headers=registrar).get_json()
    assert [i["subject"] for i in listing["items"]] == [
        "Demande de documentation",
        "Inscription au collège",
    ]
    rest = client.get(
        f"/api/v1/correspondences?limit=2&cursor={listing['next_cursor']}", headers=registrar
    ).get_json()
    assert [i["subject"] for i in rest["items"]] == ["Nid de poule route de Vannes"]
    assert rest["next_cursor"] is None
    papers = client.get("/api/v1/correspondences?channel=paper", headers=registrar).get_json()
    assert [i["subject"] for i in papers["items"]] == ["Inscription au collège"]
    found = client.get("/api/v1/correspondences?q=routes", headers=registrar).get_json()
    assert [i["subject"] for i in found["items"]] == ["Nid de poule route de Vannes"]


def test_a_case_is_hidden_from_agents_without_a_reason_to_see_it(
    client, registrar, make_user, api_token
):
    created = post(client, registrar, {"subject": "Objet"}).get_json()
    outsider = api_token(make_user(groups=["colleges"]))
    assert (
        client.get(f"/api/v1/correspondences/{created['id']}", headers=outsider).status_code == 403
    )
    assert client.get("/api/v1/correspondences", headers=outsider).get_json()["items"] == []


def test_confidential_case_documents_are_readable_only_by_its_service_and_grantees(
    app, client, registrar, make_user, api_token
):
    from app.auth.services import find_user_by_email
    from app.correspondence import services

    created = post(
        client,
        registrar,
        {"subject": "Signalement", "confidentiality": "confidential", "service_group": "routes"},
        [("signalement.pdf", pdf_bytes("Secret"))],
    ).get_json()
    item = client.get(f"/api/v1/correspondences/{created['id']}", headers=registrar)
    assert item.status_code == 403  # the mail office registered it but may not read it
    member_email = make_user(groups=["routes"])
    member = api_token(member_email)
    body = client.get(f"/api/v1/correspondences/{created['id']}", headers=member).get_json()
    document_id = body["documents"][0]["id"]
    assert client.get(f"/api/v1/documents/{document_id}/content", headers=member).status_code == 200
    colleague_email = make_user(groups=["colleges"])
    colleague = api_token(colleague_email)
    path = f"/api/v1/documents/{document_id}/content"
    assert client.get(path, headers=colleague).status_code == 403
    with app.app_context():
        case = services.get_case(created["id"])
        services.grant_access(
            case, find_user_by_email(colleague_email), find_user_by_email(member_email)
        )
    assert client.get(path, headers=colleague).status_code == 200


def test_case_type_list_is_configurable_from_the_command_line(app, registrar):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "case-type",
            "set",
            "--code",
            "subvention",
            "--label",
            "Demande de subvention",
            "--process",
            "courrier_entrant",
            "--channel-process",
            "web=candidature",
            "--days",
            "60",
        ]
    )
    assert result.exit_code == 0, result.output
    listing = runner.invoke(args=["case-type", "list"]).output
    assert '"code": "subvention"' in listing and '"web": "candidature"' in listing
    assert '"target_days": 60' in listing
    from app.correspondence.services import get_case_type
    from app.deadlines.clocks import resolve_rule

    with app.app_context():
        assert get_case_type("subvention").process_for("web") == "candidature"
        assert get_case_type("subvention").process_for("paper") == "courrier_entrant"
        subvention = get_case_type("subvention")
        assert resolve_rule(subvention.id, "email").target_days == 60  # working days
        assert resolve_rule(subvention.id, "paper").target_days == 60


def test_case_type_days_keep_the_other_delays_of_the_types_rule(app, registrar):
    from app.correspondence.services import get_case_type
    from app.deadlines.clocks import resolve_rule
    from app.deadlines.services import save_rule

    with app.app_context():
        save_rule(
            None,
            type_code="reclamation",
            channel=None,
            silence_months=2,
            implicit_decision="rejection",
        )
    runner = app.test_cli_runner()
    args = ["case-type", "set", "--code", "reclamation", "--label", "Réclamation"]
    assert runner.invoke(args=[*args, "--days", "10"]).exit_code == 0
    refused = runner.invoke(args=[*args, "--days", "500"])
    assert refused.exit_code == 1 and "Délai de réponse" in refused.output
    assert runner.invoke(args=args).exit_code == 0  # no --days: the delays stay
    with app.app_context():
        rule = resolve_rule(get_case_type("reclamation").id, "paper")
        assert (rule.target_days, rule.silence_months, rule.implicit_decision) == (
            10,
            2,
            "rejection",
        )
