"""Keyset (cursor) pagination for API lists: ``{"items": [...], "next_cursor": ...}``."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Select, and_, or_

from app.core.errors import ValidationFailed
from app.core.extensions import db

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode_cursor(values: Sequence[Any]) -> str:
    """Encode the sort-key values of the last row into an opaque cursor."""
    raw = json.dumps(list(values), default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """Decode a cursor; a tampered or foreign one is a 422 on the ``cursor`` field."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list):
            raise ValueError
        return values
    except ValueError as exc:
        raise ValidationFailed(
            "Curseur de pagination invalide.",
            errors=[{"field": "cursor", "message": "Curseur invalide."}],
        ) from exc


def parse_limit(raw: str | None) -> int:
    """Read the ``limit`` query parameter within bounds."""
    if raw in (None, ""):
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationFailed(
            "Paramètre limit invalide.",
            errors=[{"field": "limit", "message": f"Entier entre 1 et {MAX_LIMIT} attendu."}],
        )
    return value


def keyset_page(
    stmt: Select,
    columns: Sequence[Any],
    *,
    cursor: str | None,
    limit: int,
    descending: bool = False,
    key: Callable[[Any], Sequence[Any]] | None = None,
    convert: Callable[[list[Any]], list[Any]] | None = None,
) -> tuple[list[Any], str | None]:
    """Return one page of ``stmt`` ordered by ``columns`` (last one unique) and the next cursor.

    ``key`` extracts the sort values from a row (default: the attributes named like the
    columns); ``convert`` turns decoded cursor values back into column types.
    """
    if cursor:
        values = decode_cursor(cursor)
        if len(values) != len(columns):
            raise ValidationFailed(
                "Curseur de pagination invalide.",
                errors=[{"field": "cursor", "message": "Curseur invalide."}],
            )
        if convert:
            values = convert(values)
        stmt = stmt.where(after(columns, values, descending))
    order = [c.desc() if descending else c.asc() for c in columns]
    rows = list(db.session.execute(stmt.order_by(*order).limit(limit + 1)).scalars())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        values = key(last) if key else [getattr(last, c.key) for c in columns]
        next_cursor = encode_cursor(values)
    return rows, next_cursor


def after(columns: Sequence[Any], values: Sequence[Any], descending: bool = False):
    """Row-value comparison ``(a, b) > (x, y)`` spelt out for every database."""
    clauses = []
    for i, column in enumerate(columns):
        equal = [columns[j] == values[j] for j in range(i)]
        beyond = column < values[i] if descending else column > values[i]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)
