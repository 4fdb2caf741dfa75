"""The registry and the contact base together: senders matched (or created) at intake on
every channel, the picker on the registration forms, merges that keep every case, the
contact's timeline filtered per viewer, and retention applied to closed cases."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime

import pytest
import time_machine
from sqlalchemy import func, select

from app.auth.models import Group
from app.contacts import services as contacts
from app.contacts.models import Contact, ContactStatus, DuplicateCandidate
from app.contacts.permissions import DPO_GROUP, REFERENTS_GROUP
from app.contacts.timeline import timeline_for
from app.core.audit import AuditEvent
from app.core.extensions import db
from app.correspondence import services
from app.correspondence.models import (
    CaseDocument,
    CaseStatus,
    Channel,
    Confidentiality,
    Correspondence,
    Direction,
    LinkKind,
)
from app.mail import services as mail
from app.mail.models import Mailbox, MailMessage
from tests import mail_fixtures as fx
from tests.conftest import csrf_token, login
from tests.contacts_support import BAKERY, HELENE, make_contact, user
from tests.dovecot import PASSWORD, Dovecot
from tests.intake_helpers import pdf_bytes, setup_registry

CLERK = "clerk@example.test"  # mail office
RECRUITER = "recruiter@example.test"  # recruitment service
ROADS = "roads@example.test"  # roads service
ADMIN = "admin@example.test"
REFERENT = "referent@example.test"  # GRC referent (merges)


@pytest.fixture(scope="module")
def dovecot():
    server = Dovecot(["accueil"]).start()
    yield server
    server.stop()


@pytest.fixture
def office(app, make_user):
    setup_registry(app, deploy=False)
    with app.app_context():
        db.session.add(Group(name=REFERENTS_GROUP, label="Référents contacts"))
        db.session.commit()
    make_user(groups=[REFERENTS_GROUP], email=REFERENT, name="Régis Référent")
    make_user(groups=["courrier-central"], email=CLERK, name="Claire Courrier")
    make_user(groups=["rh-recrutement"], email=RECRUITER, name="Rémi Recrutement")
    make_user(groups=["routes"], email=ROADS, name="Rose Routes")
    make_user(role="admin", email=ADMIN, name="Ada Admin")


def contact_count() -> int:
    return db.session.execute(select(func.count()).select_from(Contact)).scalar()


def register(actor_email: str | None = None, **fields) -> Correspondence:
    """Register an item through the registry's service (no circuit: the tests drive it)."""
    fields.setdefault("channel", Channel.API)
    fields.setdefault("subject", "Demande")
    actor = user(actor_email) if actor_email else None
    return services.register_case(services.Intake(**fields), actor, distribute=False)


# --- sender matching, channel by channel ---------------------------------------------------


def test_email_from_a_known_address_is_filed_on_that_contact(app, office, dovecot):
    helene = make_contact(app, CLERK, HELENE)
    dovecot.empty("accueil")
    dovecot.append(
        "accueil",
        [fx.simple(sender="Helene LEFEBVRE <HELENE.LEFEBVRE@example.fr>", message_id="<a@x>")],
    )
    with app.app_context():
        box = mail.add_mailbox(
            name="Accueil",
            host="127.0.0.1",
            port=dovecot.port,
            username="accueil",
            password=PASSWORD,
            use_tls=False,
            group_name="routes",
        )
        report = mail.fetch_mailbox(db.session.get(Mailbox, box.id))
        assert report.registered == 1
        case = db.session.execute(select(Correspondence)).scalar_one()
        assert case.sender_id == helene
        assert contact_count() == 1


def test_email_from_an_unknown_sender_creates_the_proposed_contact(app, office, dovecot):
    dovecot.empty("accueil")
    dovecot.append(
        "accueil",
        [
            fx.simple(sender="DUPONT Jean-Marc <jm.dupont@example.org>", message_id="<b@x>"),
            fx.simple(sender="jm.dupont@example.org", message_id="<c@x>", subject="Relance"),
            fx.simple(sender="inconnu@example.org", message_id="<d@x>", subject="Anonyme"),
        ],
    )
    with app.app_context():
        box = mail.add_mailbox(
            name="Accueil",
            host="127.0.0.1",
            port=dovecot.port,
            username="accueil",
            password=PASSWORD,
            use_tls=False,
        )
        assert mail.fetch_mailbox(db.session.get(Mailbox, box.id)).registered == 3
        first, again, anonymous = db.session.execute(
            select(Correspondence).order_by(Correspondence.id)
        ).scalars()
        created = first.sender
        assert (created.last_name, created.first_name, created.email) == (
            "DUPONT",
            "Jean-Marc",
            "jm.dupont@example.org",
        )
        assert created.status == ContactStatus.ACTIVE and created.search_name
        assert again.sender_id == created.id  # the bare address finds the new contact
        assert anonymous.sender is None  # no name: nobody is invented
        assert anonymous.data["mail"]["from"] == "inconnu@example.org"
        event = db.session.execute(
            select(AuditEvent).where(
                AuditEvent.action == "contact.create", AuditEvent.object_id == str(created.id)
            )
        ).scalar_one()
        assert event.actor_id is None and event.data["source"] == "intake"


def submit(client, key: str, data: dict):
    token = csrf_token(client, f"/demarches/{key}")
    return client.post(
        f"/demarches/{key}",
        data={"csrf_token": token, **data},
        content_type="multipart/form-data",
    )


def test_web_form_data_finds_the_contact_despite_typos(app, client, office):
    helene = make_contact(app, CLERK, HELENE)
    response = submit(
        client,
        "demande_information",
        {
            "civility": "Mme",
            "first_name": "Helene",
            "last_name": "Lefebvre",
            "email": "h.lefebvre@autre.example",
            "phone": "0612345678",
            "subject": "Question",
            "message": "Bonjour, une question.",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)[-3000:]
    with app.app_context():
        case = db.session.execute(select(Correspondence)).scalar_one()
        assert case.sender_id == helene
        assert contact_count() == 1


def test_web_form_of_a_homonym_creates_a_contact_queued_as_possible_duplicate(app, client, office):
    helene = make_contact(app, CLERK, HELENE)
    response = submit(
        client,
        "demande_information",
        {
            "first_name": "Hélène",
            "last_name": "Lefèbvre",
            "email": "une.autre@example.org",
            "postal_code": "44000",
            "city": "Nantes",
            "subject": "Question",
            "message": "Bonjour, une question.",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        case = db.session.execute(select(Correspondence)).scalar_one()
        assert case.sender_id not in (None, helene)
        assert case.sender.email == "une.autre@example.org"
        pair = db.session.execute(select(DuplicateCandidate)).scalar_one()
        assert {pair.first_id, pair.second_id} == {helene, case.sender_id}


def test_a_field_the_contact_base_refuses_is_left_out_and_the_request_is_kept(app, client, office):
    response = submit(
        client,
        "demande_information",
        {
            "first_name": "Paul",
            "last_name": "Martineau",
            "email": "paul.martineau@example.org",
            "postal_code": "44600",
            "city": "Clisson",  # not the commune of 44600
            "subject": "Question",
            "message": "Bonjour, une question.",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        case = db.session.execute(select(Correspondence)).scalar_one()
        assert case.sender.last_name == "Martineau" and case.sender.postal_code is None
        assert case.data["form"]["city"] == "Clisson"  # the answers are kept as given


def test_api_metadata_finds_an_organisation_by_siret_and_a_person_by_name(
    app, client, office, api_token
):
    bakery = make_contact(app, CLERK, BAKERY)
    headers = api_token(CLERK)

    def post(sender: dict) -> dict:
        response = client.post(
            "/api/v1/correspondences",
            data={"metadata": json.dumps({"subject": "Facture", "sender": sender})},
            headers=headers,
            content_type="multipart/form-data",
        )
        assert response.status_code == 201, response.get_json()
        return client.get(
            f"/api/v1/correspondences/{response.get_json()['id']}", headers=headers
        ).get_json()

    by_siret = post({"kind": "organisation", "siret": "73282932000074"})
    assert by_siret["sender"]["id"] == bakery
    created = post({"name": "Mme Odile BERNARD", "email": "odile.bernard@example.org"})
    again = post(
        {"first_name": "Odile", "last_name": "Bernard", "email": "odile.bernard@example.org"}
    )
    assert created["sender"]["id"] == again["sender"]["id"] != bakery
    with app.app_context():
        odile = db.session.get(Contact, created["sender"]["id"])
        assert (odile.civility, odile.first_name, odile.last_name) == ("Mme", "Odile", "BERNARD")
        assert odile.created_by.email == CLERK


def test_paper_form_offers_the_contact_picker_and_files_the_chosen_contact(app, client, office):
    helene = make_contact(app, CLERK, HELENE)
    login(client, CLERK)
    page = client.get("/correspondences/paper/new").get_data(as_text=True)
    assert "data-contact-picker" in page and "/contacts/autocomplete?target=sender_id" in page
    assert "js/contact-picker.js" in page
    suggestions = client.get("/contacts/autocomplete?target=sender_id&sender_id_search=lefeb")
    assert f'data-id="{helene}"' in suggestions.get_data(as_text=True)
    token = csrf_token(client, "/correspondences/paper/new")
    response = client.post(
        "/correspondences/paper/new",
        data={
            "csrf_token": token,
            "mode": "single",
            "received_at": "2026-03-02",
            "sender_id": str(helene),
            "files": (io.BytesIO(pdf_bytes("Lettre")), "lettre.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        case = db.session.execute(select(Correspondence)).scalar_one()
        assert case.sender_id == helene


def test_paper_form_records_a_new_sender_typed_by_the_clerk(app, client, office):
    login(client, CLERK)
    token = csrf_token(client, "/correspondences/paper/new")
    response = client.post(
        "/correspondences/paper/new",
        data={
            "csrf_token": token,
            "mode": "single",
            "received_at": "2026-03-02",
            "sender_last_name": "Guérin",
            "sender_first_name": "Yves",
            "sender_address": "4 rue des Lilas",
            "sender_postal_code": "44000",
            "sender_city": "Nantes",
            "files": (io.BytesIO(pdf_bytes("Lettre")), "lettre.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        case = db.session.execute(select(Correspondence)).scalar_one()
        assert (case.sender.last_name, case.sender.city, case.sender.created_by.email) == (
            "Guérin",
            "Nantes",
            CLERK,
        )


def test_paper_form_refuses_an_unknown_picked_contact_and_keeps_nothing(app, client, office):
    login(client, CLERK)
    token = csrf_token(client, "/correspondences/paper/new")
    response = client.post(
        "/correspondences/paper/new",
        data={
            "csrf_token": token,
            "mode": "single",
            "received_at": "2026-03-02",
            "sender_id": "999999",
            "files": (io.BytesIO(pdf_bytes("Lettre")), "lettre.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "Contact introuvable" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(select(func.count(Correspondence.id))).scalar() == 0


def test_internal_note_about_a_contact_joins_its_history(app, client, office):
    helene = make_contact(app, ROADS, HELENE)
    login(client, ROADS)
    page = client.get("/correspondences/notes/new").get_data(as_text=True)
    assert "/contacts/autocomplete?target=contact_id" in page
    token = csrf_token(client, "/correspondences/notes/new")
    response = client.post(
        "/correspondences/notes/new",
        data={
            "csrf_token": token,
            "subject": "Appel de Mme Lefèbvre au sujet du chantier",
            "service_group": "routes",
            "contact_id": str(helene),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    with app.app_context():
        case = db.session.execute(select(Correspondence)).scalar_one()
        assert case.sender_id == helene and case.channel == Channel.INTERNAL
        titles = [e.title for e in timeline_for(db.session.get(Contact, helene), user(ROADS))]
        assert f"{case.chrono} — Appel de Mme Lefèbvre au sujet du chantier" in titles


def test_mail_office_names_the_sender_of_an_item_that_came_without_one(app, client, office):
    helene = make_contact(app, CLERK, HELENE)
    with app.app_context():
        case_id = register(CLERK, subject="Sans expéditeur", data={"mail": {"from": "x@y.fr"}}).id
    login(client, CLERK)
    page = client.get(f"/correspondences/{case_id}").get_data(as_text=True)
    assert "/contacts/autocomplete?target=sender_id" in page and "x@y.fr" in page
    token = csrf_token(client, f"/correspondences/{case_id}")
    response = client.post(
        f"/correspondences/{case_id}/sender", data={"csrf_token": token, "sender_id": helene}
    )
    assert response.status_code == 302
    page = client.get(f"/correspondences/{case_id}").get_data(as_text=True)
    assert f'href="/contacts/{helene}"' in page
    with app.app_context():
        assert db.session.get(Correspondence, case_id).sender_id == helene
        event = db.session.execute(
            select(AuditEvent).where(AuditEvent.action == "correspondence.sender")
        ).scalar_one()
        assert event.data == {"from": None, "to": helene}
    other = app.test_client()
    login(other, RECRUITER)
    token = csrf_token(other, "/correspondences")
    refused = other.post(
        f"/correspondences/{case_id}/sender", data={"csrf_token": token, "sender_id": helene}
    )
    assert refused.status_code == 403


# --- merge -----------------------------------------------------------------------------------


def test_merging_two_contacts_moves_every_case_and_undo_moves_them_back(app, office):
    survivor = make_contact(app, CLERK, HELENE)
    absorbed = make_contact(app, CLERK, {**HELENE, "email": "h.l@example.fr"}, allow_duplicate=True)
    with app.app_context():
        mine = register(CLERK, sender=db.session.get(Contact, survivor), subject="Premier")
        theirs = [
            register(CLERK, sender=db.session.get(Contact, absorbed), subject=f"Autre {i}").id
            for i in range(2)
        ]
        merge = contacts.merge_contacts(
            db.session.get(Contact, survivor),
            db.session.get(Contact, absorbed),
            user(REFERENT),
        )
        senders = {c.id: c.sender_id for c in db.session.execute(select(Correspondence)).scalars()}
        assert senders == {mine.id: survivor, theirs[0]: survivor, theirs[1]: survivor}
        assert merge.snapshot["moved"]["correspondence.sender_id"] == [[i] for i in theirs]
        titles = [e.title for e in timeline_for(db.session.get(Contact, survivor), user(CLERK))]
        assert sum(t.endswith(("Premier", "Autre 0", "Autre 1")) for t in titles) == 3
        contacts.undo_merge(merge, user(REFERENT))
        back = {c.id: c.sender_id for c in db.session.execute(select(Correspondence)).scalars()}
        assert back == {mine.id: survivor, theirs[0]: absorbed, theirs[1]: absorbed}


# --- timeline --------------------------------------------------------------------------------


@pytest.fixture
def helene_cases(app, office):
    """Hélène wrote twice: a roads question (answered, with a reply letter) and a
    confidential job application handled by the recruitment service."""
    helene = make_contact(app, CLERK, HELENE)
    with app.app_context():
        sender = db.session.get(Contact, helene)
        roads = register(
            CLERK,
            sender=sender,
            channel=Channel.PAPER,
            subject="Nid-de-poule rue de la Paix",
            service_group="routes",
            files=[services.IncomingFile("lettre.pdf", "application/pdf", pdf_bytes(), "scan")],
        )
        application = register(
            CLERK,
            sender=sender,
            channel=Channel.WEB,
            subject="Candidature au poste de juriste",
            service_group="rh-recrutement",
            confidentiality=Confidentiality.CONFIDENTIAL,
            files=[services.IncomingFile("cv.pdf", "application/pdf", pdf_bytes(), "original")],
        )
        reply = register(
            ROADS,
            channel=Channel.INTERNAL,
            direction=Direction.OUTGOING,
            subject="Réponse : travaux programmés",
            service_group="routes",
        )
        services.link_cases(reply, roads, LinkKind.REPLY_TO, user(ROADS))
        services.close_case(db.session.get(Correspondence, roads.id), user(ROADS), "reply")
        db.session.commit()
        return {
            "contact": helene,
            "roads": roads.chrono,
            "application": application.chrono,
            "reply": reply.chrono,
        }


def test_timeline_shows_each_viewer_the_cases_documents_and_answers_they_may_see(app, helene_cases):
    with app.app_context():
        contact = db.session.get(Contact, helene_cases["contact"])
        by_roads = [(e.kind, e.title) for e in timeline_for(contact, user(ROADS))]
        by_recruiter = [(e.kind, e.title) for e in timeline_for(contact, user(RECRUITER))]
    roads_case = ("case", f"{helene_cases['roads']} — Nid-de-poule rue de la Paix")
    application = ("case", f"{helene_cases['application']} — Candidature au poste de juriste")
    assert roads_case in by_roads and application not in by_roads
    assert ("document", "Numérisation : lettre.pdf") in by_roads
    assert ("answer", f"Réponse {helene_cases['reply']} — Réponse : travaux programmés") in by_roads
    assert ("answer", f"Réponse envoyée — {helene_cases['roads']}") in by_roads
    assert not any("cv.pdf" in title for _kind, title in by_roads)
    assert application in by_recruiter and ("document", "Document reçu : cv.pdf") in by_recruiter
    assert roads_case not in by_recruiter


def test_contact_page_hides_the_confidential_case_from_the_mail_office(app, client, helene_cases):
    login(client, CLERK)
    page = client.get(f"/contacts/{helene_cases['contact']}").get_data(as_text=True)
    assert helene_cases["roads"] in page and "Courrier papier" in page
    assert helene_cases["application"] not in page and "juriste" not in page
    recruiter = app.test_client()
    login(recruiter, RECRUITER)
    page = recruiter.get(f"/contacts/{helene_cases['contact']}").get_data(as_text=True)
    assert helene_cases["application"] in page and "juriste" in page


def test_gdpr_export_lists_every_case_of_the_person_confidential_ones_included(
    app, make_user, helene_cases
):
    with app.app_context():
        db.session.add(Group(name=DPO_GROUP, label="DPO"))
        db.session.commit()
    make_user(groups=[DPO_GROUP], email="dpo@example.test")
    with app.app_context():
        contact = db.session.get(Contact, helene_cases["contact"])
        export = contacts.export_contact_data(contact, user("dpo@example.test"))
    titles = {e["title"] for e in export["exchanges"] if e["kind"] == "case"}
    assert titles == {
        f"{helene_cases['roads']} — Nid-de-poule rue de la Paix",
        f"{helene_cases['application']} — Candidature au poste de juriste",
    }


# --- retention ---------------------------------------------------------------------------------


def old_complaint(sender_data: dict, closed_in: int) -> tuple[int, int]:
    """A complaint registered, answered and closed in ``closed_in``: (case id, sender id)."""
    with time_machine.travel(datetime(closed_in, 3, 2, 10, tzinfo=UTC), tick=False):
        case = register(
            CLERK,
            subject=f"Réclamation de {sender_data['first_name']} {sender_data['last_name']}",
            type_code="reclamation",
            sender=services.sender_from_details(sender_data, user(CLERK)),
            service_group="routes",
            data={"form": {"telephone": "0612345678"}},
            files=[services.IncomingFile("plainte.pdf", "application/pdf", pdf_bytes(), "scan")],
        )
        services.close_case(case, user(ROADS), "reply")
        db.session.commit()
        return case.id, case.sender_id


def test_retention_anonymises_expired_cases_keeps_statistics_then_forgets_the_person(app, office):
    from app.stats.services import Period, report

    with app.app_context():
        old_id, old_sender = old_complaint({"last_name": "Durand", "first_name": "Luc"}, 2015)
        recent_id, recent_sender = old_complaint({"last_name": "Morel", "first_name": "Ana"}, 2022)
        period = Period(date(2015, 1, 1), date(2025, 12, 31))
        before = report(user(ADMIN), period, "type").total.as_dict()
        contacts.set_retention_rule("reclamation", 60, user(ADMIN))
        assert contacts.apply_retention() == {"items": 1, "contacts": 1}

        old = db.session.get(Correspondence, old_id)
        assert old.subject == services.ANONYMISED_SUBJECT and old.purged_at is not None
        assert old.sender_id is None and old.data == {} and old.attachments == []
        assert (old.chrono, old.status, old.case_type.code) == (
            "2015-A-000001",
            CaseStatus.CLOSED,
            "reclamation",
        )
        assert services.search_cases(user(ADMIN), q="Durand")[0] == []
        assert before["volume"] == 2
        assert report(user(ADMIN), period, "type").total.as_dict() == before
        assert db.session.get(Contact, old_sender).status == ContactStatus.ANONYMISED
        assert db.session.get(Correspondence, recent_id).sender_id == recent_sender
        assert db.session.get(Contact, recent_sender).status == ContactStatus.ACTIVE
        assert contacts.apply_retention() == {"items": 0, "contacts": 0}  # done once


def test_retention_delete_removes_the_case_and_its_emails_content(app, office, dovecot):
    with app.app_context():
        with time_machine.travel(datetime(2015, 3, 2, 10, tzinfo=UTC), tick=False):
            dovecot.empty("accueil")
            dovecot.append("accueil", [fx.simple(sender="Luc Durand <luc@example.org>")])
            box = mail.add_mailbox(
                name="Accueil",
                host="127.0.0.1",
                port=dovecot.port,
                username="accueil",
                password=PASSWORD,
                use_tls=False,
                type_code="reclamation",
            )
            mail.fetch_mailbox(db.session.get(Mailbox, box.id))
            case = db.session.execute(select(Correspondence)).scalar_one()
            services.close_case(case, None, "no_reply")
            db.session.commit()
            case_id = case.id
        contacts.set_retention_rule("reclamation", 60, user(ADMIN), action="delete")
        assert contacts.apply_retention()["items"] == 1
        db.session.expire_all()
        assert db.session.get(Correspondence, case_id) is None
        assert db.session.execute(select(func.count(CaseDocument.id))).scalar() == 0
        message = db.session.execute(select(MailMessage)).scalar_one()
        assert (message.correspondence_id, message.from_address, message.text_body) == (
            None,
            None,
            None,
        )
        assert services.search_cases(user(ADMIN), q="Demande")[0] == []


def test_open_cases_are_never_purged(app, office):
    with app.app_context():
        case = register(CLERK, subject="Toujours en cours", type_code="reclamation")
        with pytest.raises(Exception, match="n'est pas clos"):
            services.purge_case(case, "anonymise")
