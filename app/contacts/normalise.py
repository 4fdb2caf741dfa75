"""Text folding and name similarity shared by search, duplicate detection and matching.

``fold`` is the one normaliser: stored search columns, query terms and comparisons all go
through it. PostgreSQL has the same function in SQL (``missive_fold``, built on the
``unaccent`` extension by the migration) and SQLite gets it registered on every connection,
so ad hoc SQL and data migrations fold text exactly like the application does.
"""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz import fuzz
from sqlalchemy import event
from sqlalchemy.engine import Engine

# Letters NFKD does not decompose; unaccent maps them the same way.
_SPECIAL = str.maketrans(
    {
        "œ": "oe",
        "Œ": "OE",
        "æ": "ae",
        "Æ": "AE",
        "ß": "ss",
        "ø": "o",
        "Ø": "O",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "TH",
        "ı": "i",
    }
)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def fold(text: str | None) -> str:
    """Lower-case, accent-free, punctuation-free form: « L'Haÿ-les-Roses » → « l hay les roses »."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_ALNUM.sub(" ", stripped.lower()).strip()


def digits(text: str | None) -> str:
    """Only the digits of a text (phone numbers, SIRET typed with spaces)."""
    return re.sub(r"\D+", "", text or "")


def name_similarity(a: str | None, b: str | None) -> float:
    """Similarity of two names between 0 and 1, tolerant of typos and of word order."""
    left, right = fold(a), fold(b)
    if not left or not right:
        return 0.0
    return fuzz.token_sort_ratio(left, right) / 100.0


def word_similarity(a: str | None, b: str | None) -> float:
    """Similarity of two folded words (normalised Indel distance), 0 to 1."""
    if not a or not b:
        return 0.0
    return fuzz.ratio(a, b) / 100.0


def search_words(search_name: str) -> set[str]:
    """The words of a folded name that go to the search dictionary."""
    return {w for w in search_name.split() if len(w) >= 2}


@event.listens_for(Engine, "connect")
def _register_sqlite_functions(dbapi_connection, connection_record):
    if not type(dbapi_connection).__module__.startswith("sqlite3"):
        return
    dbapi_connection.create_function("missive_fold", 1, fold, deterministic=True)
    dbapi_connection.create_function("missive_ratio", 2, word_similarity, deterministic=True)
