"""The circuit studio in a real browser (Debian's Chromium driven by Playwright).

A real Missive server is started on a free local port over its own SQLite database,
seeded through the services; the test kills it by its pid. Screenshots are saved under
test-artifacts/studio/.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import TEST_PASSWORD, make_app
from tests.studio_helpers import decision_table, deploy_circuit, linear_circuit

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/lib/chromium/chromium"
BUNDLE = ROOT / "app" / "static" / "vendor" / "studio" / "studio.js"
ARTIFACTS = ROOT / "test-artifacts" / "studio"
FIXTURE = Path(__file__).parent / "fixtures" / "bpmn" / "signavio_style_export.bpmn"
ANALYST = "paul.renaud@example.test"
ADMIN = "admin@example.test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server stopped (exit {process.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (local test server)
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer on {url}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Missive server with a deployed circuit, on its own database and port."""
    assert BUNDLE.is_file(), "modeler bundle missing: run `make vendor` (make test does)"
    assert Path(CHROMIUM).is_file(), "Debian's chromium is missing: scripts/system-deps.sh"
    workdir = tmp_path_factory.mktemp("studio-browser")
    application = make_app("sqlite", workdir)
    with application.app_context():
        from app.auth.services import create_group, create_user

        create_group(name="redaction", label="Rédaction")
        create_group(name="dgs", label="Direction générale")
        create_group(name="courrier-central", label="Courrier central")
        create_user(email=ANALYST, name="Paul Renaud", password=TEST_PASSWORD, role="analyst")
        admin = create_user(
            email=ADMIN,
            name="Alice Admin",
            password=TEST_PASSWORD,
            role="admin",
            groups=["redaction", "dgs"],
        )
        deploy_circuit(linear_circuit(name="Réponse au courrier"))
        from app.engine import services as engine

        engine.deploy([("orientation.dmn", decision_table().encode())], admin)
        engine.start_instance("courrier_test", {}, admin, title="Dossier en attente")
        advanced = engine.start_instance("courrier_test", {}, admin, title="Dossier avancé")
        (task,) = engine.instance_tasks(advanced)
        engine.complete_task(task.id, {}, admin)
        from app.core.extensions import db

        db.engine.dispose()
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{workdir / 'test.db'}",
        "MISSIVE_STORAGE": str(workdir / "storage"),
        "MISSIVE_HUEY_DB": str(workdir / "huey.db"),
        "MISSIVE_ENV": "development",
        "SECRET_KEY": "browser-tests-secret-key-long-enough",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "wsgi:app",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-reload",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base + "/login", process)
        yield {"base": base, "database": workdir / "test.db", "workdir": workdir}
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--headless",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
            ],
        )
        yield chromium
        chromium.close()


def _signed_in(browser, server, email):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="fr-FR")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server["base"] + "/login")
    page.fill("#email", email)
    page.fill("#password", TEST_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server["base"] + "/")
    return context, page, errors


@pytest.fixture
def page(browser, server):
    context, page, errors = _signed_in(browser, server, ANALYST)
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def admin_page(browser, server):
    context, page, errors = _signed_in(browser, server, ADMIN)
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_modeler(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#bpmn-modeler[data-ready=true]", timeout=20000)


def select_element(page, element_id: str) -> None:
    page.click(f'#bpmn-modeler g.djs-element[data-element-id="{element_id}"]')
    page.wait_for_function(
        "id => (document.querySelector('#bio-properties-panel-id') || {}).value === id",
        arg=element_id,
        timeout=5000,
    )


def open_group(page, group_id: str) -> None:
    header = page.locator(
        f'.bio-properties-panel-group[data-group-id="group-{group_id}"] '
        ".bio-properties-panel-group-header"
    )
    if "open" not in (header.get_attribute("class") or ""):
        header.click()


def test_analyst_changes_a_candidate_group_publishes_and_sees_it_in_the_diff(page, server):
    base = server["base"]
    open_modeler(page, base + "/admin/processes/courrier_test/edit")
    assert page.locator(".bjs-powered-by").is_visible()  # the bpmn.io watermark stays
    page.wait_for_selector(".bjsl-button:not(.bjsl-button-inactive)")  # bpmnlint is running
    page.wait_for_selector("#studio-problem-count:has-text('Aucun problème')")

    select_element(page, "Task_redaction")
    open_group(page, "CamundaPlatform__UserAssignment")
    field = page.locator("#bio-properties-panel-candidateGroups")
    assert field.input_value() == "redaction"
    field.fill("courrier-central")
    page.wait_for_selector("#studio-save-status:has-text('Brouillon enregistré')", timeout=15000)
    assert "révision 2" in page.text_content("#studio-save-status")

    page.click("#bpmn-modeler", position={"x": 700, "y": 420})  # an empty spot
    page.keyboard.press("Control+a")
    selected = page.evaluate("window.missiveStudio.modeler.get('selection').get().length")
    assert selected >= 5
    shot(page, "modeler-candidate-group")

    page.fill("#studio-version-tag", "2025-03")
    page.click("#studio-publish")
    page.wait_for_selector("#studio-publish-status:has-text('Version 2 publiée')", timeout=15000)

    page.goto(base + "/admin/processes/")
    row = page.locator('#circuit-courrier_test tr[data-version="2"]')
    assert row.is_visible()
    assert "2025-03" in row.text_content()
    assert "Paul Renaud" in row.text_content()
    shot(page, "versions")

    page.goto(base + "/admin/processes/courrier_test/diff?from=1&to=2")
    page.wait_for_selector("#bpmn-diff[data-ready=true]", timeout=20000)
    changed = page.locator("#diff-table tr.diff-row--changed", has_text="Groupes candidats")
    assert changed.count() == 1
    assert "redaction" in changed.text_content() and "courrier-central" in changed.text_content()
    marked = page.locator('#diff-new g.djs-element.diff-changed[data-element-id="Task_redaction"]')
    assert marked.count() == 1
    shot(page, "diff")


def test_a_diagram_from_another_modelling_tool_is_imported_and_edited(page, server):
    base = server["base"]
    page.goto(base + "/admin/processes/")
    page.set_input_files("#import-file", str(FIXTURE))
    page.click("form[action$='/import'] button[type=submit]")
    page.wait_for_url(base + "/admin/processes/sid-PROC-courrier/edit")
    page.wait_for_selector("#bpmn-modeler[data-ready=true]", timeout=20000)
    # The engine's checks run on the imported file and are shown on the page and diagram.
    page.wait_for_selector("#studio-problems li:has-text('exécutable')")
    assert page.locator('g.djs-element[data-element-id="sid-LANE-redaction"]').count() == 1

    select_element(page, "sid-TASK-rediger")
    open_group(page, "CamundaPlatform__UserAssignment")
    page.fill("#bio-properties-panel-candidateGroups", "redaction")
    page.wait_for_selector("#studio-save-status:has-text('Brouillon enregistré')", timeout=15000)

    # Making it executable through the panel runs the deploy checks, shown on the diagram.
    page.evaluate("""() => {
        const modeler = window.missiveStudio.modeler;
        const pool = modeler.get('elementRegistry').get('sid-P00L-0001');
        modeler.get('selection').select(pool);
    }""")
    page.wait_for_selector("#bio-properties-panel-isExecutable", state="attached")
    open_group(page, "general")
    page.check("#bio-properties-panel-isExecutable")
    page.wait_for_selector(
        'g.djs-element.missive-error[data-element-id="sid-FLOW-oui"]',
        state="attached",
        timeout=15000,
    )
    assert "sid-FLOW-oui" in page.text_content("#studio-problems")
    shot(page, "imported-diagram")

    import sqlite3

    with sqlite3.connect(server["database"]) as connection:
        (source,) = connection.execute(
            "SELECT source FROM process_draft WHERE key = 'sid-PROC-courrier'"
        ).fetchone()
    assert 'camunda:candidateGroups="redaction"' in source
    assert "signavio:signavioMetaData" in source  # the other tool's metadata is kept


def test_two_analysts_on_one_draft_get_a_clear_conflict(page, server, browser):
    base = server["base"]
    open_modeler(page, base + "/admin/processes/courrier_test/edit")
    other = browser.new_context(viewport={"width": 1400, "height": 900}, locale="fr-FR")
    second = other.new_page()
    second.goto(base + "/login")
    second.fill("#email", ANALYST)
    second.fill("#password", TEST_PASSWORD)
    second.click("button[type=submit]")
    second.wait_for_url(base + "/")
    open_modeler(second, base + "/admin/processes/courrier_test/edit")

    select_element(second, "Task_visa")
    open_group(second, "CamundaPlatform__UserAssignment")
    second.fill("#bio-properties-panel-candidateGroups", "dgs,redaction")
    second.wait_for_selector("#studio-save-status:has-text('Brouillon enregistré')", timeout=15000)

    select_element(page, "Task_visa")
    open_group(page, "CamundaPlatform__UserAssignment")
    page.fill("#bio-properties-panel-candidateGroups", "courrier-central")
    page.wait_for_selector("#studio-conflict:not([hidden])", timeout=15000)
    assert "Paul Renaud" in page.text_content("#studio-conflict-message")
    assert "n'ont pas été enregistrées" in page.text_content("#studio-conflict-message")
    shot(page, "conflict")
    page.click("#studio-reload")
    page.wait_for_selector("#studio-save-status:has-text('Version du serveur rechargée')")
    other.close()


def test_operations_heatmap_and_instance_path_are_drawn(admin_page, server):
    page = admin_page
    page.goto(server["base"] + "/admin/processes/courrier_test/operations")
    page.wait_for_selector("#bpmn-heatmap[data-ready=true]", timeout=20000)
    badges = page.locator(".heat-badge")
    assert badges.count() >= 2
    assert "1 en attente" in " ".join(badges.all_text_contents())
    shot(page, "heatmap")

    page.click("tr:has-text('Dossier avancé') a")
    page.wait_for_selector("#bpmn-instance[data-ready=true]", timeout=20000)
    done = 'g.djs-element.path-done[data-element-id="Task_redaction"]'
    active = 'g.djs-element.path-active[data-element-id="Task_visa"]'
    flow = 'g.djs-element.path-flow[data-element-id="Flow_1"]'
    for selector in (done, active, flow):
        page.wait_for_selector(selector, state="attached")
    shot(page, "instance-path")


def test_decision_tables_open_in_the_dmn_editor(page, server):
    page.goto(server["base"] + "/admin/processes/decisions/orientation/edit")
    page.wait_for_selector("#dmn-modeler[data-ready=true]", timeout=20000)
    assert page.locator(".tjs-table, .dmn-decision-table-container").count() >= 1
    assert "delegation-nantes" in page.text_content("#dmn-modeler")
    shot(page, "dmn-editor")


def test_new_circuit_with_form_and_handler_pickers(page, server):
    base = server["base"]
    page.goto(base + "/admin/processes/")
    page.fill("#new-key", "demande_subvention")
    page.fill("#new-name", "Demande de subvention")
    page.click("form[action$='/new'] button[type=submit]")
    page.wait_for_url(base + "/admin/processes/demande_subvention/edit")
    page.wait_for_selector("#bpmn-modeler[data-ready=true]", timeout=20000)

    select_element(page, "Task_1")
    open_group(page, "missive")
    picker = page.locator("#bio-properties-panel-missive-form-key")
    options = picker.locator("option").all_text_contents()
    assert {"visa", "signature"} <= set(options)
    picker.select_option("visa")
    page.wait_for_selector("#studio-save-status:has-text('Brouillon enregistré')", timeout=15000)

    page.evaluate("""() => {
        const modeler = window.missiveStudio.modeler;
        const task = modeler.get('elementRegistry').get('Task_1');
        const type = {type: 'bpmn:ServiceTask'};
        const replaced = modeler.get('bpmnReplace').replaceElement(task, type);
        modeler.get('selection').select(replaced);
    }""")
    open_group(page, "missive")
    handler = page.locator("#bio-properties-panel-missive-handler")
    assert "noop" in handler.locator("option").all_text_contents()
    handler.select_option("noop")
    page.wait_for_selector("#studio-save-status:has-text('révision 3')", timeout=15000)
    page.click("#studio-publish")
    page.wait_for_selector("#studio-publish-status:has-text('Version 1 publiée')", timeout=15000)
    shot(page, "new-circuit-published")

    import sqlite3

    with sqlite3.connect(server["database"]) as connection:
        (source,) = connection.execute(
            "SELECT source FROM process_version WHERE filename = 'demande_subvention.bpmn'"
        ).fetchone()
    assert 'camunda:topic="noop"' in source and 'camunda:type="external"' in source
