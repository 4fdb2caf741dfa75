"""The missive command line, run as users do."""

from __future__ import annotations

import json

from app.auth.services import find_user_by_email


def test_user_create_then_token_create_gives_a_working_token(app, client):
    runner = app.test_cli_runner()
    with app.app_context():
        from app.auth.services import create_group

        create_group(name="dgs", label="DGS")
    result = runner.invoke(
        args=[
            "user",
            "create",
            "--email",
            "Jean.Morel@example.test",
            "--name",
            "Jean Morel",
            "--password",
            "a-long-password",
            "--role",
            "analyst",
            "--group",
            "dgs",
        ]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["groups"] == ["dgs"]
    token = app.test_cli_runner().invoke(
        args=["token", "create", "--email", "jean.morel@example.test"]
    )
    assert token.exit_code == 0
    clear = token.output.strip()
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {clear}"}).get_json()
    assert me["role"] == "analyst"


def test_user_create_refuses_an_unknown_group(app):
    result = app.test_cli_runner().invoke(
        args=[
            "user",
            "create",
            "--email",
            "x@example.test",
            "--name",
            "X",
            "--password",
            "a-long-password",
            "--group",
            "nope",
        ]
    )
    assert result.exit_code == 1
    assert "Groupe inconnu" in result.output
    with app.app_context():
        assert find_user_by_email("x@example.test") is None


def test_token_revoke_command(app, client, make_user):
    email = make_user()
    runner = app.test_cli_runner()
    clear = runner.invoke(args=["token", "create", "--email", email]).output.strip()
    listed = json.loads(runner.invoke(args=["token", "list", "--email", email]).output)
    assert runner.invoke(args=["token", "revoke", "--id", str(listed["id"])]).exit_code == 0
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {clear}"})
    assert response.status_code == 401


def test_demo_load_and_audit_verify_commands(app):
    from app.core.worker import huey

    runner = app.test_cli_runner()
    huey.immediate = False  # as in `make run`: OCR and mails are left to the worker
    try:
        loaded = json.loads(runner.invoke(args=["demo", "load"]).output)
    finally:
        huey.flush()
        huey.immediate = True
    assert loaded["users"] >= 40 and loaded["demo_cases"] >= 30
    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0
    assert json.loads(verified.output)["intact"] is True
