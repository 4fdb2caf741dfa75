"""``missive certificate …``: signing certificates (PKCS#12, PKCS#11 tokens, server seal)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from flask.cli import with_appcontext

from app.cli import fail
from app.core.errors import MissiveError


@click.group("certificate", help="Certificats de signature et cachet serveur.")
def certificate_group():
    pass


def _describe(row) -> dict:
    return {
        "id": row.id,
        "kind": row.kind.value,
        "user": row.user.email if row.user else None,
        "source": row.source.value,
        "subject": row.subject,
        "issuer": row.issuer,
        "fingerprint": row.fingerprint,
        "not_after": row.not_after.isoformat(),
        "active": row.active,
    }


@certificate_group.command(
    "import",
    help="Donne à un signataire (ou, avec --seal, au serveur) un certificat et sa clé : "
    "fichier PKCS#12, ou clé d'un jeton PKCS#11.",
)
@click.option("--email", default=None, help="Le signataire (sans --seal).")
@click.option("--seal", is_flag=True, help="Le cachet serveur des documents automatiques.")
@click.option("--pkcs12", "pkcs12_file", type=click.Path(dir_okay=False), default=None)
@click.option(
    "--password",
    default=None,
    help="Mot de passe du PKCS#12 (sinon MISSIVE_PKCS12_PASSWORD, ou demandé).",
)
@click.option("--pkcs11-module", default=None, help="Bibliothèque PKCS#11 (.so) du jeton.")
@click.option("--token", default=None, help="Libellé du jeton PKCS#11.")
@click.option("--key-label", default=None, help="Libellé de la clé sur le jeton.")
@click.option("--pin", default=None, help="Code PIN du jeton (sinon MISSIVE_PKCS11_PIN).")
@click.option(
    "--certificate",
    "certificate_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Certificat (PEM ou DER, chaîne comprise) si le jeton ne le contient pas.",
)
@with_appcontext
def import_command(
    email,
    seal,
    pkcs12_file,
    password,
    pkcs11_module,
    token,
    key_label,
    pin,
    certificate_file,
):
    from app.parapheur import services

    if bool(pkcs12_file) == bool(pkcs11_module):
        fail(
            MissiveError(
                "Indiquez soit --pkcs12 FICHIER, soit --pkcs11-module (avec --token "
                "et --key-label)."
            )
        )
    if not seal and not email:
        fail(MissiveError("Indiquez --email (un signataire) ou --seal (le cachet serveur)."))
    try:
        if pkcs12_file:
            if password is None:
                password = os.environ.get("MISSIVE_PKCS12_PASSWORD")
            if password is None and click.get_text_stream("stdin").isatty():
                password = click.prompt(
                    "Mot de passe du PKCS#12", hide_input=True, default="", show_default=False
                )
            row = services.import_pkcs12(
                Path(pkcs12_file).read_bytes(), password, email=email, seal=seal
            )
        else:
            if not token or not key_label:
                fail(MissiveError("--token et --key-label sont nécessaires avec --pkcs11-module."))
            row = services.import_pkcs11(
                module=pkcs11_module,
                token=token,
                key_label=key_label,
                pin=pin if pin is not None else os.environ.get("MISSIVE_PKCS11_PIN"),
                certificate_data=Path(certificate_file).read_bytes() if certificate_file else None,
                email=email,
                seal=seal,
            )
    except MissiveError as error:
        fail(error)
    except OSError as exc:
        fail(MissiveError(f"Fichier illisible : {exc}"))
    click.echo(json.dumps(_describe(row), ensure_ascii=False))


@certificate_group.command("list", help="Liste les certificats (JSON, une ligne chacun).")
@with_appcontext
def list_command():
    from app.parapheur import services

    for row in services.list_certificates():
        click.echo(json.dumps(_describe(row), ensure_ascii=False))


@certificate_group.command(
    "keygen", help="Affiche une nouvelle valeur pour MISSIVE_KEYSTORE_KEY (clé de chiffrement)."
)
def keygen_command():
    from app.parapheur.keystore import generate_keystore_key

    click.echo(generate_keystore_key())


commands = [certificate_group]
