"""JSON Schema forms: fields in order, typed parsing, rendering with French errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flask import render_template_string
from werkzeug.datastructures import MultiDict

from app.core.jsonforms import errors_by_field, form_fields, parse_submission
from app.core.validation import schema_errors

VISA = json.loads((Path(__file__).parents[1] / "forms" / "visa.json").read_text())
SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {"type": "number", "title": "Montant", "minimum": 0},
        "count": {"type": "integer", "title": "Nombre"},
        "urgent": {"type": "boolean", "title": "Urgent"},
        "topics": {
            "type": "array",
            "title": "Thèmes",
            "items": {"type": "string", "enum": ["routes", "colleges"]},
        },
        "cv": {"type": "string", "format": "binary", "title": "CV"},
        "name": {"type": "string", "title": "Nom"},
    },
    "required": ["name"],
    "x-ui": {"order": ["name", "amount"]},
}


def test_fields_follow_the_ui_order_then_declaration_order():
    assert [f.name for f in form_fields(SCHEMA)] == [
        "name",
        "amount",
        "count",
        "urgent",
        "topics",
        "cv",
    ]


def test_visa_form_renders_a_radio_choice_with_french_labels():
    decision = form_fields(VISA)[0]
    assert decision.kind == "radio"
    assert ("reject", "Refuser et renvoyer au rédacteur") in decision.options
    assert form_fields(VISA)[1].kind == "textarea"


def test_submission_is_parsed_into_typed_values():
    form = MultiDict(
        [
            ("name", " Dupont "),
            ("amount", "1 234,50"),
            ("count", "3"),
            ("topics", "routes"),
            ("topics", "colleges"),
        ]
    )
    data, uploads = parse_submission(SCHEMA, form)
    assert data == {
        "name": "Dupont",
        "amount": 1234.5,
        "count": 3,
        "urgent": False,
        "topics": ["routes", "colleges"],
    }
    assert uploads == {}


def test_a_non_number_is_kept_for_the_validator_to_refuse():
    data, _ = parse_submission(SCHEMA, MultiDict([("name", "x"), ("amount", "beaucoup")]))
    assert schema_errors(data, SCHEMA)[0]["field"] == "amount"


def test_rendered_fields_show_french_errors_next_to_the_field(app):
    errors = errors_by_field(schema_errors({"decision": "reject"}, VISA))
    with app.test_request_context():
        html = render_template_string(
            '{% from "macros/jsonform.html" import json_fields %}'
            "{{ json_fields(fields, values, errors) }}",
            fields=form_fields(VISA),
            values={"decision": "reject"},
            errors=errors,
        )
    assert re.search(r'value="reject"\s+checked', html)
    assert not re.search(r'value="approve"\s+checked', html)
    assert "Ce champ est obligatoire." in html
    assert 'aria-invalid="true"' in html
