"""A real browser (Debian's Chromium driven by Playwright) against a real server: sign in,
open the inbox, claim a task with the keyboard, fill its form, complete it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask_migrate import upgrade

from app import create_app
from app.auth.services import create_user
from app.core.extensions import db
from tests.conftest import TEST_PASSWORD
from tests.inbox_support import Agents, ensure_groups, start_case

CHROMIUM = "/usr/lib/chromium/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
MISSIVE = Path(sys.executable).with_name("missive")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """A Missive server on a free port with its own SQLite database and one case."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'browser.db'}",
        "MISSIVE_STORAGE": str(tmp_path / "storage"),
        "MISSIVE_HUEY_DB": str(tmp_path / "huey.db"),
        "MISSIVE_FORMS_DIRS": str(Path(__file__).parent / "fixtures" / "forms"),
        "MISSIVE_ENV": "development",
    }
    application = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"],
            "MISSIVE_STORAGE": env["MISSIVE_STORAGE"],
            "MISSIVE_FORMS_DIRS": env["MISSIVE_FORMS_DIRS"],
        }
    )
    with application.app_context():
        upgrade()
        ensure_groups("instruction")
        create_user(
            email=Agents.alice, name="Alice Durand", password=TEST_PASSWORD, groups=["instruction"]
        )
        task_id = start_case(chrono="2026-04242", subject="Subvention du club de voile")
        db.session.remove()
        db.engine.dispose()
    port = free_port()
    process = subprocess.Popen(
        [str(MISSIVE), "run", "--host", "127.0.0.1", "--port", str(port), "--no-reload"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "wb"),  # noqa: SIM115 (closed with the process)
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", task_id
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def test_agent_claims_fills_and_completes_a_task_in_the_browser(server):
    from playwright.sync_api import expect, sync_playwright

    base, task_id = server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="fr-FR")
            page.goto(f"{base}/login")
            page.get_by_label("Adresse électronique").fill(Agents.alice)
            page.get_by_label("Mot de passe").fill(TEST_PASSWORD)
            page.get_by_role("button", name="Se connecter").click()
            page.get_by_role("link", name="Corbeilles de mes groupes").click()
            page.wait_for_url("**/?vue=candidate")
            row = page.locator(f'tr[data-task-id="{task_id}"]')
            expect(row).to_contain_text("2026-04242")

            page.keyboard.press("?")
            expect(page.locator("#shortcuts")).to_be_visible()
            page.keyboard.press("Escape")
            page.keyboard.press("j")
            expect(row).to_have_attribute("aria-selected", "true")
            page.keyboard.press("c")  # claim from the keyboard
            expect(page.get_by_text("Tâche prise.")).to_be_visible()
            expect(page.get_by_test_id("count-mine")).to_have_text("1")

            page.get_by_role("link", name="À traiter").click()
            page.wait_for_url("**/?vue=mine")
            expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_be_visible()
            page.keyboard.press("j")
            expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_be_focused()
            page.keyboard.press("Enter")
            expect(page.get_by_role("heading", level=1)).to_contain_text("Subvention du club")
            diagram = page.locator("#diagram")
            expect(diagram).to_have_attribute("data-rendered", "true")
            expect(diagram.locator(".current-step")).to_have_count(1)
            expect(diagram.locator(".bjs-powered-by")).to_be_visible()  # bpmn.io watermark

            page.get_by_label("Projet de réponse").fill("trop court")
            page.get_by_role("button", name="Terminer la tâche").click()
            expect(page.locator("#form-errors")).to_contain_text("Ce champ est obligatoire.")
            page.get_by_label("Accorder").check()
            page.get_by_label("Projet de réponse").fill(
                "Nous accordons la subvention demandée pour la saison."
            )
            page.get_by_label("Montant accordé (€)").fill("1500")
            page.screenshot(path=str(ARTIFACTS / "inbox-task-form.png"), full_page=True)
            page.get_by_role("button", name="Terminer la tâche").click()
            expect(page.get_by_text("Tâche terminée.")).to_be_visible()
            page.get_by_role("link", name="Terminées").click()
            expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "inbox-completed.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "inbox-completed.png").stat().st_size > 10_000
