"""The contact pages: search, autocomplete widget, forms with CSRF, duplicates queue."""

from __future__ import annotations

import re

from flask import render_template_string

from tests import contacts_support
from tests.conftest import csrf_token, login
from tests.contacts_support import HELENE, make_contact

people = contacts_support.people


def test_contacts_page_is_in_the_menu_and_searches(app, client, people):
    make_contact(app, people["agent"], HELENE)
    login(client, people["agent"])
    html = client.get("/contacts/?q=lefevre").get_data(as_text=True)
    assert 'href="/contacts/"' in client.get("/").get_data(as_text=True)
    assert "Hélène LEFÈBVRE" in html
    assert 'hx-get="/contacts/"' in html


def test_htmx_search_answers_only_the_results_fragment(app, client, people):
    make_contact(app, people["agent"], HELENE)
    login(client, people["agent"])
    fragment = client.get("/contacts/?q=44000", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert "<html" not in text and "Hélène LEFÈBVRE" in text


def test_autocomplete_offers_contacts_and_a_creation_link(app, client, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    login(client, people["agent"])
    html = client.get(
        "/contacts/autocomplete?target=sender_id&sender_id_search=lefeb&create=1"
    ).get_data(as_text=True)
    assert f'data-id="{contact_id}"' in html and 'role="option"' in html
    assert "Créer un nouveau contact" in html
    as_json = client.get(
        "/contacts/autocomplete?q=lefeb", headers={"Accept": "application/json"}
    ).get_json()
    assert as_json[0]["id"] == contact_id


def test_the_picker_macro_renders_an_accessible_combobox(app):
    with app.test_request_context("/"):
        html = render_template_string(
            '{% from "contacts/macros.html" import contact_picker %}'
            '{{ contact_picker("sender_id", "Expéditeur", required=True) }}'
        )
    assert 'role="combobox"' in html and 'aria-controls="sender_id-options"' in html
    assert 'name="sender_id"' in html and "/contacts/autocomplete?target=sender_id" in html


def test_creating_a_contact_through_the_form(app, client, people):
    login(client, people["agent"])
    token = csrf_token(client, "/contacts/new")
    response = client.post(
        "/contacts/new",
        data={
            "csrf_token": token,
            "kind": "person",
            "civility": "Mme",
            "first_name": "Zoé",
            "last_name": "Brière",
            "email": "zoe@example.fr",
            "phone": "06 11 22 33 44",
            "line4": "5 rue Kervégan",
            "postal_code": "44000",
            "city": "Nantes",
        },
    )
    assert response.status_code == 302
    page = client.get(response.location).get_data(as_text=True)
    assert "Mme Zoé BRIÈRE" in page and "06 11 22 33 44" in page and "44000 NANTES" in page


def test_form_without_csrf_token_is_refused(app, client, people):
    login(client, people["agent"])
    response = client.post("/contacts/new", data={"kind": "person", "last_name": "Sans"})
    assert response.status_code == 400


def test_form_shows_field_errors_in_french(app, client, people):
    login(client, people["agent"])
    token = csrf_token(client, "/contacts/new")
    html = client.post(
        "/contacts/new",
        data={
            "csrf_token": token,
            "kind": "person",
            "last_name": "Test",
            "postal_code": "44000",
            "city": "Rezé",
            "email": "pas-valide",
        },
    ).get_data(as_text=True)
    assert "ne dessert pas" in html and "Adresse électronique invalide." in html


def test_form_warns_about_a_probable_duplicate_and_lets_confirm(app, client, people):
    make_contact(app, people["agent"], HELENE)
    login(client, people["agent"])
    data = {
        "kind": "person",
        "first_name": "Helene",
        "last_name": "Lefebvre",
        "email": "helene.lefebvre@example.fr",
    }
    html = client.post(
        "/contacts/new", data={**data, "csrf_token": csrf_token(client, "/contacts/new")}
    ).get_data(as_text=True)
    assert "Doublon probable" in html and "allow_duplicate" in html
    confirmed = client.post(
        "/contacts/new",
        data={**data, "allow_duplicate": "y", "csrf_token": csrf_token(client, "/contacts/new")},
    )
    assert confirmed.status_code == 302


def test_edit_form_detects_a_concurrent_change(app, client, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    login(client, people["agent"])
    form_html = client.get(f"/contacts/{contact_id}/edit").get_data(as_text=True)
    assert 'name="version" type="hidden" value="1"' in form_html
    token = csrf_token(client, f"/contacts/{contact_id}/edit")
    fields = {
        "csrf_token": token,
        "kind": "person",
        "last_name": "Lefèbvre",
        "first_name": "Hélène",
        "postal_code": "44000",
        "city": "Nantes",
    }
    assert (
        client.post(f"/contacts/{contact_id}/edit", data={**fields, "version": "1"}).status_code
        == 302
    )
    html = client.post(
        f"/contacts/{contact_id}/edit", data={**fields, "first_name": "Autre", "version": "1"}
    ).get_data(as_text=True)
    assert "modifié entre-temps" in html


def test_duplicates_queue_is_for_referents_only(app, client, people):
    make_contact(app, people["agent"], HELENE)
    make_contact(app, people["agent"], HELENE, allow_duplicate=True)
    login(client, people["agent"])
    assert client.get("/contacts/duplicates").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client, "/contacts/")})
    login(client, people["referent"])
    html = client.get("/contacts/duplicates").get_data(as_text=True)
    pair_url = re.search(r'href="(/contacts/duplicates/\d+)"', html).group(1)
    compare = client.get(pair_url).get_data(as_text=True)
    assert "Fusionner" in compare and "Pas un doublon" in compare


def test_merge_and_undo_from_the_pages(app, client, people):
    survivor = make_contact(app, people["agent"], HELENE)
    merged = make_contact(
        app, people["agent"], {**HELENE, "phone": "02 40 00 00 01"}, allow_duplicate=True
    )
    login(client, people["referent"])
    html = client.get("/contacts/duplicates").get_data(as_text=True)
    pair_url = re.search(r'href="(/contacts/duplicates/\d+)"', html).group(1)
    token = csrf_token(client, pair_url)
    response = client.post(
        pair_url, data={"csrf_token": token, "survivor_id": survivor, "action": "merge"}
    )
    assert response.location.endswith(f"/contacts/{survivor}")
    assert client.get(f"/contacts/{merged}").location.endswith(f"/contacts/{survivor}")
    page = client.get(f"/contacts/{survivor}").get_data(as_text=True)
    assert "02 40 00 00 01" in page
    undo_url = re.search(r'action="(/contacts/merges/\d+/undo)"', page).group(1)
    assert client.post(undo_url).status_code == 400  # no CSRF token
    client.post(undo_url, data={"csrf_token": csrf_token(client, f"/contacts/{survivor}")})
    assert client.get(f"/contacts/{merged}").status_code == 200


def test_gdpr_buttons_and_pages_are_for_the_dpo(app, client, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    login(client, people["agent"])
    assert "Export RGPD" not in client.get(f"/contacts/{contact_id}").get_data(as_text=True)
    assert client.get(f"/contacts/{contact_id}/export.json").status_code == 403
    assert client.get(f"/contacts/{contact_id}/anonymise").status_code == 403


def test_retention_rules_page_is_for_admins(app, client, people):
    login(client, people["agent"])
    assert client.get("/contacts/retention").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client, "/contacts/")})
    login(client, people["admin"])
    token = csrf_token(client, "/contacts/retention")
    response = client.post(
        "/contacts/retention",
        data={
            "csrf_token": token,
            "case_type": "aide-sociale",
            "label": "Aide sociale",
            "months": "120",
            "action": "anonymise",
        },
    )
    assert response.status_code == 302
    assert "aide-sociale" in client.get("/contacts/retention").get_data(as_text=True)
