"""Public web forms: JSON Schema files of forms/ that carry an ``x-public`` block.

``x-public``: ``type`` (item type), ``subject`` (template over the answers), ``summary``
(the answer used as summary), ``files`` (per file field: ``max_bytes``, ``types``).
Abuse protection: a rate limit per address kept in the database, a honeypot field, and
size and type limits on uploads.
"""

from __future__ import annotations

import hashlib
import json
import string
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from app.contacts.services import SENDER_FIELDS, resolve_sender
from app.core.db import utcnow
from app.core.errors import MissiveError, NotFound, ValidationFailed
from app.core.extensions import db
from app.core.jsonforms import parse_submission
from app.core.validation import schema_errors
from app.correspondence import files as filetypes
from app.correspondence import services
from app.correspondence.models import Channel, Correspondence, FormSubmissionLog
from app.engine.forms import FORMS_DIR

HONEYPOT_FIELD = "site_web"
DEFAULT_MAX_BYTES = 5 * 1024 * 1024


class TooManySubmissions(MissiveError):
    status = 429
    kind = "too-many-requests"


def public_forms() -> dict[str, dict]:
    """The public forms by key (file stem), in title order."""
    found = {}
    for path in sorted(FORMS_DIR.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(schema.get("x-public"), dict):
            found[path.stem] = schema
    return dict(sorted(found.items(), key=lambda item: item[1].get("title", item[0])))


def get_public_form(key: str) -> dict:
    """One public form's schema."""
    form = public_forms().get(key)
    if form is None:
        raise NotFound("Ce formulaire n'existe pas.")
    return form


def client_key(address: str | None) -> str:
    """A pseudonymous key for the sender's address (the address itself is not kept)."""
    secret = current_app.config["SECRET_KEY"]
    return hashlib.sha256(f"{secret}|{address or '-'}".encode()).hexdigest()[:64]


def _check_rate(key: str, form_key: str) -> None:
    limit = int(current_app.config.get("MISSIVE_FORM_RATE_LIMIT", 5))
    window = int(current_app.config.get("MISSIVE_FORM_RATE_WINDOW", 3600))
    since = utcnow() - timedelta(seconds=window)
    recent = db.session.scalar(
        select(func.count())
        .select_from(FormSubmissionLog)
        .where(FormSubmissionLog.client_key == key, FormSubmissionLog.at >= since)
    )
    if recent >= limit:
        raise TooManySubmissions(
            "Trop de demandes envoyées depuis votre connexion : réessayez dans une heure, "
            "ou écrivez-nous par courrier."
        )


def _log(key: str, form_key: str, accepted: bool) -> None:
    db.session.add(FormSubmissionLog(client_key=key, form_key=form_key, accepted=accepted))
    db.session.commit()


def _data_schema(schema: dict, file_fields: set[str]) -> dict:
    """The schema of the typed answers (file fields are checked apart)."""
    reduced = dict(schema)
    reduced["properties"] = {
        k: v for k, v in schema.get("properties", {}).items() if k not in file_fields
    }
    reduced["required"] = [r for r in schema.get("required", []) if r not in file_fields]
    return {k: v for k, v in reduced.items() if not k.startswith("x-")}


def _file_fields(schema: dict) -> set[str]:
    fields = set()
    for name, prop in schema.get("properties", {}).items():
        items = prop.get("items") or {}
        if prop.get("format") == "binary" or items.get("format") == "binary":
            fields.add(name)
    return fields


def _subject(template: str, data: dict) -> str:
    values = {k: v for k, v in data.items() if isinstance(v, str | int | float)}
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    return template.format(**{n: values.get(n, "") for n in names})[:500]


def submit(key: str, form: MultiDict, uploads: MultiDict, address: str | None) -> Correspondence:
    """Register a public form submission; raises ValidationFailed with field errors."""
    schema = get_public_form(key)
    public = schema["x-public"]
    who = client_key(address)
    _check_rate(who, key)
    if (form.get(HONEYPOT_FIELD) or "").strip():
        _log(who, key, accepted=False)
        raise ValidationFailed(
            "Votre demande n'a pas pu être enregistrée.",
            errors=[{"field": HONEYPOT_FIELD, "message": "Champ à laisser vide."}],
        )
    file_fields = _file_fields(schema)
    data, chosen = parse_submission(schema, form, uploads)
    errors = schema_errors(data, _data_schema(schema, file_fields))
    incoming: list[services.IncomingFile] = []
    for name in sorted(file_fields):
        rules = (public.get("files") or {}).get(name, {})
        prop = schema["properties"][name]
        storages = chosen.get(name, [])
        if not storages and name in schema.get("required", []):
            errors.append({"field": name, "message": "Ce champ est obligatoire."})
        limit = prop.get("maxItems") or (1 if prop.get("type") != "array" else 10)
        if len(storages) > limit:
            errors.append({"field": name, "message": f"Au plus {limit} fichier(s)."})
            continue
        for storage in storages:
            content = storage.read()
            try:
                mime = filetypes.check_upload(
                    content,
                    storage.filename,
                    allowed=set(rules.get("types") or filetypes.DOCUMENT_TYPES),
                    max_bytes=int(rules.get("max_bytes") or DEFAULT_MAX_BYTES),
                    field=name,
                )
            except MissiveError as error:
                errors.extend(error.errors)
                continue
            incoming.append(services.IncomingFile(storage.filename, mime, content, role="original"))
    if errors:
        _log(who, key, accepted=False)
        raise ValidationFailed("Le formulaire contient des erreurs.", errors=errors)
    sender = resolve_sender(data={k: data[k] for k in SENDER_FIELDS if data.get(k)}).contact
    summary_field = public.get("summary")
    case = services.register_case(
        services.Intake(
            channel=Channel.WEB,
            subject=_subject(public.get("subject") or schema.get("title", key), data),
            type_code=public.get("type"),
            sender=sender,
            summary=data.get(summary_field) if summary_field else None,
            data={"form_key": key, "form": data},
            files=incoming,
        ),
        None,
    )
    _log(who, key, accepted=True)
    from app.correspondence.tasks import confirmation_job

    if data.get("email"):
        confirmation_job(case.id)
    return case


def confirmation_text(case: Correspondence) -> tuple[str, str]:
    """Subject and body of the e-mail confirming a submission to the requester."""
    from flask_babel import format_datetime

    when = format_datetime(case.received_at, "dd/MM/yyyy à HH:mm")
    subject = f"Votre demande est enregistrée sous le n° {case.chrono}"
    body = (
        "Bonjour,\n\n"
        f"Votre demande « {case.subject} » a bien été reçue le {when}.\n"
        f"Elle est enregistrée sous le numéro {case.chrono} : rappelez-le dans vos échanges "
        "avec nos services.\n\n"
        "Ce message est une confirmation automatique de réception ; il n'appelle pas de "
        "réponse. Un accusé de réception précisant le service chargé de votre demande et "
        "le délai de réponse vous sera adressé.\n\n"
        "Le Département\n"
    )
    return subject, body
