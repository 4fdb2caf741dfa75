"""Finding contacts: one query box for a name, an e-mail, a phone, a SIRET, a postal code.

Results come in tiers — prefix of the name, then the town, then a word of the name, then a
town prefix, then typo-tolerant matches — each tier ordered by name. A page stops as soon as
it is full, so later tiers only run when the earlier ones did not fill it.

Typos are corrected against a dictionary of the words met in names (``contact_search_word``,
a few thousand rows): on PostgreSQL by ``pg_trgm`` similarity on its GIN index, on SQLite
by rapidfuzz over the words sharing the first letter. The contacts are then found by the
corrected words through the name index — never by comparing a million names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Select, and_, func, literal, or_, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from app.contacts.identifiers import RNA_RE, phone_search_key
from app.contacts.models import (
    Contact,
    ContactAddress,
    ContactEmail,
    ContactKind,
    ContactPhone,
    ContactSearchWord,
    ContactStatus,
)
from app.contacts.normalise import digits, fold
from app.core.db import is_postgresql
from app.core.errors import ValidationFailed
from app.core.extensions import db
from app.core.pagination import decode_cursor, encode_cursor

SQLITE_WORD_THRESHOLD = 0.7  # rapidfuzz ratio / 100 between a query word and a known word
# pg_trgm's similarity: 0.45 lets « lefevre » find « lefebvre » (0.55) and « giquel »
# find « gicquel »; the default 0.3 floods the typo tier with unrelated names.
PG_SIMILARITY_THRESHOLD = 0.45
_END = "~"  # sorts after every character of a folded text ([a-z0-9 ])
_POSTAL_TOKEN = re.compile(r"^\d{5}$")


@dataclass
class SearchPage:
    items: list[Contact]
    next_cursor: str | None
    kind: str  # what the query was read as: name, email, phone, siret, siren, rna, postal_code


def _prefix(column, text: str) -> ColumnElement:
    return and_(column >= text, column < text + _END)


def _email_tiers(term: str) -> list[Tier]:
    email = term.strip().lower()
    exact = select(ContactEmail.contact_id).where(ContactEmail.email == email)
    tiers = [Tier(Contact.id.in_(exact))]
    if not re.search(r"@[^@]+\.[a-z]{2,}$", email):  # still being typed
        partial = select(ContactEmail.contact_id).where(ContactEmail.email.like(_like(email) + "%"))
        tiers.append(Tier(Contact.id.in_(partial), batch=1))
    return tiers


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _postal_code_filter(code: str) -> ColumnElement:
    # Every address (the preferred one included) is a row of contact_address.
    at_address = select(ContactAddress.contact_id).where(ContactAddress.postal_code == code)
    return Contact.id.in_(at_address)


@dataclass(frozen=True)
class Tier:
    """One rank of results. ``selective``: few rows, found through the trigram index.
    Consecutive tiers of the same ``batch`` are fetched in one statement (UNION ALL)."""

    predicate: ColumnElement
    selective: bool = False
    batch: int = 0


def similar_words(word: str, limit: int = 8) -> list[str]:
    """Dictionary words close to a (misspelt) query word, closest first."""
    if len(word) < 3:
        return []
    if is_postgresql():  # « % » uses the GIN index (pg_trgm's 0.3), the filter is ours
        stmt = (
            select(ContactSearchWord.word)
            .where(
                ContactSearchWord.word.op("%")(word),
                func.similarity(ContactSearchWord.word, word) >= PG_SIMILARITY_THRESHOLD,
            )
            .order_by(ContactSearchWord.word.op("<->")(word), ContactSearchWord.word)
        )
    else:  # the words sharing the first letter, compared by rapidfuzz
        score = func.missive_ratio(word, ContactSearchWord.word)
        stmt = (
            select(ContactSearchWord.word)
            .where(_prefix(ContactSearchWord.word, word[0]), score >= SQLITE_WORD_THRESHOLD)
            .order_by(score.desc(), ContactSearchWord.word)
        )
    return list(db.session.execute(stmt.limit(limit)).scalars())


def starts_with_word(word: str) -> ColumnElement:
    """The name's first word (the surname, or an organisation's first word) is ``word``.

    One range of the name index: folded names hold no character below the space, so
    [« lefevre », « lefevre ~ ») is exactly « lefevre » and « lefevre … »."""
    return and_(Contact.search_name >= word, Contact.search_name < word + " ~")


def _name_tiers(folded: str) -> list[Tier | Later]:
    words = folded.split()
    return [
        Tier(_prefix(Contact.search_name, folded)),  # « dupont », « dupont j »
        Tier(Contact.search_city == folded),  # everyone in « nantes »
        Later(lambda: _word_tiers(folded, words)),  # « jean » in « dupont jean », « saint h »
        Later(lambda: _typo_tiers(words)),  # « dupond », « lefevbre »
    ]


def _word_tiers(folded: str, words: list[str]) -> list[Tier]:
    """Names with the query among their later words, then towns starting with it. The first
    is skipped when no word of the dictionary starts with every query word (a misspelt
    name): that spares a scan of the names (SQLite has no index for it)."""
    known = db.session.execute(
        select(
            and_(
                *[
                    select(ContactSearchWord.word)
                    .where(_prefix(ContactSearchWord.word, w))
                    .exists()
                    for w in words
                ]
            )
        )
    ).scalar()
    tiers = []
    if known:
        word = Contact.search_name.like("% " + _like(folded) + "%")
        if len(words) > 1:  # « hélène lefeb »: every word starts a word of the name
            word = or_(word, and_(*[_has_word_prefix(w) for w in words]))
        tiers.append(Tier(word, selective=True, batch=1))
    tiers.append(Tier(_prefix(Contact.search_city, folded), batch=1))  # « saint herb »
    return tiers


def _typo_tiers(words: list[str]) -> list[Tier]:
    """One tier per dictionary word close to a query word, closest first, each an ordered
    range of the name index (« lefevbre » → « lefebvre … », then « lefevre … »)."""
    tiers = []
    for index, typed in enumerate(words):
        others = [_has_word_prefix(w) for i, w in enumerate(words) if i != index]
        for close in similar_words(typed, limit=5):
            if close != typed:
                tiers.append(Tier(and_(starts_with_word(close), *others), batch=2))
    return tiers


def _has_word_prefix(word: str) -> ColumnElement:
    return or_(
        _prefix(Contact.search_name, word), Contact.search_name.like("% " + _like(word) + "%")
    )


@dataclass(frozen=True)
class Later:
    """Tiers made only when the earlier ones did not fill the page (typo corrections)."""

    make: Callable[[], list[Tier]]


def _order(tier: Tier) -> list:
    """Order of a tier's rows: by name, and on PostgreSQL for selective tiers by an
    expression no B-tree provides, so that the planner fetches the few matching rows through
    the trigram index and sorts them, instead of walking the name index from « a » and
    filtering (which is what it picks for LIMIT queries when it misjudges the spread)."""
    if is_postgresql() and tier.selective:
        return [Contact.search_name.concat(""), Contact.id]
    return [Contact.search_name, Contact.id]


def read_query(q: str) -> tuple[str, list[Tier | Later], list[ColumnElement]]:
    """Classify a query; return (kind, tier predicates, filters)."""
    term = (q or "").strip()
    compact = re.sub(r"[\s.\-/]+", "", term)
    if "@" in term:
        return "email", _email_tiers(term), []
    if RNA_RE.match(compact.upper()):
        return "rna", [Tier(Contact.rna == compact.upper())], []
    if compact.isdigit():
        if len(compact) == 14:
            return "siret", [Tier(Contact.siret == compact)], []
        if len(compact) == 9 and not compact.startswith("0"):
            return "siren", [Tier(Contact.siren == compact)], []
        if len(compact) == 5:  # the preferred address, then any other address
            return (
                "postal_code",
                [
                    Tier(Contact.postal_code == compact),
                    Tier(_postal_code_filter(compact), selective=True, batch=1),
                ],
                [],
            )
        if len(compact) < 5:
            return "postal_code", [Tier(Contact.postal_code.like(compact + "%"))], []
    if (compact.isdigit() or compact.startswith("+")) and len(digits(compact)) >= 9:
        number = phone_search_key(term)
        if number:
            matching = select(ContactPhone.contact_id).where(ContactPhone.number == number)
            return "phone", [Tier(Contact.id.in_(matching))], []
    tokens = term.split()
    filters = [_postal_code_filter(t) for t in tokens if _POSTAL_TOKEN.match(t)]
    words = " ".join(t for t in tokens if not _POSTAL_TOKEN.match(t))
    folded = fold(words)
    if not folded:
        return "postal_code", [Tier(f) for f in filters[:1]], filters[1:]
    return "name", _name_tiers(folded), filters


def _fetch(parts: list[tuple[int, Select]], wanted: int) -> list[tuple[int, Contact]]:
    """Run the tiers of one batch in a single statement; rows in tier, then name order."""
    if len(parts) == 1:
        position, stmt = parts[0]
        return [(position, row) for row in db.session.execute(stmt).scalars()]
    members = [  # narrow members: building subqueries of whole rows costs milliseconds
        select(
            stmt.with_only_columns(
                Contact.id, Contact.search_name, literal(position).label("tier_rank")
            ).subquery()
        )
        for position, stmt in parts
    ]
    united = union_all(*members).subquery()
    rows = db.session.execute(
        select(Contact, united.c.tier_rank)
        .join(united, Contact.id == united.c.id)
        .order_by(united.c.tier_rank, united.c.search_name, united.c.id)
        .limit(wanted)
    ).all()
    return [(rank, contact) for contact, rank in rows]


def search_contacts(
    q: str | None,
    *,
    limit: int = 20,
    cursor: str | None = None,
    kind: str | None = None,
    include_inactive: bool = False,
) -> SearchPage:
    """One page of contacts matching the query (all contacts by name when it is empty)."""
    base = select(Contact)
    if not include_inactive:
        base = base.where(Contact.status == ContactStatus.ACTIVE)
    if kind:
        base = base.where(Contact.kind == ContactKind(kind))
    if q and q.strip():
        query_kind, tiers, filters = read_query(q)
        base = base.where(*filters)
    else:
        query_kind, tiers = "all", [Tier(literal(True))]
    tiers = list(tiers)

    def tier_at(index: int) -> Tier | None:
        while index < len(tiers) and isinstance(tiers[index], Later):
            tiers[index : index + 1] = tiers[index].make()
        return tiers[index] if index < len(tiers) else None

    start_tier, after = 0, None
    if cursor:
        values = decode_cursor(cursor)
        if (
            len(values) != 3
            or not isinstance(values[0], int)
            or values[0] < 0
            or tier_at(values[0]) is None
        ):
            raise ValidationFailed(
                "Curseur de pagination invalide.",
                errors=[{"field": "cursor", "message": "Curseur invalide."}],
            )
        start_tier, after = values[0], values[1:]
    found: list[tuple[int, Contact]] = []
    index = start_tier
    while len(found) <= limit and tier_at(index) is not None:
        batch = [index]
        while (
            index + len(batch) < len(tiers)
            and isinstance(tiers[index + len(batch)], Tier)
            and tiers[index + len(batch)].batch == tiers[index].batch
        ):
            batch.append(index + len(batch))
        parts = []
        for position in batch:
            tier = tiers[position]
            stmt = base.where(tier.predicate, *[~t.predicate for t in tiers[:position]])
            if after is not None and position == start_tier:
                name, last_id = after
                stmt = stmt.where(
                    or_(
                        Contact.search_name > name,
                        and_(Contact.search_name == name, Contact.id > last_id),
                    )
                )
            parts.append((position, stmt.order_by(*_order(tier)).limit(limit + 1 - len(found))))
        found.extend(_fetch(parts, limit + 1 - len(found)))
        index += len(batch)
    next_cursor = None
    if len(found) > limit:
        tier, last = found[limit - 1]
        next_cursor = encode_cursor([tier, last.search_name, last.id])
    return SearchPage([row for _tier, row in found[:limit]], next_cursor, query_kind)
