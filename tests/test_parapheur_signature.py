"""A folder goes visa → signature and comes out as a PAdES PDF that poppler trusts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.auth.services import find_user_by_email
from app.core.errors import Conflict
from app.core.extensions import db
from app.documents.services import content, get_document
from app.engine import services as engine
from app.parapheur import services
from app.parapheur.models import FolderStatus, SignatureRecord
from app.parapheur.services import Upload
from tests.parapheur_support import PKCS12_PASSWORD, make_pdf, pdfsig, stamp_texts


@pytest.fixture
def people(signing_app, make_user, signing_infrastructure):
    """A drafter, a visa holder and a signer who has a certificate."""
    drafter = make_user(email="redactrice@example.test", name="Rose Rédactrice")
    viser = make_user(email="viseur@example.test", name="Victor Viseur")
    signer = make_user(
        email="signataire@example.test",
        name="Sophie Signataire",
        title="Directrice générale des services",
    )
    identity = signing_infrastructure.identity("Sophie Signataire")
    with signing_app.app_context():
        services.import_pkcs12(identity.pkcs12(), PKCS12_PASSWORD, email=signer)
    return {"drafter": drafter, "viser": viser, "signer": signer}


def _user(email):
    return find_user_by_email(email)


def _open_task(folder, form_key):
    tasks = [t for t in services.open_tasks(folder) if t.form_key == form_key]
    assert len(tasks) == 1, [t.form_key for t in services.open_tasks(folder)]
    return tasks[0]


def _start(people, pdf=None, **options):
    return services.create_folder(
        title="Réponse à Mme Dupont",
        type="courrier_sortant",
        actor=_user(people["drafter"]),
        documents=[Upload("reponse.pdf", pdf or make_pdf(placeholder=True))],
        circuit=[
            {"step": "visa", "assignee": people["viser"]},
            {"step": "signature", "assignee": people["signer"]},
        ],
        **options,
    )


def test_visa_then_signature_gives_a_pdf_that_pdfsig_finds_valid_trusted_and_whole(
    signing_app, people, signing_infrastructure
):
    with signing_app.app_context():
        folder = _start(people)
        original = folder.current_documents("main")[0].original
        engine.complete_task(
            _open_task(folder, "visa").id,
            {"decision": "approve", "comment": "Vu, très bien."},
            _user(people["viser"]),
        )
        engine.complete_task(
            _open_task(folder, "signature").id, {"decision": "sign"}, _user(people["signer"])
        )
        engine.run_due_jobs()
        db.session.refresh(folder)

        assert folder.status == FolderStatus.COMPLETED
        entry = folder.current_documents("main")[0]
        signed = entry.current
        assert signed.id != original.id and signed.parent_id == original.id
        assert signed.kind == "signed"
        assert content(original) == make_pdf(placeholder=True)  # the original is kept
        record = db.session.execute(select(SignatureRecord)).scalar_one()
        assert (record.input_sha256, record.output_sha256) == (original.sha256, signed.sha256)
        assert record.level == "B-B"
        data = content(signed)

    [signature] = pdfsig(data, signing_infrastructure.nssdb, signing_infrastructure.workdir)
    assert signature.valid, signature.lines
    assert signature.trusted, signature.lines
    assert signature.whole_document, signature.lines
    assert signature.value("Signer Certificate Common Name") == "Sophie Signataire"
    assert signature.value("Signature Type") == "ETSI.CAdES.detached"


def test_changing_one_byte_of_the_signed_pdf_is_detected(
    signing_app, people, signing_infrastructure
):
    with signing_app.app_context():
        folder = _start(people)
        engine.complete_task(
            _open_task(folder, "visa").id, {"decision": "approve"}, _user(people["viser"])
        )
        engine.complete_task(
            _open_task(folder, "signature").id, {"decision": "sign"}, _user(people["signer"])
        )
        data = bytearray(
            content(services.get_folder(folder.id).current_documents("main")[0].current)
        )
    position = data.index(b"Ligne 3 du courrier")
    data[position] = ord("X")

    [signature] = pdfsig(bytes(data), signing_infrastructure.nssdb, signing_infrastructure.workdir)
    assert not signature.valid
    assert "Signature Validation: Digest Mismatch." in signature.lines


def test_the_stamp_goes_where_the_document_prints_the_placeholder(signing_app, people):
    with signing_app.app_context():
        folder = _start(people)
        entry = folder.current_documents("main")[0]
        [spot] = entry.layout["placeholders"]
        assert spot["page"] == 0
        x1, y1, x2, y2 = spot["box"]
        assert 325 < x1 < 335 and 150 < y2 < 165 and x2 - x1 > 150 and y2 - y1 > 50


def test_signing_without_a_certificate_keeps_the_task_open(signing_app, people, make_user):
    other = make_user(email="sans-certificat@example.test")
    with signing_app.app_context():
        folder = services.create_folder(
            title="Note",
            type="note_interne",
            actor=_user(people["drafter"]),
            documents=[Upload("note.pdf", make_pdf())],
            circuit=[{"step": "signature", "assignee": other}],
        )
        task = _open_task(folder, "signature")
        with pytest.raises(Conflict, match="Aucun certificat de signature"):
            engine.complete_task(task.id, {"decision": "sign"}, _user(other))
        db.session.refresh(task)
        assert task.status == "open"
        assert (
            services.get_folder(folder.id).current_documents("main")[0].current_id
            == services.get_folder(folder.id).current_documents("main")[0].original_id
        )


def test_a_second_signer_adds_an_incremental_signature_and_both_stay_valid(
    signing_app, people, make_user, signing_infrastructure
):
    second = make_user(
        email="president@example.test",
        name="Paul Président",
        title="Président du Conseil départemental",
    )
    with signing_app.app_context():
        services.import_pkcs12(
            signing_infrastructure.identity("Paul Président").pkcs12(),
            PKCS12_PASSWORD,
            email=second,
        )
        folder = services.create_folder(
            title="Convention",
            type="convention",
            actor=_user(people["drafter"]),
            documents=[Upload("convention.pdf", make_pdf(pages=2))],
            circuit=[
                {"step": "signature", "assignee": people["signer"]},
                {"step": "signature", "assignee": second},
            ],
        )
        engine.complete_task(
            _open_task(folder, "signature").id, {"decision": "sign"}, _user(people["signer"])
        )
        first = content(services.get_folder(folder.id).current_documents("main")[0].current)
        engine.complete_task(
            _open_task(folder, "signature").id, {"decision": "sign"}, _user(second)
        )
        final = content(services.get_folder(folder.id).current_documents("main")[0].current)
        versions = services.document_versions(services.get_folder(folder.id))

    assert final.startswith(first)  # an incremental update: the first revision is untouched
    assert [v["kind"] for v in versions[0]["versions"]] == ["original", "signature", "signature"]
    signatures = pdfsig(final, signing_infrastructure.nssdb, signing_infrastructure.workdir)
    assert [s.value("Signer Certificate Common Name") for s in signatures] == [
        "Sophie Signataire",
        "Paul Président",
    ]
    assert all(s.valid and s.trusted for s in signatures), [s.lines for s in signatures]
    assert not signatures[0].whole_document and signatures[1].whole_document


def test_validation_report_reads_every_signature(signing_app, people):
    with signing_app.app_context():
        folder = _start(people)
        engine.complete_task(
            _open_task(folder, "visa").id, {"decision": "approve"}, _user(people["viser"])
        )
        engine.complete_task(
            _open_task(folder, "signature").id, {"decision": "sign"}, _user(people["signer"])
        )
        signed = services.get_folder(folder.id).current_documents("main")[0].current
        report = services.validation_report(signed.id, _user(people["drafter"]))
        original_report = services.validation_report(
            services.get_folder(folder.id).current_documents("main")[0].original_id,
            _user(people["drafter"]),
        )

    [signature] = report["signatures"]
    assert signature["intact"] and signature["valid"] and signature["trusted"]
    assert signature["coverage"] == "ENTIRE_FILE" and signature["ok"]
    assert signature["signer"] == "Sophie Signataire"
    assert signature["level"] == "B-B" and signature["timestamp"] is None
    assert original_report["signatures"] == []


def test_the_stored_signed_document_is_readable_by_the_drafter_only_among_outsiders(
    signing_app, people, make_user
):
    outsider = make_user(email="curieux@example.test")
    with signing_app.app_context():
        folder = _start(people)
        original_id = folder.current_documents("main")[0].original_id
        assert get_document(original_id, _user(people["drafter"])).id == original_id
        assert get_document(original_id, _user(people["viser"])).id == original_id
        from app.core.errors import PermissionDenied

        with pytest.raises(PermissionDenied):
            get_document(original_id, _user(outsider))


def test_without_a_placeholder_the_stamp_goes_to_the_bottom_right_of_the_last_page(
    signing_app, people
):
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    with signing_app.app_context():
        folder = services.create_folder(
            title="Rapport",
            type="note_interne",
            actor=_user(people["drafter"]),
            documents=[Upload("rapport.pdf", make_pdf(pages=3))],
            circuit=[{"step": "signature", "assignee": people["signer"]}],
        )
        assert folder.current_documents("main")[0].layout["placeholders"] == []
        engine.complete_task(
            _open_task(folder, "signature").id, {"decision": "sign"}, _user(people["signer"])
        )
        data = content(services.get_folder(folder.id).current_documents("main")[0].current)

    reader = PdfFileReader(io.BytesIO(data), strict=False)
    [field_ref] = reader.root["/AcroForm"]["/Fields"]
    widget = field_ref.get_object()
    last_page = reader.root["/Pages"]["/Kids"][-1].get_object()
    assert widget["/P"].get_object() == last_page
    x1, y1, x2, _y2 = (float(v) for v in widget["/Rect"])
    assert x2 > 500 and y1 < 100 and x2 - x1 > 150
    assert "Sophie Signataire" in stamp_texts(data)["Signature1"]
