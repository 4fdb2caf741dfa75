"""Demo parapheur: the shipped circuits, demo certificates, a delegation and a few folders
(the subsidy letter already has its visa: the President — or the DGS by delegation — can
sign it from the browser).

The demo certificates come from a throwaway certification authority generated at load
time (its private key is not kept); its certificate is written beside the storage
directory (``instance/demo-ca.pem``) so that, in development, validation reports trust it.
Idempotent: certificates, the delegation and the folders are only created once.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import current_app
from sqlalchemy import select

from app.auth.services import find_user_by_email
from app.core.extensions import db
from app.engine.services import deploy
from app.parapheur import services
from app.parapheur.models import CertificateKind, Delegation, Folder, SigningCertificate

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
SIGNERS = (
    "michel.le-goff@departement.test",
    "jean.morel@departement.test",
    "helene.fournier@departement.test",
    "catherine.faure@departement.test",
    "olivier.gautier@departement.test",
)
LETTER = (
    "<p>Madame la Présidente,</p><p>Par courrier du 3 novembre, vous avez sollicité le "
    "soutien du Département pour l'organisation de la fête des associations de votre "
    "commune. J'ai le plaisir de vous informer qu'une subvention de 2 500 € vous est "
    "accordée.</p><p>Je vous prie d'agréer, Madame la Présidente, l'expression de mes "
    "salutations distinguées.</p>"
)


def demo_ca_path() -> Path:
    """Where the demo certification authority's certificate is written (beside storage)."""
    return Path(current_app.config["MISSIVE_STORAGE"]).parent / "demo-ca.pem"


def load() -> dict[str, int]:
    """Create what is missing of the parapheur demo; return what was added."""
    created = {}
    deployed = deploy(
        [(p.name, p.read_bytes()) for p in sorted(PROCESSES.glob("parapheur*"))], actor=None
    )
    if any(d.created for d in deployed):
        created["parapheur_circuits"] = sum(d.created for d in deployed)
    certificates = _certificates()
    if certificates:
        created["parapheur_certificates"] = certificates
    if _delegation():
        created["parapheur_delegations"] = 1
    folders = _folders()
    if folders:
        created["parapheur_folders"] = folders
    return created


def _missing_certificates() -> tuple[list, bool]:
    people = [u for u in (find_user_by_email(e) for e in SIGNERS) if u is not None]
    having = set(
        db.session.execute(
            select(SigningCertificate.user_id).where(SigningCertificate.active)
        ).scalars()
    )
    seal = db.session.execute(
        select(SigningCertificate.id).where(
            SigningCertificate.kind == CertificateKind.SEAL, SigningCertificate.active
        )
    ).first()
    return [u for u in people if u.id not in having], seal is None


def _certificates() -> int:
    people, seal = _missing_certificates()
    if not people and not seal:
        return 0
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Missive (démonstration)"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Autorité de démonstration"),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=730))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    demo_ca_path().parent.mkdir(parents=True, exist_ok=True)
    with demo_ca_path().open("ab") as handle:
        handle.write(ca.public_bytes(serialization.Encoding.PEM))
    count = 0
    for user, common_name in [(u, u.name) for u in people] + (
        [(None, "Cachet serveur du Département (démonstration)")] if seal else []
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
                        x509.NameAttribute(
                            NameOID.ORGANIZATION_NAME, "Département de démonstration"
                        ),
                        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    ]
                )
            )
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(
                x509.KeyUsage(True, True, False, False, False, False, False, False, False),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        password = secrets.token_urlsafe(12)
        bundle = serialization.pkcs12.serialize_key_and_certificates(
            b"demo",
            key,
            certificate,
            [ca],
            serialization.BestAvailableEncryption(password.encode()),
        )
        if user is None:
            services.import_pkcs12(bundle, password, seal=True)
        else:
            services.import_pkcs12(bundle, password, email=user.email)
        count += 1
    return count


def _delegation() -> bool:
    president = find_user_by_email("michel.le-goff@departement.test")
    dgs = find_user_by_email("jean.morel@departement.test")
    if president is None or dgs is None:
        return False
    exists = db.session.execute(
        select(Delegation.id).where(
            Delegation.delegator_id == president.id, Delegation.delegate_id == dgs.id
        )
    ).first()
    if exists:
        return False
    services.create_delegation(
        delegator=president,
        delegate=dgs,
        actor=president,
        document_types=["courrier_sortant", "arrete", "convention"],
        valid_from=services.today(),
        valid_until=services.today() + timedelta(days=365),
    )
    return True


def _folders() -> int:
    if db.session.execute(select(Folder.id).where(Folder.origin_type == "demo")).first():
        return 0
    drafter = find_user_by_email("claire.martin@departement.test")
    accountant = find_user_by_email("mathilde.henry@departement.test")
    if drafter is None or accountant is None:
        return 0
    letter = services.create_folder_from_draft(
        title="Subvention à l'association des fêtes de Clisson",
        type="courrier_sortant",
        actor=drafter,
        html=LETTER,
        context={"object_line": "Votre demande de subvention"},
        origin=("demo", "1"),
    )
    _give_visa(letter, "helene.fournier@departement.test")
    services.create_folder_from_draft(
        title="Facture n° F-2026-118 — entretien des espaces verts",
        type="facture",
        actor=accountant,
        amount=12_480.50,
        html="<p>Facture n° F-2026-118 de la société Verts Horizons : entretien des espaces "
        "verts du collège Jules-Verne, octobre 2026.</p><p>Montant : 12 480,50 € TTC.</p>",
        origin=("demo", "2"),
    )
    services.create_folder_from_draft(
        title="Note sur l'organisation des permanences de décembre",
        type="note_interne",
        actor=drafter,
        html="<p>Les permanences de l'accueil seront assurées du 22 au 31 "
        "décembre selon le planning joint.</p>",
        circuit=[
            {"step": "visa", "assignee": "lucie.robin@departement.test"},
            {"step": "signature", "assignee": "jean.morel@departement.test"},
        ],
        origin=("demo", "3"),
    )
    return 3


def _give_visa(folder: Folder, email: str) -> None:
    """The DGA gives her visa, so the letter waits for the President's signature (or the
    DGS's, by delegation): a folder signable from the browser as soon as the demo runs."""
    from app.engine import services as engine

    visa = next((t for t in services.open_tasks(folder) if t.form_key == "visa"), None)
    signer = find_user_by_email(email)
    if visa is not None and signer is not None:
        engine.complete_task(
            visa.id, {"decision": "approve", "comment": "Vu, bon pour signature."}, signer
        )
