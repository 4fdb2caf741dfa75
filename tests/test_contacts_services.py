"""The contact base's business actions: record, find, deduplicate, merge and undo."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.contacts import search, services
from app.contacts.models import (
    Contact,
    ContactAddress,
    ContactEmail,
    ContactLink,
    ContactStatus,
    DuplicateCandidate,
    DuplicateStatus,
)
from app.core.audit import events_for, verify_chain
from app.core.errors import Conflict, PermissionDenied, ValidationFailed
from app.core.extensions import db
from tests import contacts_support
from tests.contacts_support import BAKERY, HELENE, make_contact, user

people = contacts_support.people


def _ids(q: str, **kwargs) -> list[int]:
    return [c.id for c in search.search_contacts(q, **kwargs).items]


def test_a_person_is_recorded_with_afnor_address_e164_phone_and_commune(app, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        assert contact.display_name == "Mme Hélène LEFÈBVRE"
        assert contact.phone == "+33612345678"
        assert contact.email == "helene.lefebvre@example.fr"
        address = contact.primary_address
        assert (address.line2, address.line4) == ("Appartement 12", "3 rue de la Paix")
        assert (contact.postal_code, contact.city, contact.commune_code) == (
            "44000",
            "Nantes",
            "44109",
        )
        assert contact.address_lines == "Appartement 12\n3 rue de la Paix"
        assert contact.version == 1


def test_an_organisation_gets_its_siren_and_company_type_from_the_siret(app, people):
    contact_id = make_contact(app, people["agent"], BAKERY)
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        assert (contact.siret, contact.siren) == ("73282932000074", "732829320")
        assert contact.organisation_type == "company"


def test_invalid_fields_are_all_reported_and_nothing_is_stored(app, people):
    with app.app_context():
        with pytest.raises(ValidationFailed) as caught:
            services.create_contact(
                {
                    "kind": "person",
                    "first_name": "Sans",
                    "email": "pas-une-adresse",
                    "phone": "12",
                    "postal_code": "44000",
                    "city": "Rezé",
                },
                user(people["agent"]),
            )
        fields = {e["field"] for e in caught.value.errors}
        assert fields == {"last_name", "email", "phone", "postal_code"}
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 0


def test_an_association_needs_a_well_formed_rna(app, people):
    with app.app_context():
        with pytest.raises(ValidationFailed) as caught:
            services.create_contact(
                {"kind": "organisation", "organisation_name": "Club", "rna": "W12"},
                user(people["agent"]),
            )
        assert caught.value.errors == [
            {"field": "rna", "message": caught.value.errors[0]["message"]}
        ]
        contact, _ = services.create_contact(
            {"kind": "organisation", "organisation_name": "Club de voile", "rna": "w442001234"},
            user(people["agent"]),
        )
        assert (contact.rna, contact.organisation_type) == ("W442001234", "association")


def test_address_lines_longer_than_the_postal_norm_are_refused(app, people):
    with app.app_context(), pytest.raises(ValidationFailed) as caught:
        services.create_contact(
            {**HELENE, "address_lines": "3 rue " + "x" * 40}, user(people["agent"])
        )
    assert caught.value.errors[0]["field"] == "address_lines"


def test_search_ignores_accents_and_case(app, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    with app.app_context():
        for q in ("lefebvre", "LEFÈBVRE", "Lefèbvre Hélène", "helene", "HÉLÈNE"):
            assert _ids(q) == [contact_id], q


def test_search_tolerates_typos(app, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    make_contact(
        app, people["agent"], {"kind": "person", "last_name": "Martin", "first_name": "Paul"}
    )
    with app.app_context():
        for q in ("lefevre", "lefebre", "lefbvre"):
            assert _ids(q) == [contact_id], q


def test_search_by_email_phone_siret_siren_postal_code_and_city(app, people):
    person = make_contact(app, people["agent"], HELENE)
    company = make_contact(app, people["agent"], BAKERY)
    with app.app_context():
        assert _ids("helene.lefebvre@example.fr") == [person]
        assert _ids("HELENE.lefebvre@ex") == [person]
        assert _ids("hélène lefeb") == [person]
        assert _ids("06 12 34 56 78") == [person]
        assert _ids("+33612345678") == [person]
        assert _ids("73282932000074") == [company]
        assert _ids("732 829 320") == [company]
        assert _ids("44000") == [person]
        assert _ids("saint herblain") == [company]
        assert _ids("ST-HERBLAIN") == [] or _ids("ST-HERBLAIN") == [company]
        assert _ids("nantes") == [person]
        assert _ids("lefebvre 44800") == []


def test_exact_and_prefix_matches_come_before_typo_matches(app, people):
    agent = people["agent"]
    dupond = make_contact(
        app, agent, {"kind": "person", "last_name": "Dupond", "first_name": "Marc"}
    )
    dupont = make_contact(
        app, agent, {"kind": "person", "last_name": "Dupont", "first_name": "Anne"}
    )
    with app.app_context():
        assert _ids("dupont")[0] == dupont
        assert dupond in _ids("dupont")


def test_search_pages_with_a_cursor_without_repeating_anyone(app, people):
    agent = people["agent"]
    created = {
        make_contact(
            app, agent, {"kind": "person", "last_name": f"Durand{'e' * i}", "first_name": f"P{i}"}
        )
        for i in range(7)
    }
    with app.app_context():
        seen, cursor = [], None
        while True:
            page = search.search_contacts("durand", limit=3, cursor=cursor)
            seen += [c.id for c in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert sorted(seen) == sorted(created)
    assert len(seen) == len(set(seen))


def test_creating_an_obvious_duplicate_is_refused_with_the_candidates(app, people):
    original = make_contact(app, people["agent"], HELENE)
    with app.app_context():
        with pytest.raises(services.DuplicateFound) as caught:
            services.create_contact(
                {
                    "kind": "person",
                    "first_name": "Helene",
                    "last_name": "LEFEBVRE",
                    "email": "Helene.Lefebvre@example.fr",
                },
                user(people["agent"]),
            )
        assert "Doublon" in caught.value.detail
        assert caught.value.extra["duplicates"][0]["id"] == original
        assert "email" in caught.value.extra["duplicates"][0]["reasons"]
        assert db.session.scalar(select(func.count()).select_from(Contact)) == 1


def test_a_confirmed_duplicate_is_created_and_queued_for_review(app, people):
    original = make_contact(app, people["agent"], HELENE)
    copy = make_contact(app, people["agent"], HELENE, allow_duplicate=True)
    with app.app_context():
        pair = db.session.execute(select(DuplicateCandidate)).scalar_one()
        assert (pair.first_id, pair.second_id) == (original, copy)
        assert pair.score >= 0.85
        assert pair.status == DuplicateStatus.OPEN


def test_same_siret_makes_organisations_obvious_duplicates(app, people):
    make_contact(app, people["agent"], BAKERY)
    with app.app_context(), pytest.raises(services.DuplicateFound):
        services.create_contact(
            {"kind": "organisation", "organisation_name": "Le Fournil", "siret": "73282932000074"},
            user(people["agent"]),
        )


def test_homonyms_in_different_towns_are_not_obvious_duplicates(app, people):
    make_contact(
        app,
        people["agent"],
        {
            "kind": "person",
            "last_name": "Martin",
            "first_name": "Jean",
            "postal_code": "44000",
            "city": "Nantes",
        },
    )
    with app.app_context():
        _contact, found = services.create_contact(
            {
                "kind": "person",
                "last_name": "Martin",
                "first_name": "Jean",
                "postal_code": "44300",
                "city": "Nantes",
                "email": "jm@example.fr",
            },
            user(people["agent"]),
        )
        assert all(score < 0.85 for _c, score, _r in found)


def test_find_duplicates_queues_typo_pairs_sharing_an_address(app, people):
    agent = people["agent"]
    first = make_contact(app, agent, {**HELENE, "email": None, "phone": None})
    second = make_contact(
        app,
        agent,
        {
            "kind": "person",
            "first_name": "Helene",
            "last_name": "Lefebre",
            "address_lines": "3 rue de la paix",
            "postal_code": "44000",
            "city": "NANTES",
        },
    )
    with app.app_context():
        db.session.execute(DuplicateCandidate.__table__.delete())
        db.session.commit()
        assert services.find_duplicates() == 1
        pair = db.session.execute(select(DuplicateCandidate)).scalar_one()
        assert (pair.first_id, pair.second_id) == (first, second)
        assert "address" in pair.reasons


def test_a_dismissed_pair_is_never_proposed_again(app, people):
    make_contact(app, people["agent"], HELENE)
    make_contact(app, people["agent"], HELENE, allow_duplicate=True)
    with app.app_context():
        pair = db.session.execute(select(DuplicateCandidate)).scalar_one()
        services.dismiss_duplicate(pair, user(people["referent"]))
        services.find_duplicates()
        assert services.open_duplicates(user(people["referent"])) == []


def test_update_checks_the_version_it_was_given(app, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        services.update_contact(
            contact, {"first_name": "Hélène-Marie"}, user(people["agent"]), expected_version=1
        )
        assert contact.version == 2
        with pytest.raises(Conflict):
            services.update_contact(
                contact, {"first_name": "Autre"}, user(people["agent"]), expected_version=1
            )
        assert db.session.get(Contact, contact_id).first_name == "Hélène-Marie"


def test_a_concurrent_writer_loses_against_the_stored_version(app, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    with app.app_context():
        stale = db.session.get(Contact, contact_id)
        # Someone else saves in between (a direct write, as another process would).
        db.session.execute(
            Contact.__table__.update().where(Contact.id == contact_id).values(version=2)
        )
        with pytest.raises(Conflict):
            services.update_contact(stale, {"first_name": "Perdu"}, user(people["agent"]))


def test_update_audits_which_fields_changed_but_no_personal_data(app, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        services.update_contact(
            contact, {"phone": "02 40 99 10 00", "postal_code": "44300"}, user(people["agent"])
        )
        event = events_for("contact", contact_id)[0]
        assert event.action == "contact.update"
        assert event.data["fields"] == ["addresses", "phones"]
        assert "0240991000" not in str(event.data) and "44300" not in str(event.data)
        assert contact.phone == "+33240991000"
        assert contact.primary_address.line4 == "3 rue de la Paix"


def _merge_setup(app, people):
    agent = people["agent"]
    survivor = make_contact(app, agent, HELENE)
    merged = make_contact(
        app,
        agent,
        {
            "kind": "person",
            "first_name": "Helene",
            "last_name": "Lefebvre",
            "birth_name": "Morin",
            "email": "h.morin@example.fr",
            "phone": "02 40 11 22 33",
            "address_lines": "8 allée des Tilleuls",
            "postal_code": "44400",
            "city": "Rezé",
        },
    )
    company = make_contact(app, agent, BAKERY)
    with app.app_context():
        services.link_person(
            db.session.get(Contact, merged),
            db.session.get(Contact, company),
            "gérante",
            user(agent),
        )
    return survivor, merged, company


def test_merge_moves_every_exchange_and_records_who_merged(app, people):
    survivor_id, merged_id, company_id = _merge_setup(app, people)
    with app.app_context():
        survivor, merged = (db.session.get(Contact, i) for i in (survivor_id, merged_id))
        merge = services.merge_contacts(survivor, merged, user(people["referent"]))
        assert merged.status == ContactStatus.MERGED and merged.merged_into_id == survivor_id
        assert {e.email for e in survivor.emails} == {
            "helene.lefebvre@example.fr",
            "h.morin@example.fr",
        }
        assert survivor.email == "helene.lefebvre@example.fr"  # the survivor's preference
        assert survivor.birth_name == "Morin"  # empty fields are filled
        assert len(survivor.addresses) == 2
        assert [link.organisation_id for link in services.links_of(survivor)] == [company_id]
        assert merge.merged_by.email == people["referent"]
        assert events_for("contact", survivor_id)[0].action == "contact.merge"
        assert search.search_contacts("morin").items == [survivor]
        assert verify_chain() == []


def test_undo_merge_gives_everything_back(app, people):
    survivor_id, merged_id, company_id = _merge_setup(app, people)
    with app.app_context():
        survivor, merged = (db.session.get(Contact, i) for i in (survivor_id, merged_id))
        merge = services.merge_contacts(
            survivor, merged, user(people["referent"]), choices={"first_name": "merged"}
        )
        assert survivor.first_name == "Helene"
        services.undo_merge(merge, user(people["referent"]))
        survivor, merged = (db.session.get(Contact, i) for i in (survivor_id, merged_id))
        assert merged.status == ContactStatus.ACTIVE and merged.merged_into_id is None
        assert survivor.first_name == "Hélène" and survivor.birth_name is None
        assert {e.email for e in survivor.emails} == {"helene.lefebvre@example.fr"}
        assert merged.email == "h.morin@example.fr" and merged.phone == "+33240112233"
        assert merged.postal_code == "44400"
        assert [link.organisation_id for link in services.links_of(merged)] == [company_id]
        assert services.links_of(survivor) == []
        assert merge.undone_by.email == people["referent"]
        with pytest.raises(Conflict):
            services.undo_merge(merge, user(people["referent"]))


def test_undo_keeps_what_was_changed_on_the_survivor_after_the_merge(app, people):
    survivor_id, merged_id, _company = _merge_setup(app, people)
    with app.app_context():
        survivor, merged = (db.session.get(Contact, i) for i in (survivor_id, merged_id))
        merge = services.merge_contacts(survivor, merged, user(people["referent"]))
        services.update_contact(survivor, {"birth_name": "Morin-Guérin"}, user(people["agent"]))
        services.undo_merge(merge, user(people["referent"]))
        assert db.session.get(Contact, survivor_id).birth_name == "Morin-Guérin"


def test_agents_may_not_merge_nor_undo(app, people):
    survivor_id, merged_id, _company = _merge_setup(app, people)
    with app.app_context():
        survivor, merged = (db.session.get(Contact, i) for i in (survivor_id, merged_id))
        with pytest.raises(PermissionDenied):
            services.merge_contacts(survivor, merged, user(people["agent"]))
        merge = services.merge_contacts(survivor, merged, user(people["admin"]))
        with pytest.raises(PermissionDenied):
            services.undo_merge(merge, user(people["agent"]))


def test_a_merged_record_cannot_be_edited_or_merged_again(app, people):
    survivor_id, merged_id, _company = _merge_setup(app, people)
    with app.app_context():
        survivor, merged = (db.session.get(Contact, i) for i in (survivor_id, merged_id))
        services.merge_contacts(survivor, merged, user(people["referent"]))
        with pytest.raises(Conflict):
            services.update_contact(merged, {"first_name": "X"}, user(people["agent"]))
        with pytest.raises(Conflict):
            services.merge_contacts(survivor, merged, user(people["referent"]))


def test_sender_is_found_by_email_header(app, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    with app.app_context():
        found = services.match_sender(email="Hélène Lefèbvre <HELENE.LEFEBVRE@example.fr>")
        assert found.contact.id == contact_id and found.confidence == 1.0


def test_sender_of_a_merged_record_is_the_survivor(app, people):
    survivor_id, merged_id, _company = _merge_setup(app, people)
    with app.app_context():
        survivor, merged = (db.session.get(Contact, i) for i in (survivor_id, merged_id))
        services.merge_contacts(survivor, merged, user(people["referent"]))
        assert services.match_sender(email="h.morin@example.fr").contact.id == survivor_id


def test_sender_is_found_by_form_data_with_typos(app, people):
    contact_id = make_contact(app, people["agent"], HELENE)
    with app.app_context():
        found = services.match_sender(
            data={
                "last_name": "Lefebre",
                "first_name": "Helene",
                "phone": "0612345678",
                "postal_code": "44000",
            }
        )
        assert found.contact.id == contact_id


def test_unknown_sender_gets_a_prefilled_proposal(app, people):
    make_contact(app, people["agent"], HELENE)
    with app.app_context():
        found = services.match_sender(
            email="DUPONT Jean <Jean.Dupont@free.fr>", data={"postal_code": "44000"}
        )
        assert found.contact is None
        assert found.proposal == {
            "kind": "person",
            "last_name": "DUPONT",
            "first_name": "Jean",
            "email": "jean.dupont@free.fr",
            "postal_code": "44000",
        }


def test_links_join_a_person_to_an_organisation_only(app, people):
    person = make_contact(app, people["agent"], HELENE)
    company = make_contact(app, people["agent"], BAKERY)
    with app.app_context():
        p, c = db.session.get(Contact, person), db.session.get(Contact, company)
        with pytest.raises(ValidationFailed):
            services.link_person(c, p, "x", user(people["agent"]))
        services.link_person(p, c, "gérante", user(people["agent"]))
        services.link_person(p, c, "associée", user(people["agent"]))
        assert [link.role for link in db.session.execute(select(ContactLink)).scalars()] == [
            "associée"
        ]


def test_several_emails_and_addresses_can_be_recorded(app, people):
    contact_id = make_contact(
        app,
        people["agent"],
        {
            "kind": "person",
            "last_name": "Bernard",
            "emails": [
                {"email": "pro@example.fr", "label": "travail"},
                {"email": "perso@example.fr", "is_primary": True},
            ],
            "addresses": [
                {"line4": "1 place Royale", "postal_code": "44000", "city": "Nantes"},
                {
                    "line4": "2 rue du Port",
                    "postal_code": "44600",
                    "city": "Saint-Nazaire",
                    "is_primary": True,
                },
            ],
        },
    )
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        assert contact.email == "perso@example.fr"
        assert contact.city == "Saint-Nazaire"
        assert db.session.scalar(select(func.count()).select_from(ContactEmail)) == 2
        assert db.session.scalar(select(func.count()).select_from(ContactAddress)) == 2


def test_paging_crosses_the_tiers_in_rank_order(app, people):
    agent = people["agent"]
    prefix = make_contact(app, agent, {"kind": "person", "last_name": "Lefevre", "first_name": "A"})
    word = make_contact(
        app, agent, {"kind": "person", "last_name": "Durand", "first_name": "Lefevre"}
    )
    typo = make_contact(app, agent, {"kind": "person", "last_name": "Lefebvre", "first_name": "B"})
    with app.app_context():
        seen, cursor = [], None
        while True:
            page = search.search_contacts("lefevre", limit=1, cursor=cursor)
            seen += [c.id for c in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert seen == [prefix, word, typo]


def test_patching_the_preferred_email_keeps_the_others(app, people):
    contact_id = make_contact(
        app,
        people["agent"],
        {
            "kind": "person",
            "last_name": "Bernard",
            "emails": [
                {"email": "perso@example.fr", "is_primary": True},
                {"email": "pro@example.fr"},
            ],
        },
    )
    with app.app_context():
        contact = db.session.get(Contact, contact_id)
        services.update_contact(contact, {"email": "perso@example.fr"}, user(people["agent"]))
        assert [e.email for e in contact.emails] == ["perso@example.fr", "pro@example.fr"]
        services.update_contact(contact, {"email": "neuf@example.fr"}, user(people["agent"]))
        assert [e.email for e in contact.emails] == ["neuf@example.fr", "pro@example.fr"]
