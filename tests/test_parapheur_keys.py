"""Signing keys: PKCS#12 imported and encrypted at rest, PKCS#11 through SoftHSM2, the
server seal, the signer cache and the ``missive certificate`` command."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization

from app.auth.services import find_user_by_email
from app.core.errors import Conflict, ValidationFailed
from app.core.extensions import db
from app.documents.services import add_document, content
from app.engine import services as engine
from app.parapheur import keystore, services
from app.parapheur.keystore import KeystoreError
from app.parapheur.models import SigningCertificate
from app.parapheur.services import Upload
from tests.parapheur_support import (
    PKCS12_PASSWORD,
    SOFTHSM_MODULE,
    TOKEN_PIN,
    make_pdf,
    pdfsig,
)


def _user(email):
    return find_user_by_email(email)


def _sign_folder(signer_email, drafter_email):
    folder = services.create_folder(
        title="Note",
        type="note_interne",
        actor=_user(drafter_email),
        documents=[Upload("note.pdf", make_pdf())],
        circuit=[{"step": "signature", "assignee": signer_email}],
    )
    [task] = services.open_tasks(folder)
    engine.complete_task(task.id, {"decision": "sign"}, _user(signer_email))
    return services.get_folder(folder.id).current_documents("main")[0].current


def test_the_private_key_is_stored_encrypted_and_the_passphrase_not_at_all(
    signing_app, make_user, signing_infrastructure
):
    email = make_user()
    identity = signing_infrastructure.identity("Clé Chiffrée")
    plaintext = identity.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with signing_app.app_context():
        row = services.import_pkcs12(identity.pkcs12(), PKCS12_PASSWORD, email=email)
        stored = b"".join(
            bytes(v) if isinstance(v, bytes | bytearray | memoryview) else str(v).encode()
            for v in (getattr(row, c.key) for c in SigningCertificate.__table__.columns)
        )
        assert plaintext not in stored and plaintext[-64:] not in stored
        assert PKCS12_PASSWORD.encode() not in stored
        assert keystore.decrypt_secret(row.encrypted_key, row.fingerprint, row.key_id) == plaintext
        assert row.subject.endswith("CN=Clé Chiffrée") or "Clé Chiffrée" in row.subject


def test_a_wrong_pkcs12_password_is_refused(signing_app, make_user, signing_infrastructure):
    email = make_user()
    with signing_app.app_context(), pytest.raises(ValidationFailed, match="mot de passe"):
        services.import_pkcs12(
            signing_infrastructure.identity("Jean Faux").pkcs12(), "pas-le-bon", email=email
        )


def test_an_expired_certificate_cannot_be_imported(signing_app, make_user, signing_infrastructure):
    from datetime import UTC, datetime, timedelta

    email = make_user()
    old = signing_infrastructure.pki.issue(
        "Ancien Signataire", days=10, not_before=datetime.now(UTC) - timedelta(days=30)
    )
    with signing_app.app_context(), pytest.raises(ValidationFailed, match="expiré"):
        services.import_pkcs12(old.pkcs12(), PKCS12_PASSWORD, email=email)


def test_a_changed_keystore_key_makes_stored_keys_unusable_not_wrong(
    signing_app, make_user, signing_infrastructure
):
    signer, drafter = make_user(), make_user()
    with signing_app.app_context():
        services.import_pkcs12(
            signing_infrastructure.identity("Clé Tournante").pkcs12(), PKCS12_PASSWORD, email=signer
        )
    signing_app.config["MISSIVE_KEYSTORE_KEY"] = keystore.generate_keystore_key()
    try:
        keystore.forget_signers()
        with signing_app.app_context(), pytest.raises(KeystoreError, match="MISSIVE_KEYSTORE_KEY"):
            _sign_folder(signer, drafter)
    finally:
        signing_app.config["MISSIVE_KEYSTORE_KEY"] = None


def test_loaded_signers_are_cached_by_certificate_and_key_material(
    signing_app, make_user, signing_infrastructure
):
    signer = make_user()
    keystore.forget_signers()
    with signing_app.app_context():
        row = services.import_pkcs12(
            signing_infrastructure.identity("Clé En Cache").pkcs12(), PKCS12_PASSWORD, email=signer
        )
        with keystore.signer_for(row) as first:
            pass
        with keystore.signer_for(row) as again:
            assert again is first
        assert keystore.cached_signers() == 1
        renewed = services.import_pkcs12(
            signing_infrastructure.identity("Clé En Cache").pkcs12(), PKCS12_PASSWORD, email=signer
        )
        assert keystore.material_fingerprint(renewed) != keystore.material_fingerprint(row)
        with keystore.signer_for(renewed) as other:
            assert other is not first
    signing_app.config["MISSIVE_SIGNER_CACHE_SECONDS"] = 0
    try:
        keystore.forget_signers()
        with signing_app.app_context():
            with keystore.signer_for(renewed):
                pass
            assert keystore.cached_signers() == 0
    finally:
        signing_app.config["MISSIVE_SIGNER_CACHE_SECONDS"] = 900


def test_a_pkcs11_key_in_softhsm_signs_and_pdfsig_trusts_it(
    signing_app, make_user, signing_infrastructure, softhsm_token
):
    signer, drafter = make_user(), make_user()
    identity = signing_infrastructure.identity("Hélène Jeton")
    softhsm_token(identity, "signataire-helene", "01")
    with signing_app.app_context():
        row = services.import_pkcs11(
            module=SOFTHSM_MODULE,
            token="missive-test",
            key_label="signataire-helene",
            pin=TOKEN_PIN,
            certificate_data=identity.certificate_pem() + signing_infrastructure.pki.ca_pem(),
            email=signer,
        )
        assert row.source.value == "pkcs11" and row.encrypted_key is None
        assert TOKEN_PIN.encode() not in row.encrypted_pin
        first = _sign_folder(signer, drafter)
        second = _sign_folder(signer, drafter)  # the open token session is reused
        data = content(second)
        assert content(first) != data

    [signature] = pdfsig(data, signing_infrastructure.nssdb, signing_infrastructure.workdir)
    assert signature.value("Signer Certificate Common Name") == "Hélène Jeton"
    assert signature.valid and signature.trusted and signature.whole_document


def test_a_token_key_that_does_not_match_the_certificate_is_refused(
    signing_app, make_user, signing_infrastructure, softhsm_token
):
    email = make_user()
    softhsm_token(signing_infrastructure.identity("Clé Jeton A"), "cle-a", "0a")
    other = signing_infrastructure.identity("Certificat B")
    with signing_app.app_context(), pytest.raises(ValidationFailed, match="ne correspond pas"):
        services.import_pkcs11(
            module=SOFTHSM_MODULE,
            token="missive-test",
            key_label="cle-a",
            pin=TOKEN_PIN,
            certificate_data=other.certificate_pem(),
            email=email,
        )


def test_seal_document_seals_any_pdf_as_a_new_document(
    signing_app, make_user, signing_infrastructure
):
    with signing_app.app_context():
        document = add_document(
            make_pdf(text="Accusé de réception"), filename="ar.pdf", mime_type="application/pdf"
        )
        db.session.commit()
        with pytest.raises(Conflict, match="cachet serveur"):
            services.seal_document(document, "Accusé de réception")
        services.import_pkcs12(
            signing_infrastructure.identity("Cachet serveur du Département").pkcs12(),
            PKCS12_PASSWORD,
            seal=True,
        )
        sealed = services.seal_document(document, "Accusé de réception n° 2026-0001")
        db.session.commit()
        assert sealed.parent_id == document.id and sealed.kind == "sealed"
        assert sealed.sha256 != document.sha256
        data = content(sealed)
    [signature] = pdfsig(data, signing_infrastructure.nssdb, signing_infrastructure.workdir)
    assert signature.value("Signer Certificate Common Name") == "Cachet serveur du Département"
    assert signature.valid and signature.trusted and signature.whole_document


def test_the_certificate_command_imports_a_pkcs12_and_the_seal(
    signing_app, make_user, signing_infrastructure, tmp_path
):
    email = make_user(email="cli@example.test")
    p12 = tmp_path / "agent.p12"
    p12.write_bytes(signing_infrastructure.identity("Agent Ligne").pkcs12())
    seal = tmp_path / "seal.p12"
    seal.write_bytes(signing_infrastructure.identity("Cachet Ligne").pkcs12("secret-cachet"))
    runner = signing_app.test_cli_runner()

    result = runner.invoke(
        args=[
            "certificate",
            "import",
            "--email",
            email,
            "--pkcs12",
            str(p12),
            "--password",
            PKCS12_PASSWORD,
        ]
    )
    assert result.exit_code == 0, result.output
    imported = json.loads(result.output)
    assert imported["user"] == email and imported["kind"] == "personal"

    result = runner.invoke(
        args=[
            "certificate",
            "import",
            "--seal",
            "--pkcs12",
            str(seal),
            "--password",
            "secret-cachet",
        ]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["kind"] == "seal"

    result = runner.invoke(
        args=["certificate", "import", "--email", email, "--pkcs12", str(p12), "--password", "faux"]
    )
    assert result.exit_code == 1
    assert "mot de passe" in result.output.lower()

    listed = runner.invoke(args=["certificate", "list"])
    assert [json.loads(line)["kind"] for line in listed.output.splitlines()] == ["seal", "personal"]


def test_in_production_keys_are_refused_without_a_keystore_key(
    signing_app, make_user, signing_infrastructure
):
    email = make_user()
    signing_app.config["MISSIVE_ENV"] = "production"
    try:
        with signing_app.app_context(), pytest.raises(KeystoreError, match="n'est pas configurée"):
            services.import_pkcs12(
                signing_infrastructure.identity("Sans Clé").pkcs12(), PKCS12_PASSWORD, email=email
            )
        signing_app.config["MISSIVE_KEYSTORE_KEY"] = "trop-courte"
        with signing_app.app_context(), pytest.raises(KeystoreError, match="32 octets"):
            services.import_pkcs12(
                signing_infrastructure.identity("Sans Clé").pkcs12(), PKCS12_PASSWORD, email=email
            )
        result = signing_app.test_cli_runner().invoke(args=["certificate", "keygen"])
        signing_app.config["MISSIVE_KEYSTORE_KEY"] = result.output.strip()
        with signing_app.app_context():
            row = services.import_pkcs12(
                signing_infrastructure.identity("Sans Clé").pkcs12(), PKCS12_PASSWORD, email=email
            )
            assert row.key_id == keystore.keystore_key_id()
    finally:
        signing_app.config.update(MISSIVE_ENV="testing", MISSIVE_KEYSTORE_KEY=None)
