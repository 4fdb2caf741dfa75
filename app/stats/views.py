"""The service-quality dashboard (``/stats``), its exports, and the public open-data file."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from app.core.navigation import register_nav
from app.correspondence.models import CHANNEL_LABELS, Channel
from app.correspondence.services import list_case_types
from app.stats import charts, exports, services

bp = Blueprint("stats", __name__, template_folder="templates")
register_nav(_l("Tableau de bord"), "stats.index", order=30)


def _filters() -> dict:
    args = request.args
    service = args.get("service") or None
    return {
        "service": int(service) if service and service.isdigit() else None,
        "channel": args.get("channel") or None,
        "type_code": args.get("type") or None,
    }


def _report():
    period = services.parse_period(request.args.get("from"), request.args.get("to"))
    dimension = request.args.get("group_by") or "service"
    filters = _filters()
    return services.report(current_user, period, dimension, **filters), filters


@bp.get("/stats")
@login_required
def index():
    report, filters = _report()
    backlog, overdue = services.case_lists(current_user, report.period, **filters)
    dimension = _(services.DIMENSIONS[report.dimension]).lower()
    return render_template(
        "stats/index.html",
        report=report,
        filters=filters,
        backlog=backlog,
        overdue=overdue,
        rates_chart=charts.rates_chart(
            report.rows, _("Taux par %(dimension)s — courriers reçus", dimension=dimension)
        ),
        volumes_chart=charts.volumes_chart(
            report.rows, _("Volumes par %(dimension)s — courriers reçus", dimension=dimension)
        ),
        units=services.visible_units(current_user),
        case_types=list_case_types(active_only=False),
        channels=[(c.value, CHANNEL_LABELS[c]) for c in Channel],
        dimensions=services.DIMENSIONS,
        query=request.query_string.decode(),
    )


def _download(body, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/stats/export.csv")
@login_required
def export_csv():
    report = _report()[0]
    name = f"indicateurs-{report.dimension}-{report.period.start}-{report.period.end}.csv"
    return _download(exports.indicators_csv(report), "text/csv; charset=utf-8", name)


@bp.get("/stats/export.xlsx")
@login_required
def export_xlsx():
    report, filters = _report()
    _backlog, overdue = services.case_lists(current_user, report.period, **filters)
    name = f"indicateurs-{report.dimension}-{report.period.start}-{report.period.end}.xlsx"
    return _download(
        exports.indicators_xlsx(report, overdue),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        name,
    )


@bp.get("/donnees-ouvertes/indicateurs.csv")
def open_data_csv():
    response = _download(
        exports.open_data_csv(services.open_data()),
        "text/csv; charset=utf-8",
        "indicateurs-qualite-de-service.csv",
    )
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.get("/donnees-ouvertes/indicateurs.json")
def open_data_json():
    response = jsonify(
        {
            "description": "Indicateurs de qualité de service (charte Marianne) par mois et "
            "par service : courriers reçus, accusés de réception et réponses dans les délais, "
            "délais en jours ouvrés. Aucune donnée personnelle.",
            "licence": "Licence Ouverte / Open Licence 2.0",
            "champs": exports.OPEN_DATA_COLUMNS,
            "donnees": services.open_data(),
        }
    )
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
