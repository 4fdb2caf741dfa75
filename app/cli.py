"""The ``missive`` command: the Flask CLI of the application plus Missive's own groups."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from app.core.errors import MissiveError


def main() -> None:
    """Entry point of the ``missive`` console script."""
    from app import create_app

    cli = FlaskGroup(
        create_app=create_app,
        add_version_option=False,
        help="Missive : courrier, relation usagers et parapheur.",
    )
    cli.main(prog_name="missive")


def fail(error: MissiveError) -> None:
    """Print a refused action as JSON on stderr and exit 1."""
    click.echo(
        json.dumps({"error": error.detail, "errors": error.errors}, ensure_ascii=False), err=True
    )
    sys.exit(1)


@click.group("user", help="Comptes utilisateurs.")
def user_group():
    pass


@user_group.command("create", help="Crée un compte.")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--password", required=True)
@click.option(
    "--role", type=click.Choice(["agent", "analyst", "admin"]), default="agent", show_default=True
)
@click.option("--group", "groups", multiple=True, help="Groupe fonctionnel (répétable).")
@click.option("--title", default=None, help="Fonction affichée dans le bloc de signature.")
@click.option("--org-unit", default=None, help="Code de l'unité de rattachement.")
@with_appcontext
def user_create(email, name, password, role, groups, title, org_unit):
    from sqlalchemy import select

    from app.auth.models import OrgUnit
    from app.auth.services import create_user
    from app.core.extensions import db

    unit = None
    if org_unit:
        unit = db.session.execute(select(OrgUnit).where(OrgUnit.code == org_unit)).scalar()
        if unit is None:
            fail(MissiveError(f"Unité inconnue : {org_unit}"))
    try:
        user = create_user(
            email=email,
            name=name,
            password=password,
            role=role,
            groups=list(groups),
            title=title,
            org_unit=unit,
        )
    except MissiveError as error:
        fail(error)
    click.echo(
        json.dumps(
            {
                "id": user.id,
                "email": user.email,
                "role": str(user.role),
                "groups": user.group_names,
            },
            ensure_ascii=False,
        )
    )


@click.group("token", help="Jetons d'accès à l'API.")
def token_group():
    pass


@token_group.command("create", help="Affiche un nouveau jeton pour ce compte.")
@click.option("--email", required=True)
@click.option("--name", default="cli", show_default=True)
@with_appcontext
def token_create(email, name):
    from app.api.services import create_token
    from app.auth.services import find_user_by_email

    user = find_user_by_email(email)
    if user is None or not user.active:
        fail(MissiveError(f"Aucun compte actif pour {email}."))
    _token, clear = create_token(user, name=name)
    click.echo(clear)


@token_group.command("revoke", help="Révoque un jeton par son identifiant.")
@click.option("--id", "token_id", type=int, required=True)
@with_appcontext
def token_revoke(token_id):
    from app.api.services import revoke_token

    try:
        revoke_token(token_id)
    except MissiveError as error:
        fail(error)
    click.echo(json.dumps({"id": token_id, "revoked": True}))


@token_group.command("list", help="Liste les jetons d'un compte.")
@click.option("--email", required=True)
@with_appcontext
def token_list(email):
    from app.api.services import tokens_of
    from app.auth.services import find_user_by_email

    user = find_user_by_email(email)
    if user is None:
        fail(MissiveError(f"Aucun compte pour {email}."))
    for token in tokens_of(user):
        click.echo(
            json.dumps(
                {
                    "id": token.id,
                    "name": token.name,
                    "prefix": token.prefix,
                    "created_at": token.created_at.isoformat(),
                    "revoked": token.revoked_at is not None,
                }
            )
        )


@click.group("demo", help="Données de démonstration.")
def demo_group():
    pass


@demo_group.command("load", help="Charge l'organisation, les comptes et les données de démo.")
@with_appcontext
def demo_load():
    from app.demo import load_demo

    summary = load_demo()
    click.echo(json.dumps(summary, ensure_ascii=False))


@click.command("worker", help="Exécute les travaux de fond (minuteries, relève, tâches).")
@click.option("--once", is_flag=True, help="Exécute ce qui est dû maintenant, puis s'arrête.")
@click.option("--workers", default=2, show_default=True)
def worker_command(once, workers):
    from app.core.worker import run_consumer, run_once

    if once:
        click.echo(json.dumps(run_once(), ensure_ascii=False))
    else:
        run_consumer(workers=workers)


@click.group("audit", help="Journal d'audit.")
def audit_group():
    pass


@audit_group.command("verify", help="Vérifie le chaînage du journal d'audit.")
@with_appcontext
def audit_verify():
    from app.core.audit import verify_chain

    broken = verify_chain()
    click.echo(json.dumps({"intact": not broken, "broken_ids": broken[:100]}))
    sys.exit(1 if broken else 0)


def register_commands(app: Flask) -> None:
    """Attach Missive's core command groups (domains add theirs in ``cli.py``)."""
    for command in (user_group, token_group, demo_group, worker_command, audit_group):
        app.cli.add_command(command)
