"""``missive mailbox …`` and ``missive mail fetch``."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from app.core.errors import MissiveError


@click.group("mailbox", help="Boîtes fonctionnelles (IMAP).")
def mailbox_group():
    pass


@mailbox_group.command("add", help="Configure une boîte fonctionnelle (mot de passe chiffré).")
@click.option("--name", required=True)
@click.option("--host", required=True)
@click.option("--port", type=int, required=True)
@click.option("--username", required=True)
@click.option("--password", required=True)
@click.option("--folder", default="INBOX", show_default=True)
@click.option("--processed-folder", default="Traités", show_default=True)
@click.option("--no-tls", is_flag=True, help="Connexion sans TLS (réseau interne de confiance).")
@click.option("--group", "group_name", default=None, help="Groupe du service destinataire.")
@click.option("--type", "type_code", default=None, help="Type de courrier par défaut.")
@with_appcontext
def mailbox_add(
    name, host, port, username, password, folder, processed_folder, no_tls, group_name, type_code
):
    from app.cli import fail
    from app.mail.services import add_mailbox

    try:
        mailbox = add_mailbox(
            name=name,
            host=host,
            port=port,
            username=username,
            password=password,
            folder=folder,
            processed_folder=processed_folder,
            use_tls=not no_tls,
            group_name=group_name,
            type_code=type_code,
        )
    except MissiveError as error:
        fail(error)
    click.echo(json.dumps({"id": mailbox.id, "name": mailbox.name}, ensure_ascii=False))


@mailbox_group.command("list", help="Liste les boîtes fonctionnelles (JSON, sans secret).")
@with_appcontext
def mailbox_list():
    from app.mail.services import list_mailboxes

    for mailbox in list_mailboxes():
        click.echo(
            json.dumps(
                {
                    "id": mailbox.id,
                    "name": mailbox.name,
                    "host": mailbox.host,
                    "port": mailbox.port,
                    "username": mailbox.username,
                    "folder": mailbox.folder,
                    "tls": mailbox.use_tls,
                    "group": mailbox.group_name,
                    "active": mailbox.active,
                    "last_error": mailbox.last_error,
                },
                ensure_ascii=False,
            )
        )


@click.group("mail", help="Relève des courriels.")
def mail_group():
    pass


@mail_group.command("fetch", help="Relève toutes les boîtes fonctionnelles.")
@click.option("--once", is_flag=True, required=True, help="Une relève, puis s'arrête.")
@click.option("--limit", type=int, default=None, help="Messages au plus par boîte.")
@with_appcontext
def mail_fetch(once, limit):
    from app.mail.services import fetch_all

    reports = fetch_all(limit=limit)
    for report in reports:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    raise SystemExit(1 if any(r.error for r in reports) else 0)


commands = [mailbox_group, mail_group]
