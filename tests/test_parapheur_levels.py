"""PAdES levels: B-T with a real RFC 3161 authority over HTTP, B-LT with validation
material embedded, and what happens when the authority cannot be reached."""

from __future__ import annotations

import io

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from app.auth.services import find_user_by_email
from app.core.extensions import db
from app.documents.services import content
from app.engine import services as engine
from app.parapheur import services
from app.parapheur.services import Upload
from app.parapheur.signing import SignatureFailure
from tests.parapheur_support import PKCS12_PASSWORD, make_pdf, pdfsig


@pytest.fixture
def signer(signing_app, make_user, signing_infrastructure):
    email = make_user(email="horodatage@example.test", name="Hortense Horodate")
    drafter = make_user(email="redige@example.test")
    with signing_app.app_context():
        services.import_pkcs12(
            signing_infrastructure.identity("Hortense Horodate").pkcs12(),
            PKCS12_PASSWORD,
            email=email,
        )
    return email, drafter


def _sign_one(signer):
    email, drafter = signer
    folder = services.create_folder(
        title="Arrêté",
        type="arrete",
        actor=find_user_by_email(drafter),
        documents=[Upload("arrete.pdf", make_pdf())],
        circuit=[{"step": "signature", "assignee": email}],
    )
    [task] = services.open_tasks(folder)
    engine.complete_task(task.id, {"decision": "sign"}, find_user_by_email(email))
    folder = services.get_folder(folder.id)
    return folder, folder.current_documents("main")[0].current


def test_with_a_timestamp_authority_signatures_are_b_t(signing_app, signer, signing_infrastructure):
    signing_app.config["MISSIVE_TSA_URL"] = signing_infrastructure.tsa_url
    before = signing_infrastructure.authority.requests
    with signing_app.app_context():
        folder, signed = _sign_one(signer)
        [signature] = services.validation_report(signed.id, folder.drafter)["signatures"]
        record_level = services.document_versions(folder)[0]["versions"][-1]["level"]
        data = content(signed)

    assert signing_infrastructure.authority.requests == before + 1
    assert record_level == "B-T" and signature["level"] == "B-T"
    assert signature["timestamp"] is not None and signature["timestamp_valid"]
    [checked] = pdfsig(data, signing_infrastructure.nssdb, signing_infrastructure.workdir)
    assert checked.valid and checked.trusted and checked.whole_document


def test_b_lt_embeds_the_revocation_list_and_the_chain(signing_app, signer, signing_infrastructure):
    signing_app.config.update(
        MISSIVE_TSA_URL=signing_infrastructure.tsa_url, MISSIVE_PADES_LEVEL="B-LT"
    )
    with signing_app.app_context():
        folder, signed = _sign_one(signer)
        data = content(signed)
        [signature] = services.validation_report(signed.id, folder.drafter)["signatures"]

    dss = PdfFileReader(io.BytesIO(data), strict=False).root["/DSS"]
    assert len(dss["/CRLs"]) >= 1 and len(dss["/Certs"]) >= 2
    assert signature["level"] == "B-LT" and signature["ok"]
    assert signature["modifications"] == "LTA_UPDATES"  # the DSS revision only
    [checked] = pdfsig(data, signing_infrastructure.nssdb, signing_infrastructure.workdir)
    assert checked.valid and checked.trusted


def test_b_lta_adds_a_document_timestamp(signing_app, signer, signing_infrastructure):
    signing_app.config.update(
        MISSIVE_TSA_URL=signing_infrastructure.tsa_url, MISSIVE_PADES_LEVEL="B-LTA"
    )
    with signing_app.app_context():
        folder, signed = _sign_one(signer)
        report = services.validation_report(signed.id, folder.drafter)
        data = content(signed)

    assert report["document_timestamps"] == 1
    [signature] = report["signatures"]
    assert signature["level"] == "B-LTA" and signature["ok"]
    [checked] = pdfsig(data, signing_infrastructure.nssdb, signing_infrastructure.workdir)[:1]
    assert checked.valid and checked.trusted


def test_an_unreachable_timestamp_authority_refuses_the_signature_and_keeps_the_task(
    signing_app, signer
):
    signing_app.config["MISSIVE_TSA_URL"] = "http://127.0.0.1:9/tsa"
    email, drafter = signer
    with signing_app.app_context():
        folder = services.create_folder(
            title="Arrêté",
            type="arrete",
            actor=find_user_by_email(drafter),
            documents=[Upload("arrete.pdf", make_pdf())],
            circuit=[{"step": "signature", "assignee": email}],
        )
        [task] = services.open_tasks(folder)
        with pytest.raises(SignatureFailure, match="La signature a échoué"):
            engine.complete_task(task.id, {"decision": "sign"}, find_user_by_email(email))
        db.session.refresh(task)
        assert task.status == "open"
        entry = services.get_folder(folder.id).current_documents("main")[0]
        assert entry.current_id == entry.original_id


def test_b_t_without_an_authority_is_refused(signing_app, signer):
    signing_app.config.update(MISSIVE_PADES_LEVEL="B-T", MISSIVE_TSA_URL=None)
    with signing_app.app_context(), pytest.raises(SignatureFailure, match="MISSIVE_TSA_URL"):
        _sign_one(signer)
