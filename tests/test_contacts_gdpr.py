"""GDPR: export of a person's data, anonymisation that keeps statistics, retention; and the
timeline's extension point that filters what each viewer may see."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.contacts import services
from app.contacts.models import Contact, ContactEmail, ContactSearchWord, ContactStatus
from app.contacts.retention import (
    RetentionSource,
    register_retention_source,
    retention_sources,
    unregister_retention_source,
)
from app.contacts.search import search_contacts
from app.contacts.timeline import (
    TimelineEntry,
    register_timeline_source,
    timeline_for,
    unregister_timeline_source,
)
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import Conflict, PermissionDenied
from app.core.extensions import db
from app.core.worker import periodic_jobs, run_once
from tests import contacts_support
from tests.conftest import login
from tests.contacts_support import BAKERY, HELENE, make_contact, user

people = contacts_support.people


def test_export_holds_the_persons_data_and_is_audited(app, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        data = services.export_contact_data(contact, user(people["dpo"]))
        assert data["contact"]["first_name"] == "Hélène"
        assert data["emails"][0]["email"] == "helene.lefebvre@example.fr"
        assert data["addresses"][0]["line4"] == "3 rue de la Paix"
        assert [e["title"] for e in data["exchanges"]] == ["Fiche créée"]
        assert (
            db.session.execute(select(AuditEvent.action).order_by(AuditEvent.id.desc()))
            .scalars()
            .first()
            == "contact.export"
        )


def test_export_as_pdf_is_a_readable_document(app, client, people, tmp_path):
    contact_id = make_contact(app, people["agent"], HELENE)
    login(client, people["dpo"])
    response = client.get(f"/contacts/{contact_id}/export.pdf")
    assert response.mimetype == "application/pdf"
    pdf = tmp_path / "export.pdf"
    pdf.write_bytes(response.data)
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Relevé des données personnelles" in text
    assert "Lefèbvre" in text and "3 rue de la Paix" in text


def test_agents_may_not_export_nor_anonymise(app, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        with pytest.raises(PermissionDenied):
            services.export_contact_data(contact, user(people["agent"]))
        with pytest.raises(PermissionDenied):
            services.anonymise_contact(contact, user(people["referent"]))


def test_anonymisation_erases_identity_but_keeps_statistics(app, people):
    person = make_contact(app, people["agent"], HELENE)
    make_contact(
        app,
        people["agent"],
        {"kind": "person", "last_name": "Autre", "postal_code": "44000", "city": "Nantes"},
    )
    make_contact(app, people["agent"], BAKERY)
    with app.app_context():
        before = services.statistics_by_commune()
        contact = db.session.get(Contact, person)
        services.anonymise_contact(contact, user(people["dpo"]))
        contact = db.session.get(Contact, person)
        assert contact.status == ContactStatus.ANONYMISED
        assert (
            contact.first_name,
            contact.last_name,
            contact.email,
            contact.phone,
            contact.address_lines,
        ) == (None, None, None, None, None)
        assert contact.display_name == "Contact anonymisé"
        assert (contact.postal_code, contact.commune_code) == ("44000", "44109")
        assert (
            db.session.execute(
                select(ContactEmail).where(ContactEmail.contact_id == person)
            ).first()
            is None
        )
        assert services.statistics_by_commune() == before
        assert search_contacts("lefebvre").items == []
        words = set(db.session.execute(select(ContactSearchWord.word)).scalars())
        assert "lefebvre" not in words and "helene" not in words and "autre" in words
        with pytest.raises(Conflict):
            services.update_contact(contact, {"last_name": "Retour"}, user(people["agent"]))
        audited = [e.data for e in db.session.execute(select(AuditEvent)).scalars()]
        assert "Lefèbvre" not in str(audited) and "helene" not in str(audited).lower()


class FakeCases:
    """A stand-in for the correspondence domain: closed cases with a type and a contact."""

    def __init__(self):
        self.cases: dict[int, dict] = {}

    def add(self, case_id, contact_id, case_type, closed_days_ago):
        self.cases[case_id] = {
            "contact_id": contact_id,
            "type": case_type,
            "closed_at": utcnow() - timedelta(days=closed_days_ago),
        }

    def expired(self, case_type, cutoff):
        return [
            i for i, c in self.cases.items() if c["type"] == case_type and c["closed_at"] < cutoff
        ]

    def purge(self, case_type, ids, action):
        for i in ids:
            del self.cases[i]
        return len(ids)

    def contacts_with_items(self, contact_ids):
        return {c["contact_id"] for c in self.cases.values()} & set(contact_ids)


@pytest.fixture
def fake_cases():
    cases = FakeCases()
    register_retention_source(
        RetentionSource("fake-cases", cases.expired, cases.purge, cases.contacts_with_items)
    )
    yield cases
    unregister_retention_source("fake-cases")


def _age(contact_id: int, days: int) -> None:
    db.session.execute(
        Contact.__table__.update()
        .where(Contact.id == contact_id)
        .values(updated_at=utcnow() - timedelta(days=days))
    )
    db.session.commit()


def test_retention_purges_expired_cases_then_anonymises_forgotten_persons(app, people, fake_cases):
    old = make_contact(app, people["agent"], HELENE)
    busy = make_contact(app, people["agent"], {"kind": "person", "last_name": "Occupé"})
    recent = make_contact(app, people["agent"], {"kind": "person", "last_name": "Récent"})
    company = make_contact(app, people["agent"], BAKERY)
    fake_cases.add(1, old, "aide-sociale", closed_days_ago=20 * 365)
    fake_cases.add(2, busy, "aide-sociale", closed_days_ago=30)
    fake_cases.add(3, old, "voirie", closed_days_ago=20 * 365)
    with app.app_context():
        for contact_id in (old, busy, company):
            _age(contact_id, 5 * 365)
        services.set_retention_rule("aide-sociale", 120, user(people["admin"]))
        summary = run_once()["contacts_apply_retention"]
        assert summary == "ok {'items': 1, 'contacts': 0}"  # case 3 has no rule: kept
        services.set_retention_rule("voirie", 12, user(people["admin"]), action="delete")
        assert services.apply_retention() == {"items": 1, "contacts": 1}
        statuses = {i: db.session.get(Contact, i).status for i in (old, busy, recent, company)}
        assert statuses == {old: "anonymised", busy: "active", recent: "active", company: "active"}
    assert set(fake_cases.cases) == {2}


@pytest.fixture
def no_retention_source():
    """No domain plugged into the retention job (the registry's source set aside)."""
    saved = retention_sources()
    for source in saved:
        unregister_retention_source(source.name)
    yield
    for source in saved:
        register_retention_source(source)


def test_without_any_source_retention_anonymises_nobody(app, people, no_retention_source):
    old = make_contact(app, people["agent"], HELENE)
    with app.app_context():
        _age(old, 10 * 365)
        assert services.apply_retention() == {"items": 0, "contacts": 0}
        assert db.session.get(Contact, old).status == ContactStatus.ACTIVE


def test_only_admins_set_retention_rules(app, people):
    with app.app_context():
        with pytest.raises(PermissionDenied):
            services.set_retention_rule("aide-sociale", 12, user(people["dpo"]))
        with pytest.raises(Exception, match="Règle"):
            services.set_retention_rule("Aide Sociale!", 0, user(people["admin"]))


def test_worker_knows_the_contact_jobs():
    assert {"contacts_find_duplicates", "contacts_apply_retention"} <= {
        j.name for j in periodic_jobs()
    }


@pytest.fixture
def confidential_cases():
    """A timeline source like the correspondence domain's: one public case, one confidential
    case visible only to the members of the « rh-recrutement » group."""

    def source(contact, viewer):
        entries = [
            TimelineEntry(
                at=utcnow() - timedelta(days=2),
                kind="case",
                title="Demande de subvention",
                channel="courrier",
                service="Sports",
            )
        ]
        if "rh-recrutement" in viewer.group_names:
            entries.append(
                TimelineEntry(
                    at=utcnow() - timedelta(days=1),
                    kind="case",
                    title="Candidature confidentielle",
                    channel="e-mail",
                    service="Recrutement",
                )
            )
        return entries

    register_timeline_source(source, name="test-cases")
    yield
    unregister_timeline_source("test-cases")


def test_timeline_shows_each_viewer_only_what_they_may_see(
    app, client, people, make_user, confidential_cases
):
    from app.auth.models import Group

    with app.app_context():
        db.session.add(Group(name="rh-recrutement", label="Recrutement"))
        db.session.commit()
    recruiter = make_user(groups=["rh-recrutement"])
    contact_id = make_contact(app, people["agent"], HELENE)
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        seen_by_agent = [e.title for e in timeline_for(contact, user(people["agent"]))]
        seen_by_recruiter = [e.title for e in timeline_for(contact, user(recruiter))]
    assert seen_by_agent == ["Fiche créée", "Demande de subvention"]
    assert seen_by_recruiter == [
        "Fiche créée",
        "Candidature confidentielle",
        "Demande de subvention",
    ]
    login(client, people["agent"])
    page = client.get(f"/contacts/{contact_id}").get_data(as_text=True)
    assert "Demande de subvention" in page and "Candidature confidentielle" not in page


def test_timeline_of_a_survivor_includes_the_merged_records_history(app, people):
    survivor = make_contact(app, people["agent"], HELENE)
    merged = make_contact(app, people["agent"], HELENE, allow_duplicate=True)
    with app.app_context():
        s, m = db.session.get(Contact, survivor), db.session.get(Contact, merged)
        services.merge_contacts(s, m, user(people["referent"]))
        titles = [e.title for e in timeline_for(s, user(people["agent"]))]
    assert titles.count("Fiche créée") == 2
    assert "Doublon fusionné dans cette fiche" in titles


def test_command_line_finds_duplicates_and_applies_retention(app, people):
    from click.testing import CliRunner

    from app.contacts.cli import contacts_group

    make_contact(app, people["agent"], HELENE)
    make_contact(app, people["agent"], HELENE, allow_duplicate=True)
    runner = CliRunner()
    with app.app_context():
        found = runner.invoke(contacts_group, ["find-duplicates", "--all"])
        applied = runner.invoke(contacts_group, ["apply-retention"])
    assert found.exit_code == 0 and '"open_pairs": 1' in found.output
    assert applied.exit_code == 0 and '"contacts": 0' in applied.output
