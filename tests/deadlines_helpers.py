"""Builders for the deadline tests: an office whose services have contact details and
heads, the letterhead settings, rules per type, and cases registered through intake."""

from __future__ import annotations

from datetime import UTC, datetime, time

from sqlalchemy import select

from app.auth.models import Group, OrgUnit, User
from app.auth.services import find_user_by_email
from app.contacts.models import Contact
from app.core.extensions import db
from app.correspondence import services as intake
from app.correspondence.models import Channel, Correspondence
from app.deadlines import services
from app.deadlines.calendar import PARIS
from tests.intake_helpers import setup_registry

ADMIN = "admin@example.test"


def paris(year: int, month: int, day: int, hour: int = 10) -> datetime:
    """A moment in Paris, as the aware UTC datetime services use."""
    return datetime.combine(datetime(year, month, day).date(), time(hour), PARIS).astimezone(UTC)


def setup_office(app, make_user, *, deploy: bool = True, contact_details: bool = True) -> dict:
    """Groups and units of intake's tests, with contact details, heads and the letterhead."""
    setup_registry(app, deploy=deploy)
    make_user(role="admin", email=ADMIN)
    people = {
        "courrier": make_user(groups=["courrier-central"], email="courrier@example.test"),
        "routes": make_user(groups=["routes"], email="routes@example.test"),
        "chef_routes": make_user(groups=["routes"], email="chef.routes@example.test"),
        "colleges": make_user(groups=["colleges"], email="colleges@example.test"),
    }
    with app.app_context():
        for group in db.session.execute(select(Group)).scalars():
            unit = group.org_unit
            unit.name = f"Service {group.name}"
            if contact_details:
                unit.address_lines = "Hôtel du Département\n3 quai Ceineray"
                unit.postal_code = "44041"
                unit.city = "NANTES CEDEX 1"
                unit.email = f"{group.name}@departement.test"
                unit.phone = "02 40 99 10 00"
        routes = db.session.execute(select(OrgUnit).where(OrgUnit.code == "u-routes")).scalar_one()
        routes.head = find_user_by_email(people["chef_routes"])
        db.session.commit()
        services.save_receipt_settings(
            admin(),
            authority_name="Département de Loire-Atlantique",
            letterhead_lines="Hôtel du Département — 3 quai Ceineray — 44041 Nantes Cedex 1",
            signatory="Le Président du Conseil départemental",
            tribunal_name="tribunal administratif de Nantes",
            tribunal_address="6 allée de l'Île-Gloriette\nCS 24111\n44041 Nantes Cedex",
        )
    return people


def admin() -> User:
    return find_user_by_email(ADMIN)


def rule(type_code: str | None, channel: str | None = None, **values) -> None:
    """Configure a rule through the service (defaults: letters' delays)."""
    defaults = {
        "target_days": 15,
        "ack_days": 14,
        "acknowledge": True,
        "reminder_days": 2,
        "silence_months": 2,
        "implicit_decision": "none",
    }
    services.save_rule(admin(), type_code=type_code, channel=channel, **{**defaults, **values})


def citizen(**fields) -> Contact:
    contact = Contact(
        kind="person",
        civility="Mme",
        first_name="Claire",
        last_name="Dupont",
        address_lines="12 rue des Lilas",
        postal_code="44000",
        city="Nantes",
        **fields,
    )
    db.session.add(contact)
    db.session.flush()
    return contact


def register(
    received_at: datetime,
    *,
    channel: Channel = Channel.PAPER,
    type_code: str | None = "demande_information",
    service_group: str | None = None,
    sender: Contact | None = None,
    subject: str = "Demande",
    distribute: bool = False,
) -> Correspondence:
    """Register an incoming item through intake (no circuit unless asked)."""
    return intake.register_case(
        intake.Intake(
            channel=channel,
            subject=subject,
            received_at=received_at,
            type_code=type_code,
            service_group=service_group,
            sender=sender,
        ),
        None,
        distribute=distribute,
    )
