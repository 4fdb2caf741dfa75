"""``missive contacts …``: duplicate detection and retention on demand."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext


@click.group("contacts", help="Base de contacts (GRC).")
def contacts_group():
    pass


@contacts_group.command("find-duplicates", help="Recherche les doublons et remplit la file.")
@click.option("--all", "everything", is_flag=True, help="Toute la base (sinon : le dernier jour).")
@with_appcontext
def find_duplicates(everything):
    from datetime import timedelta

    from app.contacts import services
    from app.core.db import utcnow

    since = None if everything else utcnow() - timedelta(hours=26)
    click.echo(json.dumps({"open_pairs": services.find_duplicates(since=since)}))


@contacts_group.command("apply-retention", help="Applique les durées de conservation.")
@with_appcontext
def apply_retention():
    from app.contacts import services

    click.echo(json.dumps(services.apply_retention()))


commands = [contacts_group]
