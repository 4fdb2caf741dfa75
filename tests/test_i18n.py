"""The English interface: a complete, current catalogue, and pages that really speak English.

French is the source language; every message the code or a template passes through
``_()``/``_l()``/``ngettext``/``N_()`` must have an English translation in
``app/translations/en/LC_MESSAGES/messages.po`` (``make extract-messages`` adds new ones).
"""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from app.correspondence.models import Channel
from tests.conftest import csrf_token, login
from tests.intake_helpers import setup_registry

ROOT = Path(__file__).resolve().parent.parent
PO_FILE = ROOT / "app" / "translations" / "en" / "LC_MESSAGES" / "messages.po"
MO_FILE = PO_FILE.with_suffix(".mo")
# The keywords of ``make extract-messages`` (Babel's defaults, N_ included, plus the lazy ones).
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[-#0 +]*\d*(?:\.\d+)?[sdifr%]")


def _catalogue():
    with PO_FILE.open("rb") as handle:
        return read_po(handle)


def _forms(value) -> list[str]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _key(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _placeholders(text: str) -> list[str]:
    return sorted(m.group(0) for m in PLACEHOLDER.finditer(text))


def _source_messages() -> set:
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found = set()
    for _filename, _lineno, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        assert context is None, "no message context is used: the catalogue has none"
        found.add(message)
    return found


def test_every_message_of_the_catalogue_has_a_finished_english_translation():
    catalogue = _catalogue()
    assert not catalogue.fuzzy, "the catalogue header is marked fuzzy"
    problems = []
    for message in catalogue:
        if not message.id:
            continue
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        if not all(_forms(message.string)):
            problems.append(f"untranslated: {message.id!r}")
    assert not problems, "\n".join(problems)
    assert len(catalogue) > 1000


def test_translations_keep_the_placeholders_of_their_french_message():
    problems = []
    for message in _catalogue():
        if not message.id:
            continue
        expected = _placeholders(_forms(message.id)[-1])
        for translation in _forms(message.string):
            if _placeholders(translation) != expected:
                problems.append(f"{message.id!r} -> {translation!r}")
    assert not problems, "\n".join(problems)


def test_plural_messages_have_both_english_forms():
    plurals = [m for m in _catalogue() if m.id and m.pluralizable]
    assert plurals, "the catalogue should hold the ngettext messages"
    for message in plurals:
        assert len(message.string) == 2 and message.string[0] != message.string[1], message.id


def test_every_message_in_the_source_is_in_the_catalogue():
    catalogue = _catalogue()
    known = {message.id for message in catalogue if message.id}
    missing = sorted(map(repr, _source_messages() - known))
    assert not missing, "run `make extract-messages` and translate:\n" + "\n".join(missing)


def test_the_compiled_catalogue_matches_the_po_file():
    assert MO_FILE.exists(), "run `make translations`"
    with MO_FILE.open("rb") as handle:
        compiled = {_key(m.id): _key(m.string) for m in read_mo(handle) if m.id}
    expected = {_key(m.id): _key(m.string) for m in _catalogue() if m.id}
    assert compiled == expected, "messages.mo is stale: run `make translations`"


# --- pages ----------------------------------------------------------------------------------

# Words of the French layout and menus that must not survive on an English page.
FRENCH_NAV = (
    "Mes tâches",
    "Registre",
    "Accusés de réception",
    "Tableau de bord",
    "Boîtes fonctionnelles",
    "Se déconnecter",
    "Aller au contenu",
    "Navigation principale",
    "Circuits",
    ">Parapheur<",
)


def _visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture
def english_admin(app, client, make_user):
    """An administrator of the « routes » service who picked English in the footer."""
    setup_registry(app, deploy=False)
    email = make_user(role="admin", groups=["routes"], name="Alice Martin")
    login(client, email)
    page = client.get("/?lang=en")
    assert page.status_code == 200
    return email


@pytest.fixture
def case_id(app):
    from app.correspondence import services

    with app.app_context():
        case = services.register_case(
            services.Intake(
                channel=Channel.PAPER, subject="Demande de subvention", service_group="routes"
            ),
            None,
            distribute=False,
        )
        return case.id


def _english_page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, path
    html = response.get_data(as_text=True)
    assert '<html lang="en">' in html
    for french in FRENCH_NAV:
        assert french not in html, f"{french!r} left on {path}"
    for english in ("My tasks", "Register", "Contacts", "Sign out", "Signature book"):
        assert english in html, f"{english!r} missing from the menu of {path}"
    return _visible_text(html)


def test_inbox_in_english(client, english_admin):
    text = _english_page(client, "/")
    for english in ("Hello Alice Martin", "To do", "Group baskets", "Search and filter", "Sort by"):
        assert english in text
    assert "À traiter" not in text and "Corbeilles de mes groupes" not in text


def test_contact_list_in_english(client, english_admin):
    text = _english_page(client, "/contacts/")
    for english in ("Search for a contact", "New contact", "Duplicates to review"):
        assert english in text
    assert "Nouveau contact" not in text


def test_case_page_in_english(client, english_admin, case_id):
    text = _english_page(client, f"/correspondences/{case_id}")
    assert "Demande de subvention" in text  # the sender's words stay as they are
    for english in ("Direction", "Incoming", "Channel", "Paper mail", "Status", "History"):
        assert english in text
    for french in ("Courrier papier", "Arrivée", "Historique"):
        assert french not in text


def test_signature_book_list_in_english(client, english_admin):
    text = _english_page(client, "/parapheur/")
    for english in ("Signature book", "Submit a signature book", "No signature book."):
        assert english in text
    assert "Déposer un parapheur" not in text


def test_admin_users_in_english(client, english_admin):
    text = _english_page(client, "/admin/users")
    for english in ("Users", "New user", "Administrator", "active"):
        assert english in text
    assert "Utilisateurs" not in text and "Administrateur" not in text


def test_english_choice_stays_for_the_session_and_french_comes_back_on_request(
    client, english_admin
):
    assert "My tasks" in client.get("/").get_data(as_text=True)
    french = client.get("/?lang=fr").get_data(as_text=True)
    assert '<html lang="fr">' in french and "Mes tâches" in french


def test_sign_in_reminder_follows_the_chosen_language(client):
    response = client.get("/contacts/?lang=en", follow_redirects=True)
    assert "Please sign in to access this page." in response.get_data(as_text=True)


def test_error_page_title_is_translated_but_the_api_problem_stays_french(client, english_admin):
    page = client.get("/no-such-page")
    assert page.status_code == 404
    assert "Page not found" in page.get_data(as_text=True)
    problem = client.get("/api/v1/no-such-thing")
    assert problem.status_code in (401, 404)
    assert problem.get_json()["title"] in ("Introuvable", "Authentification requise")


def test_the_daily_digest_follows_the_agent_s_language(app, make_user):
    from datetime import date

    from app.auth.services import find_user_by_email
    from app.inbox.mails import digest_mail

    french_email, english_email = make_user(name="Jean Dupuis"), make_user(name="Jane Doe")
    with app.app_context():
        french = find_user_by_email(french_email)
        english = find_user_by_email(english_email)
        english.locale = "en"  # the account preference (see the preferences page test)
        counts = {"mine": 3, "candidate": 1, "overdue": 0}
        subject_fr, body_fr = digest_mail(french, counts, 2, [], date(2026, 3, 2))
        subject_en, body_en = digest_mail(english, counts, 2, [], date(2026, 3, 2))
    assert subject_fr == "[Missive] Vos tâches du 02/03/2026"
    assert "- À traiter : 3" in body_fr and "- Notifications non lues : 2" in body_fr
    assert subject_en == "[Missive] Your tasks for 02/03/2026"
    assert body_en.startswith("Hello Jane Doe,")
    assert "- To do : 3" in body_en and "- Group baskets : 1" in body_en
    assert "Unread notifications: 2" in body_en and "Vos" not in body_en


def test_the_account_language_is_chosen_on_the_preferences_page_and_outlives_the_session(
    app, client, make_user
):
    from app.auth.services import find_user_by_email

    email = make_user(name="Jane Doe")
    login(client, email)
    page = client.get("/notifications/preferences")
    assert "Langue des pages et des e-mails" in page.get_data(as_text=True)
    token = csrf_token(client, "/notifications/preferences")
    saved = client.post(
        "/notifications/preferences",
        data={"daily_digest": "on", "locale": "en", "csrf_token": token},
        follow_redirects=True,
    )
    assert saved.status_code == 200
    assert '<html lang="en">' in saved.get_data(as_text=True)
    with app.app_context():
        assert find_user_by_email(email).locale == "en"
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, email)  # a new session: the account's choice, not a footer click
    assert '<html lang="en">' in client.get("/").get_data(as_text=True)
    token = csrf_token(client, "/notifications/preferences")
    refused = client.post("/notifications/preferences", data={"locale": "de", "csrf_token": token})
    assert refused.status_code == 422
    with app.app_context():
        assert find_user_by_email(email).locale == "en"
