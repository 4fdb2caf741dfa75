"""``missive process …``: deploy and list process definitions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import with_appcontext

from app.core.errors import MissiveError


@click.group("process", help="Définitions de processus (BPMN/DMN).")
def process_group():
    pass


@process_group.command("deploy", help="Déploie des fichiers BPMN/DMN.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@with_appcontext
def deploy_command(files):
    from app.engine.services import deploy

    payload = []
    for name in files:
        path = Path(name)
        try:
            payload.append((path.name, path.read_bytes()))
        except OSError as exc:
            click.echo(
                json.dumps(
                    {
                        "errors": [
                            {
                                "file": name,
                                "element_id": None,
                                "message": f"Fichier illisible : {exc}",
                            }
                        ]
                    },
                    ensure_ascii=False,
                )
            )
            sys.exit(1)
    try:
        results = deploy(payload, actor=None)
    except MissiveError as error:
        click.echo(
            json.dumps(
                {
                    "errors": error.errors
                    or [{"file": None, "element_id": None, "message": error.detail}]
                },
                ensure_ascii=False,
            )
        )
        sys.exit(1)
    for result in results:
        item = result.as_dict()
        if item.pop("kind") == "decision":
            item["decision"] = True
        click.echo(json.dumps(item, ensure_ascii=False))


@process_group.command("list", help="Liste les définitions et leurs versions (JSON).")
@with_appcontext
def list_command():
    from app.engine.api import definition_json
    from app.engine.services import list_definitions

    click.echo(
        json.dumps([definition_json(d) for d in list_definitions()], ensure_ascii=False, indent=2)
    )


commands = [process_group]
