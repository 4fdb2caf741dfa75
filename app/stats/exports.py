"""Exports of the dashboard: CSV and XLSX (openpyxl) of the indicators and the overdue
list, and the open-data file."""

from __future__ import annotations

import csv
import io

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from app.correspondence.models import Correspondence
from app.deadlines.calendar import local_day
from app.stats.services import DIMENSIONS, Indicators, Report

COLUMNS = [
    ("label", None),
    ("volume", "Reçus"),
    ("ack_measured", "Accusés dus"),
    ("ack_in_time", "Accusés dans les délais"),
    ("ack_rate", "Taux d'accusés dans les délais"),
    ("answers_measured", "Réponses dues"),
    ("answered_in_time", "Réponses dans le délai"),
    ("answer_rate", "Taux de réponses dans le délai"),
    ("closed", "Clos"),
    ("median_delay", "Délai médian (jours ouvrés)"),
    ("p90_delay", "Délai 90e centile (jours ouvrés)"),
    ("backlog", "Stock"),
    ("overdue", "En retard"),
]
OPEN_DATA_COLUMNS = [
    "periode",
    "code_service",
    "service",
    "volume",
    "accuses_mesures",
    "accuses_dans_les_delais",
    "taux_accuses_dans_les_delais",
    "reponses_mesurees",
    "reponses_dans_le_delai",
    "taux_reponses_dans_le_delai",
    "delai_median_jours_ouvres",
    "delai_90e_centile_jours_ouvres",
]


def _header(report: Report) -> list[str]:
    return [DIMENSIONS[report.dimension]] + [title for _, title in COLUMNS[1:]]


def _values(row: Indicators) -> list:
    figures = row.as_dict()
    return [figures[key] for key, _ in COLUMNS]


def indicators_csv(report: Report) -> str:
    """The indicators, one line per group and the total (semicolons, for French Excel)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(_header(report))
    for row in [*report.rows, report.total]:
        writer.writerow(["" if v is None else _french_number(v) for v in _values(row)])
    return "\ufeff" + out.getvalue()


def _french_number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}".replace(".", ",")
    return str(value)


def indicators_xlsx(report: Report, overdue: list[Correspondence]) -> bytes:
    """A workbook: the indicators, then the overdue cases."""
    book = Workbook()
    sheet = book.active
    sheet.title = "Indicateurs"
    period = f"du {report.period.start:%d/%m/%Y} au {report.period.end:%d/%m/%Y}"
    sheet.append([f"Indicateurs de qualité de service, courriers reçus {period}"])
    sheet["A1"].font = Font(bold=True)
    sheet.append(_header(report))
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for row in [*report.rows, report.total]:
        sheet.append(_values(row))
    for column in (5, 8):
        for cell in sheet.iter_rows(min_row=3, min_col=column, max_col=column):
            cell[0].number_format = "0 %"
    for index, width in enumerate([34] + [14] * (len(COLUMNS) - 1), start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    late = book.create_sheet("En retard")
    late.append(["N° chrono", "Objet", "Service", "Reçu le", "Échéance"])
    for cell in late[1]:
        cell.font = Font(bold=True)
    for case in overdue:
        late.append(
            [
                case.chrono,
                case.subject,
                case.service.name if case.service else case.service_group or "",
                local_day(case.received_at),
                local_day(case.due_at) if case.due_at else None,
            ]
        )
    for row in late.iter_rows(min_row=2, min_col=4, max_col=5):
        for cell in row:
            cell.number_format = "DD/MM/YYYY"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def open_data_csv(rows: list[dict]) -> str:
    """The open-data file (comma-separated, UTF-8, ISO dates, dot decimals)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=OPEN_DATA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
