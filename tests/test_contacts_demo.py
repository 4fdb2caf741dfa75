"""Demo contacts: thousands of plausible Loire-Atlantique correspondents, loaded once."""

from __future__ import annotations

from sqlalchemy import func, select

from app.auth.services import find_user_by_email
from app.contacts import communes, identifiers, search
from app.contacts.models import Contact, ContactLink, DuplicateCandidate
from app.contacts.permissions import DPO_GROUP, REFERENTS_GROUP
from app.core.extensions import db
from app.demo import load_demo


def test_demo_contacts_are_plausible_valid_and_loaded_once(app):
    with app.app_context():
        first = load_demo(activity=False)
        second = load_demo(activity=False)
        assert 5000 <= first["contacts"] <= 5100 and second["contacts"] == 0
        contacts = list(db.session.execute(select(Contact)).scalars())
        assert len(contacts) == first["contacts"]
        for contact in contacts:
            assert communes.check_commune(contact.postal_code, contact.city).code == (
                contact.commune_code
            )
            assert contact.postal_code.startswith("44")
            if contact.siret:
                identifiers.check_siret(contact.siret)
            if contact.phone:
                identifiers.check_phone(contact.phone)
        kinds = {c.organisation_type for c in contacts}
        assert {None, "company", "association", "public_body"} <= kinds
        assert db.session.scalar(select(func.count()).select_from(ContactLink)) > 100
        assert db.session.scalar(select(func.count()).select_from(DuplicateCandidate)) >= 40
        assert len(search.search_contacts("nantes", limit=50).items) == 50
        assert REFERENTS_GROUP in find_user_by_email("lucie.robin@departement.test").group_names
        assert DPO_GROUP in find_user_by_email("francois.dupuis@departement.test").group_names
