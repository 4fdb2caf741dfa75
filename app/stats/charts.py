"""Server-rendered SVG charts of the dashboard (no JavaScript; the tables carry the same
figures for screen readers)."""

from __future__ import annotations

from flask_babel import gettext as _
from markupsafe import Markup, escape

from app.stats.services import Indicators

ROW_HEIGHT = 34
LABEL_WIDTH = 230
BAR_WIDTH = 360
COLOURS = {"ack": "#000091", "answer": "#18753c", "volume": "#6a6af4"}


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %".replace(".", ",")


def rates_chart(rows: list[Indicators], title: str) -> Markup:
    """Two bars per group: share acknowledged in time, share answered in time."""
    height = 30 + ROW_HEIGHT * len(rows)
    width = LABEL_WIDTH + BAR_WIDTH + 70
    ack_legend = escape(_("accusés dans les délais"))
    answer_legend = escape(_("réponses dans le délai"))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" aria-labelledby="chart-rates-title">',
        f'<title id="chart-rates-title">{escape(title)}</title>',
        f'<rect x="{LABEL_WIDTH}" y="4" width="10" height="10" fill="{COLOURS["ack"]}"/>'
        f'<text x="{LABEL_WIDTH + 14}" y="13" class="chart__legend">{ack_legend}</text>',
        f'<rect x="{LABEL_WIDTH + 190}" y="4" width="10" height="10" fill="{COLOURS["answer"]}"/>'
        f'<text x="{LABEL_WIDTH + 204}" y="13" class="chart__legend">{answer_legend}</text>',
    ]
    for index, row in enumerate(rows):
        y = 24 + index * ROW_HEIGHT
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 17}" text-anchor="end" class="chart__label">'
            f"{escape(row.label[:34])}</text>"
        )
        for offset, (kind, value) in enumerate(
            (("ack", row.ack_rate), ("answer", row.answer_rate))
        ):
            bar_y = y + 2 + offset * 14
            length = round(BAR_WIDTH * (value or 0))
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{bar_y}" width="{BAR_WIDTH}" height="12" '
                f'fill="#eee"/><rect x="{LABEL_WIDTH}" y="{bar_y}" width="{length}" '
                f'height="12" fill="{COLOURS[kind]}"/>'
                f'<text x="{LABEL_WIDTH + BAR_WIDTH + 6}" y="{bar_y + 10}" class="chart__value">'
                f"{_percent(value)}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (labels are escaped, numbers are ours)


def volumes_chart(rows: list[Indicators], title: str) -> Markup:
    """One bar per group: cases received, with the overdue ones in the backlog."""
    height = 10 + ROW_HEIGHT * len(rows)
    width = LABEL_WIDTH + BAR_WIDTH + 140
    top = max([r.volume for r in rows] + [1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" aria-labelledby="chart-volumes-title">',
        f'<title id="chart-volumes-title">{escape(title)}</title>',
    ]
    for index, row in enumerate(rows):
        y = 6 + index * ROW_HEIGHT
        length = round(BAR_WIDTH * row.volume / top)
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end" class="chart__label">'
            f"{escape(row.label[:34])}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y + 3}" width="{length}" height="16" '
            f'fill="{COLOURS["volume"]}"/>'
            f'<text x="{LABEL_WIDTH + length + 6}" y="{y + 15}" class="chart__value">'
            + escape(_("%(n)s reçus · %(late)s en retard", n=row.volume, late=row.overdue))
            + "</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (labels are escaped, numbers are ours)
