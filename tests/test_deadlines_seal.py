"""Acknowledgements are sealed with the server seal when one is configured (a PAdES
signature of the Département that pdfsig validates), and say so when they are not."""

from __future__ import annotations

from sqlalchemy import select

from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.extensions import db
from app.correspondence.models import Channel
from app.deadlines.models import AckStatus
from app.documents.services import content
from app.parapheur import services as parapheur
from tests.conftest import login
from tests.deadlines_helpers import citizen, register, setup_office
from tests.parapheur_support import PKCS12_PASSWORD, pdfsig, stamp_texts


def acknowledged_request():
    """A web request with an e-mail address: acknowledged by its circuit, by e-mail."""
    return register(
        utcnow(),
        channel=Channel.WEB,
        service_group="routes",
        sender=citizen(email="claire.dupont@example.org"),
        distribute=True,
    )


def issue_event(case):
    return db.session.execute(
        select(AuditEvent)
        .where(AuditEvent.action == "acknowledgement.issue", AuditEvent.object_id == str(case.id))
        .order_by(AuditEvent.id.desc())
    ).scalar()


def test_acknowledgement_is_sealed_with_the_server_seal_and_pdfsig_trusts_it(
    signing_app, make_user, signing_infrastructure
):
    setup_office(signing_app, make_user)
    with signing_app.app_context():
        seal = signing_infrastructure.identity("Cachet serveur du Département de test")
        parapheur.import_pkcs12(seal.pkcs12(), PKCS12_PASSWORD, seal=True)
        case = acknowledged_request()
        clock = case.clock
        assert clock.ack_status == AckStatus.TO_SEND
        document = clock.ack_document
        assert document.kind == "sealed"
        assert document.parent.kind == "accuse_reception"  # the unsealed original is kept
        assert [
            link.document_id for link in case.attachments if link.role == "accuse_reception"
        ] == [document.id]
        data = content(document)
        [check] = pdfsig(data, signing_infrastructure.nssdb, signing_infrastructure.workdir)
        assert check.valid and check.trusted and check.whole_document
        assert "Cachet serveur du Département de test" in check.value(
            "Signer Certificate Common Name"
        )
        [stamp] = stamp_texts(data).values()
        assert "Cachet électronique" in stamp
        assert issue_event(case).data["sealed"] is True


def test_without_a_seal_the_acknowledgement_stays_unsealed_and_says_so(
    signing_app, make_user, client
):
    people = setup_office(signing_app, make_user)
    with signing_app.app_context():
        case = acknowledged_request()
        document = case.clock.ack_document
        assert document.kind == "accuse_reception"
        assert document.parent_id is None
        assert "Aucun cachet serveur" in document.flags["unsealed"]
        event = issue_event(case)
        assert event.data["sealed"] is False
        assert "Aucun cachet serveur" in event.data["unsealed"]
        case_id = case.id
    login(client, people["routes"])
    page = client.get(f"/correspondences/{case_id}/delais").get_data(as_text=True)
    assert "non scellé" in page
    assert "Aucun cachet serveur" in page


def test_a_disabled_seal_is_named_as_the_reason(signing_app, make_user, signing_infrastructure):
    setup_office(signing_app, make_user)
    signing_app.config["MISSIVE_ACK_SEAL"] = False
    with signing_app.app_context():
        seal = signing_infrastructure.identity("Cachet serveur du Département de test")
        parapheur.import_pkcs12(seal.pkcs12(), PKCS12_PASSWORD, seal=True)
        document = acknowledged_request().clock.ack_document
        assert document.kind == "accuse_reception"
        assert "MISSIVE_ACK_SEAL" in document.flags["unsealed"]
