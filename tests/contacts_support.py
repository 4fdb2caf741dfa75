"""Shared fixtures of the contact-base tests: users with the GRC roles, contacts made by
the services (import the fixtures into a test module to use them)."""

from __future__ import annotations

import pytest

from app.auth.models import Group
from app.auth.services import create_user, find_user_by_email
from app.contacts import services
from app.contacts.permissions import DPO_GROUP, REFERENTS_GROUP
from app.core.extensions import db
from tests.conftest import TEST_PASSWORD

HELENE = {
    "kind": "person",
    "civility": "Mme",
    "first_name": "Hélène",
    "last_name": "Lefèbvre",
    "email": "helene.lefebvre@example.fr",
    "phone": "06 12 34 56 78",
    "address_lines": "Appartement 12\n3 rue de la Paix",
    "postal_code": "44000",
    "city": "Nantes",
}
BAKERY = {
    "kind": "organisation",
    "organisation_name": "Boulangerie Le Fournil SARL",
    "siret": "732 829 320 00074",
    "email": "contact@fournil.example",
    "postal_code": "44800",
    "city": "Saint-Herblain",
    "address_lines": "12 boulevard Charles Gautier",
}


@pytest.fixture
def people(app):
    """Create the groups and one user per role; returns their e-mails by role name."""
    with app.app_context():
        for name, label in ((REFERENTS_GROUP, "Référents contacts"), (DPO_GROUP, "DPO")):
            db.session.add(Group(name=name, label=label))
        db.session.commit()
        accounts = {
            "agent": ("agent@example.test", "agent", []),
            "referent": ("referent@example.test", "agent", [REFERENTS_GROUP]),
            "dpo": ("dpo@example.test", "agent", [DPO_GROUP]),
            "admin": ("admin@example.test", "admin", []),
        }
        for email, role, groups in accounts.values():
            create_user(
                email=email,
                name=email.split("@")[0].title(),
                password=TEST_PASSWORD,
                role=role,
                groups=groups,
            )
    return {key: value[0] for key, value in accounts.items()}


def user(email: str):
    """The account with that e-mail (inside an application context)."""
    return find_user_by_email(email)


def make_contact(app, email: str, data: dict, **kwargs) -> int:
    """Create a contact through the service; returns its id."""
    with app.app_context():
        contact, _found = services.create_contact(dict(data), user(email), **kwargs)
        return contact.id
