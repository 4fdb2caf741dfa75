"""Admin pages: only admins manage users, groups and organisation units."""

from __future__ import annotations

import pytest

from app.auth import services
from app.auth.models import OrgUnit
from app.core.extensions import db
from tests.conftest import csrf_token, login


@pytest.mark.parametrize("role", ["agent", "analyst"])
def test_non_admins_get_a_french_403_on_admin_pages(client, make_user, role):
    login(client, make_user(role=role))
    for path in (
        "/admin/",
        "/admin/users",
        "/admin/groups",
        "/admin/org-units",
        "/admin/users/new",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert "Accès refusé" in response.get_data(as_text=True)


def test_anonymous_visitor_is_sent_to_login(client):
    response = client.get("/admin/users")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_admin_creates_an_account_through_the_form(app, client, make_user):
    login(client, make_user(role="admin"))
    with app.app_context():
        services.create_group(name="courrier-central", label="Courrier central")
    token = csrf_token(client, "/admin/users/new")
    response = client.post(
        "/admin/users/new",
        data={
            "csrf_token": token,
            "name": "Lucie Robin",
            "email": "lucie.robin@example.test",
            "title": "Cheffe du courrier",
            "role": "agent",
            "org_unit_id": "0",
            "groups": ["courrier-central"],
            "active": "y",
            "password": "a-long-password",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        user = services.find_user_by_email("lucie.robin@example.test")
        assert user.group_names == ["courrier-central"]
        assert user.title == "Cheffe du courrier"


def test_admin_form_shows_field_errors_in_french(client, make_user):
    admin = make_user(role="admin")
    login(client, admin)
    token = csrf_token(client, "/admin/users/new")
    response = client.post(
        "/admin/users/new",
        data={
            "csrf_token": token,
            "name": "Doublon",
            "email": admin,
            "role": "agent",
            "org_unit_id": "0",
            "password": "short",
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Cette adresse est déjà utilisée." in page
    assert "au moins 10 caractères" in page


def test_admin_form_without_csrf_is_refused(client, make_user):
    login(client, make_user(role="admin"))
    response = client.post(
        "/admin/users/new",
        data={"name": "X", "email": "x@example.test", "role": "agent", "org_unit_id": "0"},
    )
    assert response.status_code == 400


def test_admin_builds_the_organisation_tree(app, client, make_user):
    login(client, make_user(role="admin"))
    token = csrf_token(client, "/admin/org-units/new")
    client.post(
        "/admin/org-units/new",
        data={
            "csrf_token": token,
            "code": "dgs",
            "name": "Direction générale des services",
            "kind": "dgs",
            "parent_id": "0",
            "head_id": "0",
        },
    )
    with app.app_context():
        dgs = db.session.query(OrgUnit).filter_by(code="dgs").one()
        dgs_id = dgs.id
    token = csrf_token(client, "/admin/org-units/new")
    client.post(
        "/admin/org-units/new",
        data={
            "csrf_token": token,
            "code": "del-nantes",
            "name": "Délégation de Nantes",
            "kind": "delegation",
            "parent_id": str(dgs_id),
            "head_id": "0",
        },
    )
    page = client.get("/admin/org-units").get_data(as_text=True)
    assert "Délégation de Nantes" in page
    assert "Délégation territoriale" in page
    with app.app_context():
        nantes = db.session.query(OrgUnit).filter_by(code="del-nantes").one()
        assert nantes.parent.code == "dgs"


def test_unit_cannot_be_moved_under_its_own_child(app):
    with app.app_context():
        parent = services.create_org_unit(code="dir", name="Direction", kind="direction")
        child = services.create_org_unit(code="svc", name="Service", kind="service", parent=parent)
        with pytest.raises(services.ValidationFailed) as error:
            services.update_org_unit(parent, name="Direction", parent=child, head=None)
        assert error.value.errors[0]["field"] == "parent"


def test_admin_sets_group_members(app, client, make_user):
    member = make_user()
    login(client, make_user(role="admin"))
    with app.app_context():
        group = services.create_group(name="dgs", label="DGS")
        group_id = group.id
        member_id = services.find_user_by_email(member).id
    token = csrf_token(client, f"/admin/groups/{group_id}")
    response = client.post(
        f"/admin/groups/{group_id}",
        data={
            "csrf_token": token,
            "label": "Direction générale",
            "org_unit_id": "0",
            "member_ids": [str(member_id)],
        },
    )
    assert response.status_code == 302
    with app.app_context():
        assert services.find_user_by_email(member).group_names == ["dgs"]


def test_group_name_must_be_a_slug(app):
    with app.app_context(), pytest.raises(services.ValidationFailed):
        services.create_group(name="Courrier Central!", label="Courrier")


def test_admin_issues_and_revokes_a_token_from_the_user_page(app, client, make_user):
    agent = make_user()
    login(client, make_user(role="admin"))
    with app.app_context():
        agent_id = services.find_user_by_email(agent).id
    token = csrf_token(client, f"/admin/users/{agent_id}")
    response = client.post(
        f"/admin/users/{agent_id}/tokens",
        data={"csrf_token": token, "name": "app RH"},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "Nouveau jeton" in page
    clear = page.split("il ne sera plus affiché) : ")[1].split("<")[0].strip()
    headers = {"Authorization": f"Bearer {clear}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    from app.api.models import ApiToken

    with app.app_context():
        token_id = db.session.query(ApiToken).one().id
    client.post(
        f"/admin/tokens/{token_id}/revoke",
        data={"csrf_token": csrf_token(client, f"/admin/users/{agent_id}")},
    )
    assert client.get("/api/v1/me", headers=headers).status_code == 401
