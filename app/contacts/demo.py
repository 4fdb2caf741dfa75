"""Demo contacts: about 5,000 plausible correspondents in Loire-Atlantique.

French names, real communes and postal codes (from the vendored commune list, weighted by
population), valid SIRET and RNA numbers, French phone numbers, some persons acting for
organisations, and a few dozen seeded duplicates (typos, missing accents, a second
address) for the review queue. Deterministic and idempotent; loaded in bulk (a few
seconds), not through the per-record service.
"""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import func, insert, select, text

from app.auth.models import Group, User
from app.contacts import communes, identifiers
from app.contacts.duplicates import CANDIDATE, candidates_for, profile_of, street_key
from app.contacts.models import (
    Contact,
    ContactAddress,
    ContactEmail,
    ContactLink,
    ContactPhone,
)
from app.contacts.normalise import fold
from app.contacts.permissions import DPO_GROUP, REFERENTS_GROUP
from app.contacts.services import (
    queue_duplicate_pair,
    remember_search_words,
    search_name_for,
)
from app.core import audit
from app.core.db import utcnow
from app.core.extensions import db

SIZE = 5000
DUPLICATES = 60
SEED = 44
MARKER_EMAIL = "demo.contacts.0@example.org"  # the first generated contact: already loaded?
GROUP_MEMBERS = {
    REFERENTS_GROUP: (
        "Référents contacts (GRC)",
        ["lucie.robin@departement.test", "claire.martin@departement.test"],
    ),
    DPO_GROUP: ("Délégué à la protection des données", ["francois.dupuis@departement.test"]),
}


def _words(text: str) -> list[str]:
    return text.split()


SURNAMES = _words(
    "Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel "
    "Lefèvre Leroy Roux David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine "
    "Rousseau Vincent Muller Faure André Mercier Blanc Guérin Boyer Garnier Chevalier "
    "François Legrand Gauthier Garcia Perrin Robin Clément Morin Nicolas Henry Roussel "
    "Mathieu Masson Marchand Duval Denis Dumont Lemaire Noël Meyer Dufour Meunier Brun "
    "Blanchard Giraud Joly Rivière Lucas Brunet Gaillard Barbier Arnaud Gérard Roche Renard "
    "Roy Leroux Colin Caron Picard Roger Aubert Lemoine Renaud Dumas Lacroix Olivier "
    "Bourgeois Benoît Leclerc Rolland Guillaume Lecomte Hubert Berger Carpentier Dupuis "
    "Moulin Deschamps Huet Boucher Fleury Royer Jacquet Poirier Aubry Guyot Carré Renault "
    "Ménard Maillard Baron Bertin Bailly Hervé Le_Gall Collet Léger Bouvier Prévost Perrot "
    "Cousin Germain Breton Besson Langlois Le_Goff Pelletier Lévêque Leblanc Barré Lebrun "
    "Hamon Boulanger Monnier Gillet Poulain Tessier Chauvin Bouchet Maréchal Cordier Pichon "
    "Lejeune Gilbert Delaunay Pasquier Le_Floch Guého Jouan Tanguy Le_Bihan Kerbrat Le_Corre "
    "Guillou Hamelin Orain Gicquel Le_Pape Josse Pineau Bréhier Hallier Lefebvre Cadoret "
    "Le_Moal Rialland Bouyer Chéneau Jamin Guérif Praud Ollivier Landais Bouvet Nicolleau"
)
SURNAMES = [s.replace("_", " ") for s in SURNAMES]
FEMALE = _words(
    "Marie Nathalie Isabelle Sylvie Catherine Françoise Martine Christine Monique "
    "Valérie Sandrine Stéphanie Céline Julie Camille Léa Manon Chloé Emma Inès Sarah "
    "Hélène Anne Claire Élodie Aurélie Laetitia Sophie Louise Jeanne Zoé Maëlle "
    "Gwenaëlle Soizic Annick Odile Brigitte"
)
MALE = _words(
    "Jean Pierre Michel Philippe Alain Nicolas Christophe Patrick Daniel Bernard "
    "Frédéric Laurent Éric Stéphane Sébastien Julien David Thomas Lucas Hugo Léo Louis "
    "Gabriel Arthur Mathis Yann Erwan Gaël Loïc Ronan Hervé Joël Gérard Denis "
    "François Antoine"
)
STREETS = (
    "rue de la Paix",
    "rue Jean Jaurès",
    "avenue de la République",
    "rue du Moulin",
    "chemin des Vignes",
    "impasse des Lilas",
    "allée des Chênes",
    "boulevard Victor Hugo",
    "place de l'Église",
    "rue de la Gare",
    "route de Nantes",
    "rue Pasteur",
    "rue des Écoles",
    "rue Saint-Pierre",
    "rue du Stade",
    "rue de la Loire",
    "rue des Acacias",
    "avenue des Pins",
    "rue Aristide Briand",
    "rue du Général de Gaulle",
    "rue de Bretagne",
    "chemin de la Métairie",
    "rue des Peupliers",
    "quai de la Fosse",
    "rue Crébillon",
    "rue du Calvaire",
    "rue Kervégan",
    "boulevard Guist'hau",
)
LOCALITIES = (
    "La Métairie",
    "Le Bourg",
    "La Croix Blanche",
    "Les Landes",
    "La Noë",
    "Le Pâtis",
    "La Gagnerie",
    "Le Moulin Neuf",
)
COMPANY_WORDS = (
    "Boulangerie",
    "Garage",
    "Menuiserie",
    "Transports",
    "Pharmacie",
    "Cabinet",
    "Plomberie",
    "Maçonnerie",
    "Électricité",
    "Ferme",
    "Librairie",
    "Imprimerie",
    "Paysagiste",
    "Boucherie",
    "Salon de coiffure",
)
ASSOCIATION_WORDS = (
    "Amicale laïque",
    "Comité des fêtes",
    "Club de football",
    "Association des parents d'élèves",
    "Chorale",
    "Club de voile",
    "Secours populaire, comité",
    "Association sportive",
    "Les Amis du patrimoine",
)
DOMAINS = (
    "orange.fr",
    "free.fr",
    "gmail.com",
    "laposte.net",
    "sfr.fr",
    "wanadoo.fr",
    "yahoo.fr",
    "hotmail.fr",
)


def load() -> dict[str, int]:
    """Create the demo contacts once (idempotent) and the GRC/DPO groups of the demo."""
    summary = {"contacts": 0, "contact_groups": _load_groups()}
    if (
        db.session.execute(
            select(ContactEmail.id).where(ContactEmail.email == MARKER_EMAIL)
        ).first()
        is not None
    ):
        db.session.commit()
        return summary
    summary["contacts"] = generate(SIZE, duplicates=DUPLICATES, seed=SEED)
    audit.record("contact.demo_load", object_type="contact", data={"contacts": summary["contacts"]})
    db.session.commit()
    return summary


def _load_groups() -> int:
    created = 0
    for name, (label, members) in GROUP_MEMBERS.items():
        group = db.session.execute(select(Group).where(Group.name == name)).scalar()
        if group is None:
            group = Group(name=name, label=label)
            db.session.add(group)
            created += 1
        for email in members:
            member = db.session.execute(select(User).where(User.email == email)).scalar()
            if member is not None and member not in group.members:
                group.members.append(member)
    db.session.flush()
    return created


def _mobile(rng: random.Random) -> str:
    """A mobile number that exists in the French numbering plan."""
    while True:
        number = f"+336{rng.randint(0, 99_999_999):08d}"
        try:
            identifiers.check_phone(number)
        except ValueError:
            continue
        return number


def luhn_complete(digits: str) -> str:
    """Append the Luhn check digit to ``digits``."""
    for check in "0123456789":
        candidate = digits + check
        total = 0
        for index, char in enumerate(reversed(candidate)):
            value = int(char) * (2 if index % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


def random_siret(rng: random.Random) -> str:
    """A SIRET whose SIREN and whole number pass the Luhn check."""
    siren = luhn_complete(str(rng.randint(30_000_000, 99_999_999)))
    nic = f"{rng.randint(1, 999):04d}"
    for last in range(10):
        candidate = siren + nic + str(last)
        if luhn_complete(candidate[:-1]) == candidate:
            return candidate
    raise AssertionError("unreachable")


def generate(
    count: int,
    *,
    duplicates: int = 0,
    seed: int = SEED,
    email_prefix: str = "demo.contacts",
    write=None,
) -> int:
    """Insert ``count`` plausible contacts (and ``duplicates`` near-copies) in bulk.

    Used by the demo and by ``bench/contacts.py``; returns how many contacts were added.
    ``write(table, rows)`` stores rows (default: SQLAlchemy bulk INSERT; the bench passes
    PostgreSQL's COPY).
    """
    write = write or _insert_rows
    rng = random.Random(seed)  # noqa: S311 (reproducible demo data, not secrets)
    pool = [c for c in communes.communes_of_department("44") if c.kind == "c"]
    weights = [max(c.population, 200) ** 0.8 for c in pool]
    now = utcnow()
    contacts, children = [], []
    for index in range(count):
        commune = rng.choices(pool, weights)[0]
        postal_code = rng.choice(commune.postal_codes)
        created = now - timedelta(days=rng.randint(30, 6 * 365))
        updated = max(created, now - timedelta(days=rng.randint(0, 700)))
        roll = rng.random()
        row = {
            "created_at": created,
            "updated_at": updated,
            "status": "active",
            "version": 1,
            "consent_email": rng.random() < 0.4,
            "consent_sms": rng.random() < 0.2,
            "consent_surveys": rng.random() < 0.3,
            "postal_code": postal_code,
            "city": commune.name,
            "commune_code": commune.code,
            "search_city": fold(commune.name),
        }
        emails, phones = [], []
        if roll < 0.86:
            female = rng.random() < 0.52
            first = rng.choice(FEMALE if female else MALE)
            last = rng.choice(SURNAMES)
            row.update(
                kind="person",
                civility="Mme" if female else "M.",
                first_name=first,
                last_name=last,
                preferred_channel=rng.choice(["post", "email", "email", None]),
            )
            if rng.random() < 0.6 or index == 0:
                emails.append(
                    f"{fold(first).replace(' ', '')}.{fold(last).replace(' ', '')}"
                    f"{rng.randint(1, 99) if rng.random() < 0.5 else ''}"
                    f"@{rng.choice(DOMAINS)}"
                )
            if rng.random() < 0.5:
                phones.append(_mobile(rng))
        else:
            kind_roll = rng.random()
            if kind_roll < 0.6:
                name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(SURNAMES)}"
                row.update(organisation_type="company", siret=random_siret(rng))
                row["siren"] = row["siret"][:9]
            elif kind_roll < 0.9:
                name = f"{rng.choice(ASSOCIATION_WORDS)} de {commune.name}"
                row.update(
                    organisation_type="association", rna=f"W44{rng.randint(1_000_000, 9_999_999)}"
                )
            else:
                name = f"Mairie de {commune.name}"
                row.update(organisation_type="public_body", public_body_code=commune.code)
            row.update(kind="organisation", organisation_name=name, preferred_channel="post")
            emails.append(f"contact@{fold(name).replace(' ', '-')[:30].strip('-')}.fr")
            phones.append(f"+332{rng.choice(['40', '51', '28'])}{rng.randint(100_000, 999_999)}")
        if index == 0:
            emails = [MARKER_EMAIL] if email_prefix == "demo.contacts" else emails
        if rng.random() < 0.25:
            street = rng.choice(LOCALITIES)
        else:
            street = f"{rng.randint(1, 120)} {rng.choice(STREETS)}"
        line2 = f"Appartement {rng.randint(1, 40)}" if rng.random() < 0.1 else None
        row["address_lines"] = "\n".join(x for x in (line2, street) if x)
        row["email"] = emails[0] if emails else None
        row["phone"] = phones[0] if phones else None
        row["search_name"] = search_name_for(
            row["kind"],
            row.get("last_name"),
            row.get("first_name"),
            None,
            row.get("organisation_name"),
        )
        contacts.append(row)
        children.append(
            (
                emails,
                phones,
                {
                    "line2": line2,
                    "line4": street,
                    "postal_code": postal_code,
                    "city": commune.name,
                    "commune_code": commune.code,
                },
            )
        )
    seeded = []
    persons = [i for i, r in enumerate(contacts) if r["kind"] == "person"]
    for _ in range(duplicates):
        source = rng.choice(persons)
        copy, (emails, phones, address) = dict(contacts[source]), children[source]
        variant = rng.randrange(3)
        if variant == 0:  # a typo in the surname, same address
            last = copy["last_name"]
            at = rng.randrange(1, max(len(last) - 1, 2))
            copy["last_name"] = last[:at] + last[at + 1 :] if len(last) > 4 else last + "e"
            emails = []
        elif variant == 1:  # capitals without accents, same e-mail, no address line
            copy["last_name"] = fold(copy["last_name"]).upper()
            copy["first_name"] = fold(copy["first_name"]).title()
            phones = []
        else:  # same person, same phone, moved house
            emails = []
        copy["email"] = emails[0] if emails else None
        copy["phone"] = phones[0] if phones else None
        copy["search_name"] = search_name_for(
            "person", copy["last_name"], copy["first_name"], None, None
        )
        contacts.append(copy)
        children.append((emails, phones, dict(address)))
        seeded.append(len(contacts) - 1)
    ids = _insert_contacts(contacts, write)
    email_rows, phone_rows, address_rows = [], [], []
    for contact_id, (emails, phones, address) in zip(ids, children, strict=True):
        email_rows += [
            {"contact_id": contact_id, "email": e, "is_primary": i == 0}
            for i, e in enumerate(emails)
        ]
        phone_rows += [
            {"contact_id": contact_id, "number": p, "is_primary": i == 0}
            for i, p in enumerate(phones)
        ]
        address_rows.append(
            {
                **address,
                "contact_id": contact_id,
                "is_primary": True,
                "country": "FR",
                "line3": None,
                "line5": None,
                "label": None,
                "search_street": street_key(address["postal_code"], address["line4"]),
            }
        )
    for model, rows in (
        (ContactEmail, email_rows),
        (ContactPhone, phone_rows),
        (ContactAddress, address_rows),
    ):
        write(model.__table__, rows)
    remember_search_words({row["search_name"] for row in contacts})
    _link_people(rng, ids, contacts)
    db.session.flush()
    for index in seeded:
        contact = db.session.get(Contact, ids[index])
        for other, score, reasons in candidates_for(profile_of(contact), threshold=CANDIDATE):
            queue_duplicate_pair(contact, other, score, reasons)
    db.session.flush()
    return len(ids)


def _insert_rows(table, rows: list[dict]) -> None:
    for start in range(0, len(rows), 5000):
        db.session.execute(insert(table), rows[start : start + 5000])


def _insert_contacts(rows: list[dict], write) -> list[int]:
    """Insert with ids assigned here (one loader at a time: demo, bench)."""
    columns = {c.name for c in Contact.__table__.columns} - {"id"}
    defaults = dict.fromkeys(columns)
    first = (db.session.scalar(select(func.max(Contact.id))) or 0) + 1
    ids = list(range(first, first + len(rows)))
    write(
        Contact.__table__,
        [{**defaults, **row, "id": contact_id} for contact_id, row in zip(ids, rows, strict=True)],
    )
    if db.engine.dialect.name == "postgresql":
        db.session.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('contact', 'id'), "
                "(SELECT max(id) FROM contact))"
            )
        )
    return ids


def _link_people(rng: random.Random, ids: list[int], rows: list[dict]) -> None:
    people = [i for i, r in zip(ids, rows, strict=True) if r["kind"] == "person"]
    organisations = [i for i, r in zip(ids, rows, strict=True) if r["kind"] == "organisation"]
    if not people or not organisations:
        return
    pairs = {
        (rng.choice(people), organisation)
        for organisation in rng.sample(organisations, k=min(150, len(organisations)))
    }
    db.session.execute(
        insert(ContactLink),
        [
            {
                "person_id": person,
                "organisation_id": organisation,
                "created_at": utcnow(),
                "role": rng.choice(
                    ["gérant", "présidente", "trésorier", "secrétaire", "directrice"]
                ),
            }
            for person, organisation in pairs
        ],
    )
