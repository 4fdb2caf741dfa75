"""The one data validator: JSON Schema (2020-12) with messages in French.

Used for API bodies, task forms (``formKey``) and public web forms alike.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.core.errors import ValidationFailed

format_checker = FormatChecker()
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@format_checker.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or bool(_EMAIL_RE.match(value))


@format_checker.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if isinstance(value, str):
        date.fromisoformat(value)
    return True


@format_checker.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if isinstance(value, str):
        if "T" not in value and " " not in value:
            raise ValueError("no time part")
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _field_path(error) -> str:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        if missing:
            path.append(missing[0])
    if error.validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", error.message)
        if extra:
            path.append(extra[0])
    return ".".join(path) or "(racine)"


def _message(error) -> str:
    v, expected = error.validator, error.validator_value
    custom = (error.schema or {}).get("errorMessage") if isinstance(error.schema, dict) else None
    if isinstance(custom, str):
        return custom
    if isinstance(custom, dict) and v in custom:
        return custom[v]
    type_names = {
        "string": "un texte",
        "integer": "un nombre entier",
        "number": "un nombre",
        "boolean": "vrai ou faux",
        "object": "un objet",
        "array": "une liste",
        "null": "une valeur vide",
    }
    formats = {
        "email": "une adresse électronique valide",
        "date": "une date (AAAA-MM-JJ)",
        "date-time": "une date et une heure",
    }
    match v:
        case "required":
            return "Ce champ est obligatoire."
        case "type":
            names = expected if isinstance(expected, list) else [expected]
            return "Valeur attendue : " + " ou ".join(type_names.get(n, n) for n in names) + "."
        case "enum":
            return (
                "Valeur non autorisée ; choix possibles : "
                + ", ".join(str(x) for x in expected)
                + "."
            )
        case "const":
            return f"La valeur doit être « {expected} »."
        case "minLength":
            return (
                "Ce champ est obligatoire." if expected == 1 else f"Au moins {expected} caractères."
            )
        case "maxLength":
            return f"Au plus {expected} caractères."
        case "minimum":
            return f"La valeur doit être supérieure ou égale à {expected}."
        case "maximum":
            return f"La valeur doit être inférieure ou égale à {expected}."
        case "exclusiveMinimum":
            return f"La valeur doit être strictement supérieure à {expected}."
        case "exclusiveMaximum":
            return f"La valeur doit être strictement inférieure à {expected}."
        case "pattern":
            return "Le format de ce champ n'est pas valide."
        case "format":
            return "Valeur attendue : " + formats.get(expected, f"format {expected}") + "."
        case "minItems":
            return f"Au moins {expected} élément(s)."
        case "maxItems":
            return f"Au plus {expected} élément(s)."
        case "additionalProperties":
            return "Champ non prévu."
        case "uniqueItems":
            return "Les éléments doivent être distincts."
        case _:
            return "Valeur invalide."


def compile_schema(schema: dict, registry: Registry | None = None) -> Draft202012Validator:
    """A validator for ``schema``, to keep when the same schema checks data again and again."""
    return Draft202012Validator(
        schema, registry=registry or Registry(), format_checker=format_checker
    )


def schema_errors(
    data: Any, schema: dict | Draft202012Validator, registry: Registry | None = None
) -> list[dict]:
    """Return ``[{"field", "message"}]`` for every way ``data`` breaks ``schema``
    (a schema, or a validator from ``compile_schema``)."""
    if isinstance(schema, Draft202012Validator):
        validator = schema
    else:
        validator = compile_schema(schema, registry)
    errors = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        if error.validator in ("anyOf", "oneOf", "allOf") and error.context:
            error = min(error.context, key=lambda e: len(list(e.absolute_path)))
        errors.append({"field": _field_path(error), "message": _message(error)})
    return errors


def validate(
    data: Any,
    schema: dict,
    *,
    registry: Registry | None = None,
    detail: str = "Les données envoyées ne sont pas valides.",
) -> Any:
    """Return ``data`` when it matches ``schema``; raise ValidationFailed (422) otherwise."""
    errors = schema_errors(data, schema, registry)
    if errors:
        raise ValidationFailed(detail, errors=errors)
    return data


def registry_for(resources: dict[str, dict]) -> Registry:
    """Return a reference registry resolving ``uri → schema``."""
    return Registry().with_resources(
        (uri, Resource.from_contents(doc, default_specification=DRAFT202012))
        for uri, doc in resources.items()
    )
