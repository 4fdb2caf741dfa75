"""API: the service-quality indicators the caller may see."""

from __future__ import annotations

from flask import jsonify
from flask_login import current_user

from app.api import api_route, spec
from app.stats import services

INDICATORS_SCHEMA = spec.schema(
    "QualityIndicators",
    {
        "type": "object",
        "properties": {
            "from": {"type": "string", "format": "date"},
            "to": {"type": "string", "format": "date"},
            "group_by": {"type": "string"},
            "rows": {"type": "array", "items": {"type": "object"}},
            "total": {"type": "object"},
        },
        "required": ["from", "to", "group_by", "rows", "total"],
    },
)


@api_route(
    "/stats/indicators",
    "GET",
    summary="Indicateurs de qualité de service",
    description="Volumes, accusés de réception et réponses dans les délais, délais médian et "
    "90e centile en jours ouvrés, stock et retards — pour les services visibles par "
    "l'appelant.",
    tag="Qualité de service",
    query={
        "from": {"schema": {"type": "string", "format": "date"}},
        "to": {"schema": {"type": "string", "format": "date"}},
        "group_by": {
            "schema": {"type": "string", "enum": list(services.DIMENSIONS)},
        },
        "service": {"schema": {"type": "string"}},
        "channel": {"schema": {"type": "string"}},
        "type": {"schema": {"type": "string"}},
    },
    responses={200: INDICATORS_SCHEMA, 403: None, 422: None},
)
def indicators(query):
    period = services.parse_period(query.get("from"), query.get("to"))
    service = query.get("service")
    report = services.report(
        current_user,
        period,
        query.get("group_by") or "service",
        service=int(service) if service and service.isdigit() else None,
        channel=query.get("channel"),
        type_code=query.get("type"),
    )
    return jsonify(
        {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "group_by": report.dimension,
            "rows": [row.as_dict() for row in report.rows],
            "total": report.total.as_dict(),
        }
    )
