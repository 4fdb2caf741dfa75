"""Sign-in, sign-out, throttling, CSRF and sessions."""

from __future__ import annotations

from app.auth import services
from app.auth.models import User
from app.core.extensions import db
from tests.conftest import TEST_PASSWORD, csrf_token, login

GENERIC_FAILURE = "Identifiant ou mot de passe incorrect."


def test_login_page_is_french(client):
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="fr">' in page
    assert "Connexion à Missive" in page
    assert 'href="#contenu"' in page  # skip link


def test_login_with_right_password_shows_the_agents_name(client, make_user):
    email = make_user(name="Claire Martin")
    response = login(client, email)
    assert response.status_code == 302
    home = client.get("/").get_data(as_text=True)
    assert "Bonjour Claire Martin" in home


def test_login_is_case_insensitive_on_email(client, make_user):
    email = make_user()
    assert login(client, email.upper()).status_code == 302


def test_wrong_password_and_unknown_account_get_the_same_answer(client, make_user):
    email = make_user()
    wrong = login(client, email, "not-the-password")
    unknown = login(client, "nobody@example.test", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert GENERIC_FAILURE in wrong.get_data(as_text=True)
    assert GENERIC_FAILURE in unknown.get_data(as_text=True)


def test_account_is_throttled_after_five_failures_even_with_right_password(client, make_user):
    email = make_user()
    for _ in range(5):
        assert login(client, email, "bad-password").status_code == 401
    response = login(client, email, TEST_PASSWORD)
    assert response.status_code == 429
    assert "Trop de tentatives" in response.get_data(as_text=True)


def test_unknown_account_is_throttled_like_a_real_one(client):
    for _ in range(5):
        login(client, "ghost@example.test", "bad-password")
    assert login(client, "ghost@example.test", "bad-password").status_code == 429


def test_address_is_throttled_after_many_failures_over_several_accounts(client, make_user):
    email = make_user()
    for i in range(20):
        login(client, f"guess{i}@example.test", "bad-password")
    assert login(client, email, TEST_PASSWORD).status_code == 429


def test_successful_login_clears_the_account_failures(client, make_user):
    email = make_user()
    for _ in range(4):
        login(client, email, "bad-password")
    assert login(client, email).status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    for _ in range(4):
        login(client, email, "bad-password")
    assert login(client, email).status_code == 302


def test_login_without_csrf_token_is_refused(client, make_user):
    email = make_user()
    response = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302  # still signed out


def test_logout_requires_csrf_token(client, make_user):
    login(client, make_user())
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf_token(client, "/")}).status_code == 302
    assert client.get("/").status_code == 302


def test_disabled_account_cannot_sign_in(app, client, make_user):
    email = make_user()
    with app.app_context():
        user = services.find_user_by_email(email)
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
    assert login(client, email).status_code == 401


def test_password_change_ends_existing_sessions(app, client, make_user):
    email = make_user()
    login(client, email)
    assert client.get("/").status_code == 200
    with app.app_context():
        user = services.find_user_by_email(email)
        services.update_user(
            user,
            actor=None,
            name=user.name,
            email=email,
            role="agent",
            title=None,
            org_unit=None,
            groups=[],
            active=True,
            password="another-long-password",
        )
    assert client.get("/").status_code == 302


def test_next_parameter_cannot_redirect_elsewhere(client, make_user):
    email = make_user()
    token = csrf_token(client, "/login")
    response = client.post(
        "/login?next=https://evil.example/",
        data={"email": email, "password": TEST_PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_next_parameter_keeps_local_destination(client, make_user):
    email = make_user(role="admin")
    token = csrf_token(client, "/login")
    response = client.post(
        "/login?next=/admin/users",
        data={"email": email, "password": TEST_PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/admin/users"


def test_session_cookie_is_hardened(client, make_user):
    response = login(client, make_user())
    cookie = response.headers.get("Set-Cookie", "")
    assert "missive_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_pages_carry_security_headers(client):
    response = client.get("/login")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'self'" in response.headers["Content-Security-Policy"]


def test_passwords_are_stored_as_argon2_hashes(app, make_user):
    email = make_user()
    with app.app_context():
        user = db.session.query(User).filter_by(email=email).one()
        assert user.password_hash.startswith("$argon2id$")
        assert TEST_PASSWORD not in user.password_hash


def test_login_and_failures_are_audited(app, client, make_user):
    from app.core.audit import AuditEvent

    email = make_user()
    login(client, email, "bad-password")
    login(client, email)
    with app.app_context():
        actions = [e.action for e in db.session.query(AuditEvent).order_by(AuditEvent.id)]
    assert actions[-2:] == ["auth.failure", "auth.login"]


def test_english_is_available_on_request(client):
    page = client.get("/login?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Sign in to Missive" in page
    assert "Sign in to Missive" in client.get("/login").get_data(as_text=True)  # remembered
