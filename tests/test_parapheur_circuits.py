"""The shipped circuits: rejection and resubmission, sequential, parallel and group visas,
the circuit chosen by the DMN table, the server seal step."""

from __future__ import annotations

import pytest

from app.auth.services import create_group, create_org_unit, find_user_by_email, update_org_unit
from app.core.errors import ValidationFailed
from app.core.extensions import db
from app.documents.services import content
from app.engine import services as engine
from app.parapheur import services
from app.parapheur.models import FolderStatus
from app.parapheur.services import Upload
from tests.parapheur_support import PKCS12_PASSWORD, make_pdf, pdfsig


def _user(email):
    return find_user_by_email(email)


def _tasks(folder, form_key=None):
    return [t for t in services.open_tasks(folder) if form_key in (None, t.form_key)]


@pytest.fixture
def office(signing_app, make_user, signing_infrastructure):
    """A drafter, three visa holders, a signer with a certificate."""
    emails = {
        "drafter": make_user(email="redaction@example.test", name="Rita Rédaction"),
        "v1": make_user(email="v1@example.test", name="Valérie Un"),
        "v2": make_user(email="v2@example.test", name="Vincent Deux"),
        "v3": make_user(email="v3@example.test", name="Véra Trois"),
        "signer": make_user(email="dgs@example.test", name="Denis Général", title="DGS"),
    }
    with signing_app.app_context():
        services.import_pkcs12(
            signing_infrastructure.identity("Denis Général").pkcs12(),
            PKCS12_PASSWORD,
            email=emails["signer"],
        )
    return emails


def _folder(office, circuit=None, **options):
    return services.create_folder(
        title="Réponse à l'association",
        type=options.pop("type", "courrier_sortant"),
        actor=_user(office["drafter"]),
        documents=[Upload("reponse.pdf", make_pdf())],
        annexes=[Upload("annexe.pdf", make_pdf(text="Annexe"))],
        circuit=circuit,
        **options,
    )


def test_a_visa_refusal_needs_a_reason_and_leaves_the_task_open(signing_app, office):
    with signing_app.app_context():
        folder = _folder(
            office,
            [
                {"step": "visa", "assignee": office["v1"]},
                {"step": "signature", "assignee": office["signer"]},
            ],
        )
        [visa] = _tasks(folder, "visa")
        with pytest.raises(ValidationFailed) as refused:
            engine.complete_task(visa.id, {"decision": "reject"}, _user(office["v1"]))
        assert refused.value.errors[0]["field"] == "comment"
        db.session.refresh(visa)
        assert visa.status == "open"
        assert services.get_folder(folder.id).status == FolderStatus.IN_PROGRESS


def test_a_refused_visa_returns_the_folder_to_its_drafter_and_no_later_step_runs(
    signing_app, office
):
    with signing_app.app_context():
        folder = _folder(
            office,
            [
                {"step": "visa", "assignee": office["v1"]},
                {"step": "signature", "assignee": office["signer"]},
            ],
        )
        [visa] = _tasks(folder, "visa")
        engine.complete_task(
            visa.id, {"decision": "reject", "comment": "Le montant est faux."}, _user(office["v1"])
        )
        folder = services.get_folder(folder.id)

        assert folder.status == FolderStatus.REJECTED
        assert folder.rejection_reason == "Le montant est faux."
        assert folder.rejected_by.email == office["v1"]
        assert [t.form_key for t in _tasks(folder)] == ["parapheur_correction"]
        [correction] = _tasks(folder)
        assert correction.assignee.email == office["drafter"]
        steps = services.folder_steps(folder)
        assert [(s["kind"], s["decision"]) for s in steps if s["status"] == "done"] == [
            ("submit", "submit"),
            ("visa", "reject"),
        ]
        assert steps[1]["comment"] == "Le montant est faux."


def test_resubmitting_needs_a_corrected_version_and_restarts_the_circuit(signing_app, office):
    with signing_app.app_context():
        folder = _folder(
            office,
            [
                {"step": "visa", "assignee": office["v1"]},
                {"step": "signature", "assignee": office["signer"]},
            ],
        )
        engine.complete_task(
            _tasks(folder, "visa")[0].id,
            {"decision": "reject", "comment": "Coquille ligne 2."},
            _user(office["v1"]),
        )
        drafter = _user(office["drafter"])
        [correction] = _tasks(folder)
        with pytest.raises(ValidationFailed, match="version corrigée"):
            engine.complete_task(correction.id, {"decision": "resubmit"}, drafter)

        folder = services.resubmit_folder(
            folder.id,
            drafter,
            [Upload("reponse-v2.pdf", make_pdf(text="Version corrigée"))],
            comment="Coquille corrigée.",
        )
        assert folder.status == FolderStatus.IN_PROGRESS and folder.version == 2
        assert [t.form_key for t in _tasks(folder)] == ["visa"]
        assert folder.rejection_reason == "Coquille ligne 2."  # kept on the folder
        engine.complete_task(
            _tasks(folder, "visa")[0].id, {"decision": "approve"}, _user(office["v1"])
        )
        engine.complete_task(
            _tasks(folder, "signature")[0].id, {"decision": "sign"}, _user(office["signer"])
        )
        engine.run_due_jobs()
        folder = services.get_folder(folder.id)
        versions = services.document_versions(folder)
        decisions = [
            (s["kind"], s["decision"], s["folder_version"]) for s in services.folder_steps(folder)
        ]
        status = folder.status

    assert status == FolderStatus.COMPLETED
    by_version = {(v["folder_version"], v["role"]): v for v in versions}
    assert [v["kind"] for v in by_version[(1, "main")]["versions"]] == ["original"]
    assert [v["kind"] for v in by_version[(2, "main")]["versions"]] == ["original", "signature"]
    assert (
        by_version[(2, "annex")]["versions"][0]["document_id"]
        == by_version[(1, "annex")]["versions"][0]["document_id"]
    )  # the annex carried over
    assert decisions == [
        ("submit", "submit", 1),
        ("visa", "reject", 1),
        ("correction", "resubmit", 2),
        ("visa", "approve", 2),
        ("signature", "sign", 2),
    ]


def test_the_drafter_may_abandon_a_refused_folder(signing_app, office):
    with signing_app.app_context():
        folder = _folder(office, [{"step": "signature", "assignee": office["signer"]}])
        engine.complete_task(
            _tasks(folder)[0].id,
            {"decision": "reject", "comment": "Hors délai."},
            _user(office["signer"]),
        )
        folder = services.abandon_folder(folder.id, _user(office["drafter"]), "Sans objet.")
        assert folder.status == FolderStatus.ABANDONED
        assert _tasks(folder) == []
        assert folder.instance.status == "completed"


def test_sequential_visas_come_one_after_the_other_and_the_first_refusal_stops_them(
    signing_app, office
):
    with signing_app.app_context():
        folder = _folder(
            office,
            process_key="parapheur_sequentiel",
            variables={
                "visas": [office["v1"], office["v2"], office["v3"]],
                "signer": office["signer"],
            },
        )
        [first] = _tasks(folder)
        assert first.assignee.email == office["v1"]
        engine.complete_task(first.id, {"decision": "approve"}, _user(office["v1"]))
        [second] = _tasks(folder)
        assert second.assignee.email == office["v2"]
        engine.complete_task(
            second.id, {"decision": "reject", "comment": "Non conforme."}, _user(office["v2"])
        )
        folder = services.get_folder(folder.id)
        assert folder.status == FolderStatus.REJECTED
        assert [t.form_key for t in _tasks(folder)] == ["parapheur_correction"]
        assert not any(
            t.assignee and t.assignee.email == office["v3"]
            for t in engine.instance_tasks(folder.instance)
        )


def test_parallel_visas_are_all_needed_before_the_signature(signing_app, office):
    with signing_app.app_context():
        folder = _folder(
            office,
            process_key="parapheur_parallele",
            variables={"visas": [office["v1"], office["v2"]], "signer": office["signer"]},
        )
        visas = _tasks(folder, "visa")
        assert sorted(t.assignee.email for t in visas) == [office["v1"], office["v2"]]
        engine.complete_task(visas[0].id, {"decision": "approve"}, _user(visas[0].assignee.email))
        assert [t.form_key for t in _tasks(folder)] == ["visa"]
        engine.complete_task(
            visas[1].id, {"decision": "approve", "comment": "OK"}, _user(visas[1].assignee.email)
        )
        [signature] = _tasks(folder)
        assert signature.form_key == "signature"
        assert [c.user_id for c in signature.candidates] == [_user(office["signer"]).id]


def test_one_refusal_among_parallel_visas_cancels_the_others(signing_app, office):
    with signing_app.app_context():
        folder = _folder(
            office,
            process_key="parapheur_parallele",
            variables={
                "visas": [office["v1"], office["v2"], office["v3"]],
                "signer": office["signer"],
            },
        )
        visas = _tasks(folder, "visa")
        engine.complete_task(
            visas[1].id,
            {"decision": "reject", "comment": "Désaccord."},
            _user(visas[1].assignee.email),
        )
        folder = services.get_folder(folder.id)
        assert folder.status == FolderStatus.REJECTED
        assert [t.form_key for t in _tasks(folder)] == ["parapheur_correction"]
        statuses = sorted(
            t.status.value for t in engine.instance_tasks(folder.instance) if t.form_key == "visa"
        )
        assert statuses == ["cancelled", "cancelled", "completed"]


def test_any_one_member_of_a_group_gives_the_group_visa(signing_app, office, make_user):
    with signing_app.app_context():
        create_group(name="comptables", label="Comptables")
    make_user(email="c1@example.test", groups=["comptables"])
    second = make_user(email="c2@example.test", groups=["comptables"])
    with signing_app.app_context():
        folder = _folder(
            office,
            process_key="parapheur_groupe",
            variables={"visa_group": "comptables", "signer": office["signer"]},
        )
        [visa] = _tasks(folder)
        assert visa.candidate_groups == ["comptables"] and visa.assignee_id is None
        engine.complete_task(visa.id, {"decision": "approve"}, _user(second))
        assert [t.form_key for t in _tasks(folder)] == ["signature"]
        assert services.folder_steps(folder)[1]["by"] == second


@pytest.mark.parametrize(
    ("amount", "signing_unit"),
    [
        (12_000, "finances"),
        (25_000, "finances"),
        (25_000.01, "dgs"),
        (90_000, "dgs"),
        (150_000, "departement"),
    ],
)
def test_the_dmn_table_picks_the_invoice_signer_by_amount(
    signing_app, office, make_user, amount, signing_unit
):
    heads = {
        "departement": make_user(email="president@example.test"),
        "dgs": make_user(email="directeur-general@example.test"),
        "finances": make_user(email="directrice-finances@example.test"),
    }
    admin = make_user(role="admin", email="admin@example.test")
    with signing_app.app_context():
        create_group(name="comptabilite", label="Comptabilité")
        for code, name in (
            ("departement", "Département"),
            ("dgs", "DGS"),
            ("dir-finances", "Finances"),
        ):
            unit = create_org_unit(code=code, name=name, kind="direction")
            update_org_unit(
                unit, name=name, parent=None, head=_user(heads[code.removeprefix("dir-")])
            )
        folder = _folder(office, type="facture", amount=amount)
        [visa] = _tasks(folder)
        assert visa.candidate_groups == ["comptabilite"]
        engine.complete_task(visa.id, {"decision": "approve"}, _user(admin))
        [signature] = _tasks(folder)
        [candidate] = [c.user_id for c in signature.candidates if c.user_id]
        assert candidate == _user(heads[signing_unit]).id


def test_the_seal_step_seals_the_signed_documents_after_the_signature(
    signing_app, office, signing_infrastructure
):
    with signing_app.app_context():
        seal = signing_infrastructure.identity("Cachet serveur du Département")
        services.import_pkcs12(seal.pkcs12(), PKCS12_PASSWORD, seal=True)
        folder = _folder(office, [{"step": "signature", "assignee": office["signer"]}], seal=True)
        engine.complete_task(_tasks(folder)[0].id, {"decision": "sign"}, _user(office["signer"]))
        engine.run_due_jobs()
        folder = services.get_folder(folder.id)
        [entry] = folder.current_documents("main")
        kinds = [v["kind"] for v in services.document_versions(folder)[0]["versions"]]
        data = content(entry.current)
        assert folder.status == FolderStatus.COMPLETED
        assert entry.current.kind == "sealed"
        assert [s["kind"] for s in services.folder_steps(folder)][-1] == "seal"

    assert kinds == ["original", "signature", "seal"]
    signatures = pdfsig(data, signing_infrastructure.nssdb, signing_infrastructure.workdir)
    assert [s.value("Signer Certificate Common Name") for s in signatures] == [
        "Denis Général",
        "Cachet serveur du Département",
    ]
    assert all(s.valid and s.trusted for s in signatures)
    assert signatures[-1].whole_document


@pytest.mark.parametrize(
    ("folder_type", "visa_group", "signer"),
    [
        ("courrier_sortant", "dgs", "president"),
        ("note_interne", None, "dgs"),
        ("attestation_service_fait", None, "group:comptabilite"),
        ("notification_marche", "commande-publique", "president"),
    ],
)
def test_the_dmn_table_picks_visa_and_signer_by_document_type(
    signing_app, office, make_user, folder_type, visa_group, signer
):
    heads = {
        "departement": make_user(email="presidente@example.test"),
        "dgs": make_user(email="dg@example.test"),
    }
    with signing_app.app_context():
        for name in ("comptabilite", "dgs", "commande-publique"):
            create_group(name=name, label=name)
        for code, email in heads.items():
            unit = create_org_unit(code=code, name=code, kind="direction")
            update_org_unit(unit, name=code, parent=None, head=_user(email))
        folder = _folder(office, type=folder_type)
        tasks = _tasks(folder)
        if visa_group:
            assert [(t.form_key, t.candidate_groups) for t in tasks] == [("visa", [visa_group])]
            return
        [signature] = tasks
        assert signature.form_key == "signature"
        if signer.startswith("group:"):
            assert signature.candidate_groups == [signer.removeprefix("group:")]
        else:
            assert [c.user_id for c in signature.candidates] == [_user(heads[signer]).id]
