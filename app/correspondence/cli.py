"""``missive case-type …``: the configurable list of item types."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from app.core.errors import MissiveError


@click.group("case-type", help="Types de courrier (liste configurable).")
def case_type_group():
    pass


@case_type_group.command("list", help="Liste les types (JSON).")
@with_appcontext
def case_type_list():
    from app.correspondence.services import list_case_types
    from app.deadlines.services import type_target_days

    for case_type in list_case_types(active_only=False):
        click.echo(
            json.dumps(
                {
                    "code": case_type.code,
                    "label": case_type.label,
                    "process_key": case_type.process_key,
                    "channel_processes": case_type.channel_processes,
                    "target_days": type_target_days(case_type),
                    "active": case_type.active,
                },
                ensure_ascii=False,
            )
        )


@case_type_group.command("set", help="Crée ou modifie un type.")
@click.option("--code", required=True)
@click.option("--label", required=True)
@click.option("--process", "process_key", default=None, help="Circuit démarré (clé BPMN).")
@click.option(
    "--channel-process",
    "channel_processes",
    multiple=True,
    help="Circuit propre à un canal : CANAL=CLE (répétable).",
)
@click.option(
    "--days",
    "target_days",
    type=int,
    default=None,
    help="Délai de réponse en jours ouvrés, tous canaux (règle de délai du type).",
)
@click.option("--inactive", is_flag=True, help="Retire le type de la liste.")
@with_appcontext
def case_type_set(code, label, process_key, channel_processes, target_days, inactive):
    from app.cli import fail
    from app.correspondence.services import save_case_type
    from app.deadlines.services import set_type_target_days

    per_channel = {}
    for item in channel_processes:
        channel, _, key = item.partition("=")
        per_channel[channel.strip()] = key.strip()
    try:
        case_type = save_case_type(
            code,
            label,
            process_key=process_key,
            channel_processes=per_channel,
            active=not inactive,
        )
        if target_days is not None:
            set_type_target_days(code, target_days, None)
    except MissiveError as error:
        fail(error)
    click.echo(
        json.dumps(
            {"code": case_type.code, "id": case_type.id, "target_days": target_days},
            ensure_ascii=False,
        )
    )


commands = [case_type_group]
