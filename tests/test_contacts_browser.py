"""The contact picker in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import shutil
import threading

import pytest
from playwright import sync_api as playwright_api
from werkzeug.serving import make_server

from tests import contacts_support
from tests.conftest import TEST_PASSWORD
from tests.contacts_support import BAKERY, HELENE, make_contact

people = contacts_support.people
CHROMIUM = shutil.which("chromium")


@pytest.fixture
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def browser():
    assert CHROMIUM, "chromium is installed by scripts/system-deps.sh"
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


def signed_in(browser, live_server: str, email: str):
    """A browser page signed in through the real login form."""
    page = browser.new_page(locale="fr-FR")
    page.goto(f"{live_server}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", TEST_PASSWORD)
    page.press("input[name=password]", "Enter")
    page.wait_for_url(f"{live_server}/")
    return page


def test_agent_links_a_person_to_an_organisation_with_the_keyboard(
    app, people, live_server, browser
):
    person = make_contact(app, people["agent"], HELENE)
    make_contact(app, people["agent"], BAKERY)
    page = signed_in(browser, live_server, people["agent"])
    page.goto(f"{live_server}/contacts/{person}")
    page.fill("#organisation_id_search", "fournil")
    page.wait_for_selector("#organisation_id-options [role=option][data-id]")
    page.press("#organisation_id_search", "ArrowDown")
    page.press("#organisation_id_search", "Enter")
    assert page.input_value("#organisation_id_search") == "Boulangerie Le Fournil SARL"
    assert page.input_value("#organisation_id") != ""
    page.fill("#role", "gérante")
    page.click("text=Ajouter le lien")
    page.wait_for_selector("text=Lien enregistré.")
    assert "Boulangerie Le Fournil SARL" in page.text_content("#links-title + ul")


def test_search_page_updates_results_while_typing(app, people, live_server, browser):
    make_contact(app, people["agent"], HELENE)
    page = signed_in(browser, live_server, people["agent"])
    page.goto(f"{live_server}/contacts/")
    page.type("#q", "lefevre", delay=20)
    page.wait_for_selector("#results >> text=Hélène LEFÈBVRE")
    page.wait_for_url("**/contacts/?q=lefevre*")


def test_contact_form_shows_the_fields_of_the_chosen_kind(app, people, live_server, browser):
    page = signed_in(browser, live_server, people["agent"])
    page.goto(f"{live_server}/contacts/new")
    assert page.is_visible("#last_name") and not page.is_visible("#organisation_name")
    page.check("input[name=kind][value=organisation]")
    assert page.is_visible("#organisation_name") and not page.is_visible("#last_name")
