"""HTML forms from JSON Schema: the one renderer for task forms and public web forms.

A form file is a JSON Schema object whose properties become fields, in the order of
``x-ui.order`` (then declaration order). Hints: ``x-ui.widgets`` (``textarea``, ``radio``,
``checkboxes``, ``hidden``), ``x-labels`` on enums, ``x-ui.help``. Validation stays with
``app.core.validation`` (same schema, same French messages); this module only turns the
schema into fields and a submitted form back into typed data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import FileStorage, MultiDict


@dataclass
class Field:
    name: str
    label: str
    kind: str  # text, email, date, datetime, textarea, number, integer, checkbox,
    #            select, radio, checkboxes, file, hidden
    required: bool = False
    help: str | None = None
    options: list[tuple[str, str]] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    multiple: bool = False


def _options(schema: dict) -> list[tuple[str, str]]:
    labels = schema.get("x-labels") or {}
    return [(str(v), str(labels.get(str(v), v))) for v in schema.get("enum", [])]


def _kind(name: str, schema: dict, widgets: dict) -> str:
    widget = widgets.get(name)
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items") or {}
        if items.get("format") == "binary" or items.get("contentMediaType"):
            return "file"
        return "checkboxes"
    if schema.get("format") == "binary" or schema.get("contentMediaType"):
        return "file"
    if widget in ("textarea", "radio", "hidden"):
        return widget
    if "enum" in schema:
        return "select"
    if kind == "boolean":
        return "checkbox"
    if kind in ("number", "integer"):
        return kind
    return {"email": "email", "date": "date", "date-time": "datetime"}.get(
        schema.get("format"), "text"
    )


def form_fields(schema: dict) -> list[Field]:
    """The fields of a form schema, in display order."""
    properties: dict = schema.get("properties") or {}
    ui = schema.get("x-ui") or {}
    order = [n for n in ui.get("order", []) if n in properties]
    order += [n for n in properties if n not in order]
    required = set(schema.get("required") or [])
    widgets = ui.get("widgets") or {}
    helps = ui.get("help") or {}
    result = []
    for name in order:
        prop = properties[name]
        if prop.get("readOnly"):
            continue
        kind = _kind(name, prop, widgets)
        attributes: dict[str, Any] = {}
        for key, attr in (
            ("minLength", "minlength"),
            ("maxLength", "maxlength"),
            ("minimum", "min"),
            ("maximum", "max"),
            ("pattern", "pattern"),
        ):
            if key in prop:
                attributes[attr] = prop[key]
        if kind == "number":
            attributes.setdefault("step", "any")
        options = _options(prop.get("items") or {}) if kind == "checkboxes" else _options(prop)
        result.append(
            Field(
                name=name,
                label=prop.get("title") or name,
                kind=kind,
                required=name in required,
                help=helps.get(name) or prop.get("description"),
                options=options,
                attributes=attributes,
                multiple=kind == "file" and prop.get("type") == "array",
            )
        )
    return result


def parse_submission(
    schema: dict, form: MultiDict, files: MultiDict | None = None
) -> tuple[dict, dict[str, list[FileStorage]]]:
    """Typed data from a submitted HTML form (empty fields left out) and the uploads."""
    data: dict[str, Any] = {}
    uploads: dict[str, list[FileStorage]] = {}
    properties: dict = schema.get("properties") or {}
    for name, prop in properties.items():
        kind = prop.get("type")
        if _kind(name, prop, {}) == "file":
            chosen = [f for f in (files.getlist(name) if files else []) if f and f.filename]
            if chosen:
                uploads[name] = chosen
            continue
        if kind == "array":
            values = [v for v in form.getlist(name) if v != ""]
            if values:
                data[name] = values
            continue
        if kind == "boolean":
            if name in form:
                data[name] = form.get(name) in ("on", "true", "1", "oui", "y")
            elif "enum" not in prop:
                data[name] = False
            continue
        raw = form.get(name)
        if raw is None or raw.strip() == "":
            continue
        raw = raw.strip()
        if kind in ("number", "integer"):
            try:
                number = float(raw.replace(",", ".").replace("\u202f", "").replace(" ", ""))
                data[name] = int(number) if kind == "integer" and number.is_integer() else number
            except ValueError:
                data[name] = raw  # the validator reports it as "a number expected"
            continue
        data[name] = raw
    return data, uploads


def errors_by_field(errors: list[dict] | None) -> dict[str, list[str]]:
    """Group validation errors by field name for the template."""
    grouped: dict[str, list[str]] = {}
    for error in errors or []:
        grouped.setdefault(error.get("field") or "", []).append(error["message"])
    return grouped
