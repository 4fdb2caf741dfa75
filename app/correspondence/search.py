"""Full-text search of the registry: PostgreSQL (French configuration) or SQLite FTS5.

The searchable text of a case gathers its number, subject, summary, sender, type, the
answers of a web form, e-mail bodies and the text of its documents (OCR included).
"""

from __future__ import annotations

import re

from sqlalchemy import Integer, column, func, select, text

from app.core.db import is_postgresql
from app.core.extensions import db
from app.correspondence.models import CaseSearch, Correspondence

_WORD = re.compile(r"\w+", re.UNICODE)
CHRONO_RE = re.compile(r"\b(\d{4})-([A-Z])-(\d{6})\b")
MAX_CONTENT = 1_000_000
_INSERT_PG = text(
    "INSERT INTO case_search (correspondence_id, content, vector) "
    "VALUES (:id, :content, to_tsvector('french', :content))"
)
_INSERT_SQLITE = text(
    "INSERT INTO case_search (correspondence_id, content, vector) VALUES (:id, :content, NULL)"
)


def case_text(case: Correspondence, extra: list[str] | None = None) -> str:
    """The text a search should find the case by."""
    parts: list[str] = [case.chrono, case.subject or "", case.summary or ""]
    if case.case_type is not None:
        parts.append(case.case_type.label)
    if case.sender is not None:
        sender = case.sender
        parts += [sender.display_name, sender.email or "", sender.city or ""]
        parts.append(sender.postal_code or "")
    for value in (case.data or {}).get("form", {}).values():
        if isinstance(value, str | int | float):
            parts.append(str(value))
    for link in case.attachments:
        if link.document.text:
            parts.append(link.document.text)
    parts += extra or []
    return "\n".join(p for p in parts if p)[:MAX_CONTENT]


def index_case(case: Correspondence, extra: list[str] | None = None, new: bool = False) -> None:
    """(Re)index a case in the caller's transaction (``new``: never indexed yet)."""
    if new:
        index_new_cases([(case, extra)])
        return
    content = case_text(case, extra)
    row = db.session.get(CaseSearch, case.id)
    if row is None:
        row = CaseSearch(correspondence_id=case.id, content=content)
        db.session.add(row)
    else:
        row.content = content
    db.session.flush()
    _refresh(case.id, content)


def index_new_cases(cases: list[tuple[Correspondence, list[str] | None]]) -> None:
    """Index cases never indexed yet, each with its extra text, in the caller's transaction:
    plain statements, one per table for them all (the hot path of a batch of e-mails)."""
    if not cases:
        return
    rows = [{"id": case.id, "content": case_text(case, extra)} for case, extra in cases]
    with db.session.no_autoflush:  # the caller flushed the cases; its pending rows wait
        if is_postgresql():
            db.session.execute(_INSERT_PG, rows)
            return
        db.session.execute(_INSERT_SQLITE, rows)
        db.session.execute(text("DELETE FROM correspondence_fts WHERE rowid = :id"), rows)
        db.session.execute(
            text("INSERT INTO correspondence_fts (rowid, content) VALUES (:id, :content)"), rows
        )


def append_text(case: Correspondence, more: str) -> None:
    """Add text to what a case is found by (an OCR result, a reply), in the caller's
    transaction."""
    row = db.session.get(CaseSearch, case.id)
    if row is None:
        index_case(case, extra=[more])
        return
    row.content = (row.content + "\n" + more)[:MAX_CONTENT]
    db.session.flush()
    _refresh(case.id, row.content)


def forget(case_id: int) -> None:
    """Remove a case from the index (it is being deleted), in the caller's transaction."""
    db.session.execute(
        text("DELETE FROM case_search WHERE correspondence_id = :id"), {"id": case_id}
    )
    if not is_postgresql():
        db.session.execute(
            text("DELETE FROM correspondence_fts WHERE rowid = :id"), {"id": case_id}
        )


def _refresh(case_id: int, content: str) -> None:
    if is_postgresql():
        db.session.execute(
            text(
                "UPDATE case_search SET vector = to_tsvector('french', content) "
                "WHERE correspondence_id = :id"
            ),
            {"id": case_id},
        )
        return
    db.session.execute(text("DELETE FROM correspondence_fts WHERE rowid = :id"), {"id": case_id})
    db.session.execute(
        text("INSERT INTO correspondence_fts (rowid, content) VALUES (:id, :content)"),
        {"id": case_id, "content": content},
    )


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word[-1] in "sxSX" else word


def matching(query: str):
    """A condition on ``Correspondence`` selecting the cases a free-text query finds."""
    query = (query or "").strip()
    chrono = CHRONO_RE.search(query)
    if chrono and chrono.group(0) == query:
        return Correspondence.chrono == query
    if is_postgresql():
        ids = select(CaseSearch.correspondence_id).where(
            CaseSearch.vector.op("@@")(func.websearch_to_tsquery("french", query))
        )
        return Correspondence.id.in_(ids)
    words = _WORD.findall(query)
    if not words:
        return Correspondence.id.is_(None)
    # FTS5 has no French stemmer: a plural ending is dropped and every word is a prefix.
    fts_query = " ".join(f'"{_singular(w)}"*' for w in words)
    ids = (
        text("SELECT rowid FROM correspondence_fts WHERE correspondence_fts MATCH :q")
        .bindparams(q=fts_query)
        .columns(column("rowid", Integer))
    )
    return Correspondence.id.in_(ids)
