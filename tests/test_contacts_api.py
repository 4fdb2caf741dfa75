"""The contacts API of CONTRACT.md: search, create (duplicate warning), read, update."""

from __future__ import annotations

from openapi_spec_validator import validate

from tests import contacts_support
from tests.contacts_support import BAKERY, HELENE, make_contact
from tests.test_api import assert_problem

people = contacts_support.people
CONTRACT_FIELDS = {
    "kind",
    "civility",
    "first_name",
    "last_name",
    "organisation_name",
    "siret",
    "rna",
    "email",
    "phone",
    "address_lines",
    "postal_code",
    "city",
}


def test_post_creates_a_contact_with_the_contract_fields(client, people, api_token):
    response = client.post("/api/v1/contacts", json=HELENE, headers=api_token(people["agent"]))
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) >= CONTRACT_FIELDS
    assert body["last_name"] == "Lefèbvre" and body["phone"] == "+33612345678"
    assert body["duplicates"] == []
    assert response.headers["Location"] == f"/api/v1/contacts/{body['id']}"
    assert response.headers["ETag"] == 'W/"1"'


def test_post_of_an_obvious_duplicate_answers_409_with_the_candidates(client, people, api_token):
    headers = api_token(people["agent"])
    first = client.post("/api/v1/contacts", json=HELENE, headers=headers).get_json()
    again = {**HELENE, "first_name": "Helene", "last_name": "LEFEBVRE"}
    body = assert_problem(client.post("/api/v1/contacts", json=again, headers=headers), 409)
    assert body["type"].endswith("/duplicate")
    assert "Doublon" in body["detail"]
    assert body["duplicates"][0]["id"] == first["id"]
    forced = client.post(
        "/api/v1/contacts", json={**again, "allow_duplicate": True}, headers=headers
    )
    assert forced.status_code == 201
    assert forced.get_json()["duplicates"][0]["id"] == first["id"]


def test_post_with_invalid_fields_is_422_with_field_errors(client, people, api_token):
    bad = {
        "kind": "organisation",
        "organisation_name": "X",
        "siret": "12345678901234",
        "postal_code": "44000",
        "city": "Rezé",
        "email": "non",
    }
    body = assert_problem(
        client.post("/api/v1/contacts", json=bad, headers=api_token(people["agent"])), 422
    )
    assert {e["field"] for e in body["errors"]} == {"siret", "postal_code", "email"}


def test_unknown_fields_and_wrong_types_are_422(client, people, api_token):
    headers = api_token(people["agent"])
    body = assert_problem(
        client.post(
            "/api/v1/contacts",
            json={"kind": "person", "last_name": "A", "nickname": "B"},
            headers=headers,
        ),
        422,
    )
    assert body["errors"][0]["field"] == "nickname"
    assert_problem(client.post("/api/v1/contacts", json={"kind": "robot"}, headers=headers), 422)


def test_search_answers_a_page_and_pages_with_the_cursor(app, client, people, api_token):
    for i in range(3):
        make_contact(
            app,
            people["agent"],
            {"kind": "person", "last_name": "Guérin", "first_name": f"Anne{i}"},
        )
    headers = api_token(people["agent"])
    first = client.get("/api/v1/contacts?q=guerin&limit=2", headers=headers).get_json()
    assert set(first) == {"items", "next_cursor"}
    assert [c["first_name"] for c in first["items"]] == ["Anne0", "Anne1"]
    second = client.get(
        f"/api/v1/contacts?q=guerin&limit=2&cursor={first['next_cursor']}", headers=headers
    ).get_json()
    assert [c["first_name"] for c in second["items"]] == ["Anne2"]
    assert second["next_cursor"] is None
    assert_problem(client.get("/api/v1/contacts?cursor=garbage", headers=headers), 422)


def test_get_reads_a_contact_and_404_for_an_unknown_one(app, client, people, api_token):
    contact_id = make_contact(app, people["agent"], BAKERY)
    headers = api_token(people["agent"])
    body = client.get(f"/api/v1/contacts/{contact_id}", headers=headers).get_json()
    assert body["siren"] == "732829320" and body["organisation_type"] == "company"
    assert_problem(client.get("/api/v1/contacts/999999", headers=headers), 404)


def test_patch_updates_with_the_version_and_refuses_a_stale_one(app, client, people, api_token):
    contact_id = make_contact(app, people["agent"], HELENE)
    headers = api_token(people["agent"])
    url = f"/api/v1/contacts/{contact_id}"
    response = client.patch(
        url,
        json={"city": "Nantes", "postal_code": "44300"},
        headers={**headers, "If-Match": 'W/"1"'},
    )
    assert response.status_code == 200
    assert response.get_json()["postal_code"] == "44300"
    assert response.headers["ETag"] == 'W/"2"'
    stale = client.patch(url, json={"first_name": "X", "version": 1}, headers=headers)
    body = assert_problem(stale, 409)
    assert body["current_version"] == 2
    stale_header = client.patch(
        url, json={"first_name": "X"}, headers={**headers, "If-Match": '"1"'}
    )
    assert_problem(stale_header, 409)


def test_patch_with_invalid_data_is_422_and_changes_nothing(app, client, people, api_token):
    contact_id = make_contact(app, people["agent"], HELENE)
    headers = api_token(people["agent"])
    url = f"/api/v1/contacts/{contact_id}"
    body = assert_problem(
        client.patch(url, json={"phone": "123", "last_name": ""}, headers=headers), 422
    )
    assert {e["field"] for e in body["errors"]} == {"phone", "last_name"}
    assert client.get(url, headers=headers).get_json()["version"] == 1


def test_api_requires_a_token(client):
    assert_problem(client.get("/api/v1/contacts"), 401)


def test_merge_and_undo_through_the_api_need_the_referent_group(app, client, people, api_token):
    survivor = make_contact(app, people["agent"], HELENE)
    merged = make_contact(app, people["agent"], HELENE, allow_duplicate=True)
    url = f"/api/v1/contacts/{survivor}/merge"
    assert_problem(
        client.post(url, json={"merged_id": merged}, headers=api_token(people["agent"])), 403
    )
    referent = api_token(people["referent"])
    assert client.get("/api/v1/contacts/duplicates", headers=referent).get_json()["items"]
    response = client.post(url, json={"merged_id": merged}, headers=referent)
    assert response.status_code == 200
    merge = response.get_json()
    read = client.get(f"/api/v1/contacts/{merged}", headers=referent).get_json()
    assert (read["status"], read["merged_into_id"]) == ("merged", survivor)
    undone = client.post(f"/api/v1/contact-merges/{merge['id']}/undo", headers=referent)
    assert undone.status_code == 200 and undone.get_json()["undone_at"]
    assert (
        client.get(f"/api/v1/contacts/{merged}", headers=referent).get_json()["status"] == "active"
    )


def test_gdpr_endpoints_need_the_dpo_group(app, client, people, api_token):
    contact_id = make_contact(app, people["agent"], HELENE)
    agent = api_token(people["agent"])
    assert_problem(client.get(f"/api/v1/contacts/{contact_id}/export", headers=agent), 403)
    assert_problem(client.post(f"/api/v1/contacts/{contact_id}/anonymise", headers=agent), 403)
    dpo = api_token(people["dpo"])
    export = client.get(f"/api/v1/contacts/{contact_id}/export", headers=dpo).get_json()
    assert export["contact"]["last_name"] == "Lefèbvre"
    body = client.post(f"/api/v1/contacts/{contact_id}/anonymise", headers=dpo).get_json()
    assert body["status"] == "anonymised" and body["last_name"] is None


def test_match_finds_the_sender_or_proposes_a_contact(app, client, people, api_token):
    contact_id = make_contact(app, people["agent"], HELENE)
    headers = api_token(people["agent"])
    found = client.post(
        "/api/v1/contacts/match",
        json={"email": "Hélène <helene.lefebvre@example.fr>"},
        headers=headers,
    ).get_json()
    assert found["contact"]["id"] == contact_id
    unknown = client.post(
        "/api/v1/contacts/match", json={"email": "x.y@example.org"}, headers=headers
    ).get_json()
    assert unknown["contact"] is None and unknown["proposal"]["email"] == "x.y@example.org"


def test_timeline_lists_the_records_events(app, client, people, api_token):
    contact_id = make_contact(app, people["agent"], HELENE)
    body = client.get(
        f"/api/v1/contacts/{contact_id}/timeline", headers=api_token(people["agent"])
    ).get_json()
    assert [e["title"] for e in body["items"]] == ["Fiche créée"]


def test_openapi_documents_the_contact_routes_and_the_duplicate_answer(client):
    document = client.get("/api/v1/openapi.json").get_json()
    validate(document)
    paths = document["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/contacts"])
    assert {"get", "patch"} <= set(paths["/api/v1/contacts/{contact_id}"])
    create = paths["/api/v1/contacts"]["post"]
    assert "409" in create["responses"] and "doublon" in create["description"].lower()
    assert "duplicate" in create["description"]
