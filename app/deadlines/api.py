"""API: the clocks of a case, missing documents (suspension of the legal clock), and the
accusé de réception."""

from __future__ import annotations

from datetime import date

from flask import jsonify
from flask_login import current_user

from app.api import api_route, spec
from app.core.errors import ValidationFailed
from app.correspondence import services as intake
from app.correspondence.models import Correspondence
from app.deadlines import services
from app.deadlines.calendar import local_day

DEADLINES_SCHEMA = spec.schema(
    "CaseDeadlines",
    {
        "type": "object",
        "properties": {
            "chrono": {"type": "string"},
            "received_on": {"type": "string", "format": "date"},
            "legal_start_on": {"type": "string", "format": "date"},
            "due_on": {"type": "string", "format": "date"},
            "target_days": {"type": "integer"},
            "reminder_at": {"type": ["string", "null"], "format": "date-time"},
            "implicit_decision": {"type": "string", "enum": ["acceptance", "rejection", "none"]},
            "implicit_decision_on": {"type": ["string", "null"], "format": "date"},
            "suspended": {"type": "boolean"},
            "suspensions": {"type": "array", "items": {"type": "object"}},
            "acknowledgement": {"type": "object"},
        },
        "required": ["chrono", "due_on", "implicit_decision", "acknowledgement"],
    },
)
MISSING_SCHEMA = spec.schema(
    "MissingDocumentsRequest",
    {
        "type": "object",
        "properties": {
            "missing_documents": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 300},
                "minItems": 1,
                "maxItems": 50,
            },
            "documents_due_on": {"type": "string", "format": "date"},
        },
        "required": ["missing_documents", "documents_due_on"],
        "additionalProperties": False,
    },
)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def deadlines_json(case: Correspondence) -> dict:
    """The clocks of a case as the API shows them."""
    clock = services.clock_of(case)
    return {
        "chrono": case.chrono,
        "received_on": _iso(local_day(case.received_at)),
        "legal_start_on": _iso(local_day(case.legal_start_at)),
        "due_on": _iso(local_day(case.due_at)),
        "target_days": clock.target_days,
        "reminder_at": _iso(clock.reminder_at),
        "implicit_decision": clock.implicit_decision,
        "implicit_decision_on": _iso(clock.implicit_decision_on),
        "suspended": clock.open_suspension is not None,
        "suspensions": [
            {
                "missing_documents": s.missing_documents,
                "documents_due_on": _iso(s.documents_due_on),
                "requested_at": _iso(s.requested_at),
                "resumed_at": _iso(s.resumed_at),
            }
            for s in clock.suspensions
        ],
        "acknowledgement": {
            "required": clock.acknowledge,
            "status": clock.ack_status,
            "due_at": _iso(clock.ack_due_at),
            "delivery": clock.ack_delivery,
            "document_id": clock.ack_document_id,
            "generated_at": _iso(clock.ack_generated_at),
            "sent_at": _iso(clock.ack_sent_at),
            "error": clock.ack_error,
        },
    }


@api_route(
    "/correspondences/<int:case_id>/deadlines",
    "GET",
    summary="Délais d'un courrier",
    description="Échéance de réponse (jours ouvrés), délai légal (décision implicite), "
    "suspensions pour pièces manquantes, accusé de réception.",
    tag="Délais",
    responses={200: DEADLINES_SCHEMA, 404: None, 409: None},
)
def get_deadlines(case_id):
    return jsonify(deadlines_json(intake.get_case(case_id, current_user)))


@api_route(
    "/correspondences/<int:case_id>/missing-documents",
    "POST",
    summary="Demander des pièces manquantes",
    description="Suspend le délai légal jusqu'à leur réception (CRPA L114-5).",
    tag="Délais",
    body=MISSING_SCHEMA,
    responses={200: DEADLINES_SCHEMA, 403: None, 404: None, 409: None, 422: None},
)
def request_missing_documents(case_id, body):
    case = intake.get_case(case_id, current_user)
    try:
        due_on = date.fromisoformat(body["documents_due_on"])
    except ValueError as exc:
        raise ValidationFailed(
            "Date invalide.",
            errors=[{"field": "documents_due_on", "message": "Date AAAA-MM-JJ attendue."}],
        ) from exc
    services.request_missing_documents(case, body["missing_documents"], due_on, current_user)
    return jsonify(deadlines_json(case))


@api_route(
    "/correspondences/<int:case_id>/missing-documents/received",
    "POST",
    summary="Enregistrer la réception des pièces",
    description="Le délai légal reprend.",
    tag="Délais",
    responses={200: DEADLINES_SCHEMA, 403: None, 404: None, 409: None},
)
def documents_received(case_id):
    case = intake.get_case(case_id, current_user)
    services.record_documents_received(case, current_user)
    return jsonify(deadlines_json(case))


@api_route(
    "/correspondences/<int:case_id>/acknowledgement",
    "POST",
    summary="Établir l'accusé de réception",
    description="Génère le PDF (refusé avec la liste des mentions manquantes), le garde "
    "comme document du courrier et l'envoie par courriel ou le met dans le lot papier.",
    tag="Délais",
    responses={201: DEADLINES_SCHEMA, 403: None, 404: None, 409: None, 422: None},
)
def acknowledge(case_id):
    case = intake.get_case(case_id, current_user)
    services.acknowledge_case(case, current_user)
    response = jsonify(deadlines_json(case))
    response.status_code = 201
    return response
