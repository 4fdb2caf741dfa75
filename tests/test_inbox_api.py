"""The inbox API (/api/v1/tasks and friends): lists with filters and cursors, a task with
its form, every action, 403/404/409/422 as problem+json, and the OpenAPI document."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from app.inbox import services
from tests.inbox_support import make_agents, start_case, user

ANSWER = {"decision": "accord", "reponse": "Votre demande est accordée."}


@pytest.fixture
def agents(app, make_user):
    return make_agents(app, make_user)


@pytest.fixture
def as_(api_token):
    cache: dict[str, dict] = {}

    def headers(email: str) -> dict:
        if email not in cache:
            cache[email] = api_token(email)
        return cache[email]

    return headers


def problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    return response.get_json()


def test_list_scopes_filters_and_cursor(app, client, agents, as_):
    with app.app_context():
        created = [start_case(chrono=f"2026-{i:05d}", priority=10 * i) for i in range(5)]
    alice = as_(agents.alice)
    body = client.get("/api/v1/tasks?scope=candidate&limit=2", headers=alice).get_json()
    assert len(body["items"]) == 2 and body["next_cursor"]
    seen = [t["id"] for t in body["items"]]
    while body["next_cursor"]:
        body = client.get(
            f"/api/v1/tasks?scope=candidate&limit=2&cursor={body['next_cursor']}", headers=alice
        ).get_json()
        seen += [t["id"] for t in body["items"]]
    assert sorted(seen) == created
    assert client.get("/api/v1/tasks", headers=alice).get_json()["items"] == []
    found = client.get("/api/v1/tasks?scope=all&q=2026-00003", headers=alice).get_json()
    assert [t["metadata"]["chrono"] for t in found["items"]] == ["2026-00003"]
    urgent = client.get(
        "/api/v1/tasks?scope=candidate&priority_min=30&sort=priority", headers=alice
    ).get_json()
    assert [t["priority"] for t in urgent["items"]] == [40, 30]
    counts = client.get("/api/v1/tasks/counts", headers=alice).get_json()
    assert counts["candidate"] == 5 and counts["mine"] == 0


def test_bad_parameters_are_422_with_the_field(client, agents, as_):
    alice = as_(agents.alice)
    body = problem(client.get("/api/v1/tasks?scope=tout", headers=alice), 422)
    assert body["errors"][0]["field"] == "scope"
    body = problem(client.get("/api/v1/tasks?due_to=demain", headers=alice), 422)
    assert body["errors"][0]["field"] == "due_to"
    body = problem(client.get("/api/v1/tasks?cursor=xyz", headers=alice), 422)
    assert body["errors"][0]["field"] == "cursor"


def test_task_detail_carries_form_schema_draft_and_comments(app, client, agents, as_):
    with app.app_context():
        task_id = start_case()
    alice = as_(agents.alice)
    client.post(f"/api/v1/tasks/{task_id}/claim", headers=alice)
    client.put(f"/api/v1/tasks/{task_id}/draft", json={"data": {"reponse": "Idée"}}, headers=alice)
    client.post(f"/api/v1/tasks/{task_id}/comments", json={"body": "@bob.leroy ?"}, headers=alice)
    body = client.get(f"/api/v1/tasks/{task_id}", headers=alice).get_json()
    assert body["form"]["properties"]["reponse"]["minLength"] == 10
    assert body["draft"] == {"reponse": "Idée"}
    assert body["data"]["chrono"] == "2026-00001"
    assert body["comments"][0]["mentions"] == [agents.bob]
    assert body["assignee"] == agents.alice


def test_outsiders_get_403_and_unknown_tasks_404(app, client, agents, as_):
    with app.app_context():
        task_id = start_case()
    chloe = as_(agents.chloe)
    problem(client.get(f"/api/v1/tasks/{task_id}", headers=chloe), 403)
    problem(client.post(f"/api/v1/tasks/{task_id}/claim", headers=chloe), 403)
    problem(
        client.post(f"/api/v1/tasks/{task_id}/comments", json={"body": "x"}, headers=chloe), 403
    )
    problem(client.get("/api/v1/tasks/424242", headers=chloe), 404)
    assert client.get(f"/api/v1/tasks/{task_id}", headers=as_(agents.admin)).status_code == 200


def test_claim_conflict_complete_validation_and_success(app, client, agents, as_):
    with app.app_context():
        task_id = start_case()
    alice, bob = as_(agents.alice), as_(agents.bob)
    assert client.post(f"/api/v1/tasks/{task_id}/claim", headers=alice).status_code == 200
    problem(client.post(f"/api/v1/tasks/{task_id}/claim", headers=bob), 409)
    body = problem(
        client.post(
            f"/api/v1/tasks/{task_id}/complete",
            json={"data": {"decision": "accord"}},
            headers=alice,
        ),
        422,
    )
    assert body["errors"] == [{"field": "reponse", "message": "Ce champ est obligatoire."}]
    done = client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": ANSWER}, headers=alice)
    assert done.get_json()["status"] == "completed"
    problem(client.post(f"/api/v1/tasks/{task_id}/unclaim", headers=alice), 409)


def test_reassign_delegate_resolve_follow_up_and_priority(app, client, agents, as_):
    with app.app_context():
        task_id = start_case()
    alice, chloe = as_(agents.alice), as_(agents.chloe)
    base = f"/api/v1/tasks/{task_id}"
    client.post(f"{base}/claim", headers=alice)
    problem(client.post(f"{base}/reassign", json={"assignee": agents.bob}, headers=alice), 422)
    body = client.post(f"{base}/delegate", json={"delegate": agents.chloe}, headers=alice)
    assert body.get_json()["delegation_state"] == "pending"
    back = client.post(f"{base}/resolve", json={"comment": "Vu"}, headers=chloe).get_json()
    assert (back["assignee"], back["owner"], back["delegation_state"]) == (
        agents.alice,
        agents.alice,
        "resolved",
    )
    problem(client.post(f"{base}/follow-up", json={"date": "2000-01-01"}, headers=alice), 422)
    later = client.post(f"{base}/follow-up", json={"date": "2099-01-01"}, headers=alice)
    assert later.get_json()["follow_up_at"].startswith("2098-12-31T23:00")
    assert (
        client.post(f"{base}/priority", json={"priority": 80}, headers=alice).get_json()["priority"]
        == 80
    )
    moved = client.post(
        f"{base}/reassign", json={"assignee": agents.bob, "reason": "Congés"}, headers=alice
    )
    assert moved.get_json()["assignee"] == agents.bob


def test_bulk_endpoint_answers_one_result_per_task(app, client, agents, as_):
    with app.app_context():
        free, taken = start_case(chrono="1"), start_case(chrono="2")
        services.claim(taken, user(agents.bob))
    body = client.post(
        "/api/v1/tasks/bulk",
        json={"action": "claim", "task_ids": [free, taken]},
        headers=as_(agents.alice),
    ).get_json()
    assert [(r["id"], r["ok"], r["status"]) for r in body["results"]] == [
        (free, True, 200),
        (taken, False, 409),
    ]
    problem(
        client.post(
            "/api/v1/tasks/bulk",
            json={"action": "claim", "task_ids": []},
            headers=as_(agents.alice),
        ),
        422,
    )


def test_saved_filters_over_the_api(app, client, agents, as_):
    with app.app_context():
        start_case(chrono="2026-00010", priority=90)
        start_case(chrono="2026-00011", priority=10)
    alice, bob, chloe = as_(agents.alice), as_(agents.bob), as_(agents.chloe)
    created = client.post(
        "/api/v1/saved-filters",
        json={
            "name": "Urgent",
            "view": "candidate",
            "visibility": "group",
            "group": "instruction",
            "params": {"priority_min": 70, "due_to": "aujourd'hui+30"},
        },
        headers=alice,
    )
    assert created.status_code == 201
    filter_id = created.get_json()["id"]
    listed = client.get(f"/api/v1/tasks?filter={filter_id}", headers=bob).get_json()
    assert [t["metadata"]["chrono"] for t in listed["items"]] == ["2026-00010"]
    problem(client.get(f"/api/v1/tasks?filter={filter_id}", headers=chloe), 403)
    assert client.get("/api/v1/saved-filters", headers=chloe).get_json()["items"] == []
    problem(client.delete(f"/api/v1/saved-filters/{filter_id}", headers=bob), 403)
    assert client.delete(f"/api/v1/saved-filters/{filter_id}", headers=alice).status_code == 204


def test_substitutions_and_notification_preferences_over_the_api(app, client, agents, as_):
    with app.app_context():
        task_id = start_case()
        services.claim(task_id, user(agents.alice))
        from app.inbox.queries import today

        day = today().isoformat()
    alice, chloe = as_(agents.alice), as_(agents.chloe)
    created = client.post(
        "/api/v1/substitutions",
        json={"substitute": agents.chloe, "starts_on": day, "ends_on": day},
        headers=alice,
    )
    assert created.status_code == 201
    mine = client.get("/api/v1/tasks", headers=chloe).get_json()["items"]
    assert [(t["id"], t["on_behalf_of"]) for t in mine] == [(task_id, agents.alice)]
    problem(
        client.post(
            "/api/v1/substitutions",
            json={
                "absent": agents.bob,
                "substitute": agents.chloe,
                "starts_on": day,
                "ends_on": day,
            },
            headers=alice,
        ),
        403,
    )
    prefs = client.put(
        "/api/v1/notification-preferences",
        json={"email_on_assignment": False, "email_on_mention": True, "daily_digest": False},
        headers=alice,
    ).get_json()
    assert prefs == {"email_on_assignment": False, "email_on_mention": True, "daily_digest": False}
    assert client.get("/api/v1/notifications", headers=alice).get_json()["unread"] == 0


def test_openapi_document_stays_valid_with_the_inbox_routes(client):
    document = client.get("/api/v1/openapi.json").get_json()
    validate(document)
    for path in (
        "/api/v1/tasks",
        "/api/v1/tasks/{task_id}/reassign",
        "/api/v1/tasks/{task_id}/delegate",
        "/api/v1/tasks/bulk",
        "/api/v1/saved-filters",
        "/api/v1/substitutions",
        "/api/v1/notification-preferences",
    ):
        assert path in document["paths"], path
