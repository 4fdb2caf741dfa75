"""Reading the inbox: views, filters, search, sort orders, cursors and counts.

Every list reads the engine's materialised task rows (never a workflow). The two
views agents open all day are answered from partial indexes: « À traiter » from
``ix_human_task_assignee_open`` (assignee, due order), « Corbeilles de mes groupes »
from ``ix_task_candidate_group_basket`` — one ordered index range per group, merged,
so a first page costs the same whether the agent belongs to one group or five. On
PostgreSQL the same statement also reads the viewer (groups, colleagues acted for), so
a page costs one round trip. Pages hold ``TaskRow``s: the rows as read, without the
ORM's identity map.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    cast,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    union,
    union_all,
)

from app.auth.models import Group, User, group_membership
from app.core.db import is_postgresql, utcnow
from app.core.errors import ValidationFailed
from app.core.extensions import db
from app.core.pagination import after, decode_cursor, encode_cursor
from app.engine.models import NO_DUE_DATE, HumanTask, ProcessInstance, TaskCandidate, TaskStatus
from app.engine.permissions import is_candidate, offer_conditions
from app.engine.runtime import searchable
from app.inbox.models import CaseFollow, Substitution

PARIS = ZoneInfo("Europe/Paris")

VIEWS = ("mine", "candidate", "followed", "overdue", "completed", "all")
VIEW_LABELS = {
    "mine": _l("À traiter"),
    "candidate": _l("Corbeilles de mes groupes"),
    "followed": _l("Suivis"),
    "overdue": _l("En retard"),
    "completed": _l("Terminées"),
    "all": _l("Toutes les tâches"),
}
SORTS = {
    "due": _l("Échéance la plus proche"),
    "-due": _l("Échéance la plus lointaine"),
    "priority": _l("Priorité la plus haute"),
    "received": _l("Reçues en premier"),
    "-received": _l("Reçues en dernier"),
    "-completed": _l("Terminées récemment"),
}
DEFAULT_SORT = {"completed": "-completed"}

# Columns an agent may show; case variables come from the task's metadata.
COLUMNS = {
    "title": _l("Tâche"),
    "process": _l("Circuit"),
    "chrono": _l("Chrono"),
    "sender": _l("Expéditeur"),
    "type": _l("Type"),
    "amount": _l("Montant"),
    "channel": _l("Canal"),
    "service": _l("Service"),
    "delegation": _l("Délégation"),
    "due": _l("Échéance"),
    "priority": _l("Priorité"),
    "received": _l("Reçu le"),
    "created": _l("Créée le"),
    "assignee": _l("Attribuée à"),
    "groups": _l("Corbeilles"),
    "completed": _l("Terminée le"),
}
DEFAULT_COLUMNS = {
    "mine": ["title", "chrono", "sender", "due", "priority"],
    "candidate": ["title", "chrono", "sender", "groups", "due", "priority"],
    "followed": ["title", "chrono", "assignee", "due"],
    "overdue": ["title", "chrono", "assignee", "groups", "due"],
    "completed": ["title", "chrono", "process", "completed"],
    "all": ["title", "chrono", "assignee", "groups", "due", "priority"],
}
METADATA_COLUMNS = {
    "chrono": ("chrono",),
    "sender": ("sender_name", "sender"),
    "type": ("type", "case_type", "document_type"),
    "amount": ("amount",),
    "channel": ("channel",),
    "service": ("service",),
    "delegation": ("delegation",),
}

# Literal predicates, spelt exactly as the partial indexes' (bound parameters would
# keep SQLite's planner, and PostgreSQL's generic plans, from using those indexes).
OPEN = literal_column("human_task.status") == literal_column("'open'")
UNCLAIMED = literal_column("task_candidate.unclaimed")

MY_GROUPS = ("mes groupes", "mes_groupes", "my_groups")
ME = ("me", "moi")
_TODAY_RE = re.compile(r"^(?:aujourd'hui|aujourd’hui|today)\s*(?:([+-])\s*(\d{1,3}))?$")

FILTER_KEYS = (
    "q",
    "process_key",
    "service",
    "delegation",
    "channel",
    "due_from",
    "due_to",
    "priority_min",
    "priority_max",
    "group",
    "assignee",
)
# The saved-filter parameters: plain values and the symbolic words above, never code.
FILTER_PARAMS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "q": {"type": "string", "maxLength": 200},
        "process_key": {"type": "string", "maxLength": 200},
        "service": {"type": "string", "maxLength": 200},
        "delegation": {"type": "string", "maxLength": 200},
        "channel": {"type": "string", "maxLength": 60},
        "due_from": {"type": "string", "maxLength": 40},
        "due_to": {"type": "string", "maxLength": 40},
        "priority_min": {"type": ["integer", "string"], "maxLength": 3},
        "priority_max": {"type": ["integer", "string"], "maxLength": 3},
        "group": {"type": "string", "maxLength": 80},
        "assignee": {"type": "string", "maxLength": 254},
        "sort": {"type": "string", "enum": list(SORTS)},
    },
}


def today() -> date:
    """Today in the authority's time zone (filters say « aujourd'hui » in Paris time)."""
    return utcnow().astimezone(PARIS).date()


@dataclass
class Filters:
    """Resolved filters: symbolic parameters already replaced by values."""

    terms: list[str] = field(default_factory=list)
    process_key: str | None = None
    service: str | None = None
    delegation: str | None = None
    channel: str | None = None
    due_from: datetime | None = None
    due_before: datetime | None = None
    priority_min: int | None = None
    priority_max: int | None = None
    groups: list[str] | None = None
    assignee_id: int | None = None

    @property
    def touch_tasks(self) -> bool:
        """True when a condition needs the task row itself."""
        return any(
            v not in (None, [])
            for v in (
                self.terms,
                self.process_key,
                self.service,
                self.delegation,
                self.channel,
                self.due_from,
                self.due_before,
                self.priority_min,
                self.priority_max,
                self.assignee_id,
            )
        )


def _day(raw: str, field_name: str, errors: list[dict], base: date) -> date | None:
    text = raw.strip().lower()
    match = _TODAY_RE.match(text)
    if match:
        sign, number = match.groups()
        offset = int(number or 0) * (-1 if sign == "-" else 1)
        return base + timedelta(days=offset)
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors.append(
            {
                "field": field_name,
                "message": "Date attendue (AAAA-MM-JJ) ou « aujourd'hui », "
                "« aujourd'hui+7 », « aujourd'hui-1 ».",
            }
        )
        return None


def _paris_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=PARIS).astimezone(UTC)


def _priority(raw: Any, field_name: str, errors: list[dict]) -> int | None:
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = -1
    if not 0 <= value <= 100:
        errors.append({"field": field_name, "message": "Nombre entier entre 0 et 100 attendu."})
        return None
    return value


def parse_filters(raw: dict[str, Any], user: User) -> Filters:
    """Resolve filter parameters (from a query string or a saved filter) for ``user``.

    ``assignee=me``, ``group=mes groupes``, ``due_to=aujourd'hui`` are resolved here,
    at the moment the list is read. Invalid values raise ValidationFailed (French).
    """
    errors: list[dict] = []
    filters = Filters()
    values = {k: raw.get(k) for k in FILTER_KEYS if raw.get(k) not in (None, "")}
    base = today()
    if "q" in values:
        filters.terms = [t for t in searchable(str(values["q"])[:200]).split() if t][:8]
    for name in ("process_key", "service", "delegation", "channel"):
        if name in values:
            setattr(filters, name, str(values[name]).strip()[:200])
    if "due_from" in values:
        day = _day(str(values["due_from"]), "due_from", errors, base)
        filters.due_from = _paris_midnight(day) if day else None
    if "due_to" in values:
        day = _day(str(values["due_to"]), "due_to", errors, base)
        filters.due_before = _paris_midnight(day + timedelta(days=1)) if day else None
    if "priority_min" in values:
        filters.priority_min = _priority(values["priority_min"], "priority_min", errors)
    if "priority_max" in values:
        filters.priority_max = _priority(values["priority_max"], "priority_max", errors)
    if "group" in values:
        name = str(values["group"]).strip()
        if name.lower() in MY_GROUPS:
            filters.groups = user.group_names
        elif db.session.execute(select(Group.id).where(Group.name == name)).first() is None:
            errors.append({"field": "group", "message": f"Groupe inconnu : {name}."})
        else:
            filters.groups = [name]
    if "assignee" in values:
        who = str(values["assignee"]).strip().lower()
        if who in ME:
            filters.assignee_id = user.id
        else:
            found = db.session.execute(select(User.id).where(User.email == who)).scalar()
            if found is None:
                errors.append({"field": "assignee", "message": f"Agent inconnu : {who}."})
            filters.assignee_id = found
    if errors:
        raise ValidationFailed("Les filtres ne sont pas valides.", errors=errors)
    return filters


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _meta(key: str):
    return HumanTask.metadata_[key].as_string()


def _filter_values(filters: Filters) -> dict[str, Any]:
    """Bound values of the resolved filters, by parameter name (search terms apart)."""
    values: dict[str, Any] = {
        "f_process": filters.process_key,
        "f_service": filters.service,
        "f_delegation": filters.delegation,
        "f_channel": filters.channel,
        "f_due_from": filters.due_from,
        "f_due_before": filters.due_before,
        "f_priority_min": filters.priority_min,
        "f_priority_max": filters.priority_max,
        "f_assignee": filters.assignee_id,
        "f_groups": filters.groups or None,
    }
    values = {k: v for k, v in values.items() if v is not None}
    if filters.groups is not None and not filters.groups:
        values["f_no_groups"] = True
    values.update({f"t{i}": _like(term) for i, term in enumerate(filters.terms)})
    return values


def search_clauses(n_terms: int, column=HumanTask.search_text) -> list[ColumnElement]:
    """Every search term (parameters ``t0``, ``t1``…) appears in the search text."""
    return [column.like(bindparam(f"t{i}", type_=String), escape="\\") for i in range(n_terms)]


def filter_clauses(names: tuple[str, ...]) -> list[ColumnElement]:
    """SQL conditions on the task row for the filters named (values bound at execution)."""
    clauses = {
        "f_process": lambda: HumanTask.process_key == bindparam("f_process"),
        "f_service": lambda: _meta("service") == bindparam("f_service", type_=String),
        "f_delegation": lambda: _meta("delegation") == bindparam("f_delegation", type_=String),
        "f_channel": lambda: _meta("channel") == bindparam("f_channel", type_=String),
        "f_due_from": lambda: HumanTask.due_at >= bindparam("f_due_from"),
        "f_due_before": lambda: HumanTask.due_at < bindparam("f_due_before"),
        "f_priority_min": lambda: HumanTask.priority >= bindparam("f_priority_min"),
        "f_priority_max": lambda: HumanTask.priority <= bindparam("f_priority_max"),
        "f_assignee": lambda: HumanTask.assignee_id == bindparam("f_assignee"),
        "f_groups": lambda: HumanTask.id.in_(
            select(TaskCandidate.task_id).where(
                TaskCandidate.group_name.in_(bindparam("f_groups", expanding=True))
            )
        ),
        "f_no_groups": false,
    }
    return [clauses[name]() for name in names if name in clauses]


# --- views ------------------------------------------------------------------------------


@dataclass
class Viewer:
    """Who reads the inbox: the user, the colleagues they act for, their groups."""

    user: User
    ids: list[int]
    groups: list[str]
    now: datetime

    @classmethod
    def of(cls, user: User) -> Viewer:
        """The viewer's groups and the colleagues they act for, in one round trip."""
        facts = db.session.execute(_viewer_statement(), {"user": user.id, "day": today()}).all()
        names = sorted(v for k, v in facts if k == "g")
        ids = {user.id, *(int(v) for k, v in facts if k == "a")}
        return cls(user, sorted(ids), names, utcnow())

    def params(self) -> dict[str, Any]:
        """Bound values of the viewer's statements: ``me``, ``now``, ``p0``…, ``g0``…"""
        values: dict[str, Any] = {"me": self.user.id, "now": self.now, "day": today()}
        values.update({f"p{i}": person for i, person in enumerate(self.ids)})
        values.update({f"g{i}": group for i, group in enumerate(self.groups)})
        return values


@functools.cache
def _viewer_statement():
    """The viewer's group names (``g``) and absent colleagues (``a``), one statement."""
    groups = select(literal("g").label("kind"), Group.name.label("value")).where(
        Group.id.in_(
            select(group_membership.c.group_id).where(
                group_membership.c.user_id == bindparam("user", type_=Integer)
            )
        )
    )
    absent = select(
        literal("a").label("kind"), cast(Substitution.absent_id, String).label("value")
    ).where(active_absence(bindparam("user", type_=Integer), bindparam("day", type_=Date)))
    return union_all(groups, absent)


def active_absence(substitute_id, day) -> ColumnElement:
    """The absences during which ``substitute_id`` acts for a colleague on ``day``."""
    return and_(
        Substitution.substitute_id == substitute_id,
        Substitution.starts_on <= day,
        Substitution.ends_on >= day,
    )


def _not_snoozed(now) -> ColumnElement:
    return or_(HumanTask.follow_up_at.is_(None), HumanTask.follow_up_at <= now)


def _branches(view: str, n_ids: int, n_groups: int) -> list:
    """Index-friendly selects of task ids whose union is the view (no OR across indexes:
    each branch reads one range of one index). Values are bound from ``Viewer.params``."""
    now, me = bindparam("now"), bindparam("me", type_=Integer)
    people = [bindparam(f"p{i}", type_=Integer) for i in range(n_ids)]
    branches = []
    if view in ("mine", "all", "overdue"):
        for person in people:
            branch = select(HumanTask.id.label("task_id")).where(
                OPEN, HumanTask.assignee_id == person
            )
            if view == "mine":
                branch = branch.where(_not_snoozed(now))
            if view == "overdue":
                branch = branch.where(HumanTask.due_sort < now)
            branches.append(branch)
    if view in ("candidate", "all", "overdue"):
        offers = [
            TaskCandidate.group_name == bindparam(f"g{i}", type_=String) for i in range(n_groups)
        ]
        offers += [TaskCandidate.user_id == person for person in people]
        for offer in offers:
            branch = select(TaskCandidate.task_id.label("task_id")).where(offer, UNCLAIMED)
            if view == "overdue":
                branch = branch.where(TaskCandidate.due_sort < now)
            branches.append(branch)
        for rule_offers in offer_conditions():  # e.g. a delegate's signatures
            branch = (
                select(TaskCandidate.task_id.label("task_id"))
                .join(HumanTask, HumanTask.id == TaskCandidate.task_id)
                .where(rule_offers(), UNCLAIMED)
            )
            if view == "overdue":
                branch = branch.where(TaskCandidate.due_sort < now)
            branches.append(branch)
    if view == "followed":
        started = select(ProcessInstance.id).where(ProcessInstance.initiator_id == me)
        follows = select(CaseFollow.instance_id).where(CaseFollow.user_id == me)
        for cases in (started, follows):
            branches.append(
                select(HumanTask.id.label("task_id")).where(OPEN, HumanTask.instance_id.in_(cases))
            )
        for person in people:  # my snoozed tasks wait here
            branches.append(
                select(HumanTask.id.label("task_id")).where(
                    OPEN, HumanTask.assignee_id == person, HumanTask.follow_up_at > now
                )
            )
    return branches


def view_condition(view: str, viewer: Viewer | None) -> ColumnElement:
    """Which task rows belong to a view, for this viewer (execute with ``viewer.params()``)."""
    if view not in VIEWS:
        raise ValidationFailed(
            "Vue inconnue.",
            errors=[{"field": "view", "message": "Choix possibles : " + ", ".join(VIEWS) + "."}],
        )
    if view == "completed":
        return and_(
            HumanTask.status == TaskStatus.COMPLETED,
            HumanTask.completed_by_id == bindparam("me", type_=Integer),
        )
    if view == "all" and viewer.user.is_admin:
        return OPEN
    branches = _branches(view, len(viewer.ids), len(viewer.groups))
    if not branches:
        return false()
    return HumanTask.id.in_(union_all(*branches) if len(branches) > 1 else branches[0])


def _sort_spec(sort: str) -> tuple[list[Any], bool]:
    match sort:
        case "due":
            return [HumanTask.due_sort, HumanTask.id], False
        case "-due":
            return [HumanTask.due_sort, HumanTask.id], True
        case "priority":
            return [HumanTask.priority, HumanTask.id], True
        case "received":
            return [HumanTask.received_at, HumanTask.id], False
        case "-received":
            return [HumanTask.received_at, HumanTask.id], True
        case "-completed":
            return [HumanTask.completed_at, HumanTask.id], True
    raise ValidationFailed(
        "Tri inconnu.",
        errors=[{"field": "sort", "message": "Choix possibles : " + ", ".join(SORTS) + "."}],
    )


def _cursor_values(cursor: str, sort: str) -> list[Any]:
    values = decode_cursor(cursor)
    invalid = ValidationFailed(
        "Curseur de pagination invalide.",
        errors=[{"field": "cursor", "message": "Curseur invalide."}],
    )
    if len(values) != 3 or values[0] != sort:
        raise invalid
    try:
        key = datetime.fromisoformat(values[1]) if sort != "priority" else int(values[1])
        return [key, int(values[2])]
    except (TypeError, ValueError) as exc:
        raise invalid from exc


def _cursor_for(task: TaskRow, sort: str) -> str:
    key = {
        "due": task.due_sort,
        "-due": task.due_sort,
        "priority": task.priority,
        "received": task.received_at,
        "-received": task.received_at,
        "-completed": task.completed_at,
    }[sort]
    return encode_cursor([sort, key.isoformat() if isinstance(key, datetime) else key, task.id])


class TaskRow:
    """A task of a list page, read without the ORM's bookkeeping: the task row's columns
    under the model's attribute names and its assignee's name and e-mail. Anything else
    (``owner``, ``candidates``, ``instance``…) is read from the ORM entity on first use."""

    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)

    @property
    def assignee(self) -> Person | None:
        if self.assignee_id is None:
            return None
        return Person(self.assignee_id, self.assignee_name, self.assignee_email)

    @property
    def owner(self) -> User | None:
        return db.session.get(User, self.owner_id) if self.owner_id else None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(db.session.get(HumanTask, self.id), name)

    def __repr__(self) -> str:
        return f"<TaskRow {self.id} {self.title!r}>"


@dataclass(frozen=True)
class Person:
    """The assignee of a listed task, as lists show it."""

    id: int
    name: str
    email: str


# The columns a list page reads (not the search text nor the documentation, which no list
# shows), labelled with the model's attribute names, then the assignee's name and e-mail.
_TASK_COLUMNS = tuple(
    attr.columns[0].label(attr.key)
    for attr in HumanTask.__mapper__.column_attrs
    if attr.key not in ("search_text", "documentation")
)
_ASSIGNEE_COLUMNS = (User.name.label("assignee_name"), User.email.label("assignee_email"))
_ROW_KEYS = tuple(column.key for column in _TASK_COLUMNS + _ASSIGNEE_COLUMNS)


@dataclass
class Page:
    tasks: list[TaskRow]
    next_cursor: str | None
    viewer: Viewer


def list_tasks(
    user: User,
    view: str,
    *,
    filters: Filters | None = None,
    sort: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """One page of a view, filtered and sorted, after ``cursor``."""
    if view not in VIEWS:
        view_condition(view, None)  # raises the French error
    filters = filters or Filters()
    sort = sort or DEFAULT_SORT.get(view, "due")
    columns, descending = _sort_spec(sort)
    values = _cursor_values(cursor, sort) if cursor else None
    params = _filter_values(filters)
    names = tuple(sorted(k for k in params if k.startswith("f_")))
    params["limit"] = limit + 1
    if values is not None:
        params["c0"], params["c1"] = values
    indexed = sort in ("due", "-due") and view in INDEXED_VIEWS
    if indexed and not (view == "all" and user.is_admin) and is_postgresql():
        # The viewer's groups and colleagues are read by the page's own statement (its
        # shape does not depend on how many there are).
        shape = _Shape(view, 0, 0, descending, values is not None, names, len(filters.terms))
        now = utcnow()
        params.update({"me": user.id, "now": now, "day": today()})
        rows = _rows(_folded_statement(shape), params)
        facts = rows[0]._mapping
        viewer = Viewer(
            user, sorted(facts["viewer_ids"]), sorted(facts["viewer_groups"] or []), now
        )
        rows = [row for row in rows if row.id is not None]
    else:
        viewer = Viewer.of(user)
        params.update(viewer.params())
        if indexed and not (view == "all" and user.is_admin):
            shape = _Shape(
                view,
                len(viewer.ids),
                len(viewer.groups),
                descending,
                values is not None,
                names,
                len(filters.terms),
            )
            stmt = _indexed_statement(shape)
        else:
            stmt = _page(
                [
                    view_condition(view, viewer),
                    *search_clauses(len(filters.terms)),
                    *filter_clauses(names),
                ],
                columns,
                descending,
                values is not None,
            )
        rows = _rows(stmt, params)
    tasks = [TaskRow(dict(zip(_ROW_KEYS, row, strict=False))) for row in rows]
    next_cursor = None
    if len(tasks) > limit:
        tasks = tasks[:limit]
        next_cursor = _cursor_for(tasks[-1], sort)
    return Page(tasks, next_cursor, viewer)


def _rows(stmt, params: dict[str, Any]) -> list:
    """The rows of a page's statement as the driver returns them (the session's result
    machinery is for entities; pending changes are flushed first, as a query would)."""
    if db.session.autoflush:
        db.session.flush()
    return db.session.connection().execute(stmt, params).all()


def _page(
    conditions: list, columns: list, descending: bool, after_cursor: bool, assignee: bool = True
):
    """The rows of a task page: the tasks meeting ``conditions`` (with their assignee's
    name and e-mail unless ``assignee`` is false), ordered, after the cursor (parameters
    ``c0``, ``c1``), at most ``limit``."""
    stmt = select(*_TASK_COLUMNS).where(*conditions)
    if assignee:
        stmt = stmt.add_columns(*_ASSIGNEE_COLUMNS).outerjoin(
            User, User.id == HumanTask.assignee_id
        )
    if after_cursor:
        stmt = stmt.where(after(columns, [bindparam("c0"), bindparam("c1")], descending))
    order = [c.desc() if descending else c.asc() for c in columns]
    return stmt.order_by(*order).limit(bindparam("limit", type_=Integer))


# Views whose due-ordered pages are read range by range from the partial indexes.
INDEXED_VIEWS = ("mine", "candidate", "overdue", "all")


@dataclass(frozen=True)
class _Shape:
    """What a due-ordered page's SQL depends on (its values are bound at execution)."""

    view: str
    n_ids: int
    n_groups: int
    descending: bool
    after_cursor: bool
    filters: tuple[str, ...]
    n_terms: int


def _held_range(shape: _Shape, person) -> Select:
    """The first ``limit`` open tasks held by ``person``, in due order (one index range)."""
    keys = [HumanTask.due_sort, HumanTask.id]
    extra = filter_clauses(shape.filters)
    if shape.view == "overdue":
        extra.append(HumanTask.due_sort < bindparam("now"))
    branch = select(HumanTask.id.label("task_id")).where(
        OPEN, HumanTask.assignee_id == person, *search_clauses(shape.n_terms), *extra
    )
    if shape.view == "mine":
        branch = branch.where(_not_snoozed(bindparam("now")))
    return _range(branch, keys, shape)


def _offered_range(shape: _Shape, offer, on_task: bool = False) -> Select:
    """The first ``limit`` unclaimed tasks of one basket (``offer``: a condition on the
    candidate rows), in due order (one index range)."""
    keys = [TaskCandidate.due_sort, TaskCandidate.task_id]
    extra = filter_clauses(shape.filters)
    if shape.view == "overdue":
        extra.append(HumanTask.due_sort < bindparam("now"))
    # Search terms are checked on the index's copy of the search text; other filters
    # (and the candidate rules' offers) need the task row.
    branch = select(TaskCandidate.task_id.label("task_id")).where(
        offer, UNCLAIMED, *search_clauses(shape.n_terms, TaskCandidate.search_text)
    )
    if extra or on_task:
        branch = branch.join(HumanTask, HumanTask.id == TaskCandidate.task_id).where(*extra)
    return _range(branch, keys, shape)


def _range(branch: Select, keys: list, shape: _Shape) -> Select:
    if shape.after_cursor:
        branch = branch.where(after(keys, [bindparam("c0"), bindparam("c1")], shape.descending))
    order = [k.desc() if shape.descending else k.asc() for k in keys]
    return branch.order_by(*order).limit(bindparam("limit", type_=Integer))


def _rule_ranges(shape: _Shape) -> list[Select]:
    """The ranges of the candidate rules' offers (e.g. a delegate's signatures)."""
    return [_offered_range(shape, condition(), on_task=True) for condition in offer_conditions()]


def _merged_page(shape: _Shape, ranges: list[Select], assignee: bool = True):
    """The page's rows from the ranges of task ids: merged, then ordered and cut."""
    if not ranges:
        ids = select(HumanTask.id).where(false())
    else:
        ids = ranges[0] if len(ranges) == 1 else union_all(*ranges)
    columns = [HumanTask.due_sort, HumanTask.id]
    return _page([HumanTask.id.in_(ids)], columns, shape.descending, shape.after_cursor, assignee)


@functools.lru_cache(maxsize=512)
def _indexed_statement(shape: _Shape):
    """The SQL of a due-ordered page: the first ``limit`` rows of each index range — one
    per agent acted for (their open tasks, ``p0``…), one per group (``g0``…) or named
    basket (unclaimed candidates) — merged, then the page's task rows. Each range is read
    in order and stops early, so a first page costs the same whether the agent belongs to
    one group or five. Built once per shape: later pages only bind new values."""
    people = [bindparam(f"p{i}", type_=Integer) for i in range(shape.n_ids)]
    ranges = []
    if shape.view in ("mine", "all", "overdue"):
        ranges += [_held_range(shape, person) for person in people]
    if shape.view in ("candidate", "all", "overdue"):
        offers = [
            TaskCandidate.group_name == bindparam(f"g{i}", type_=String)
            for i in range(shape.n_groups)
        ]
        offers += [TaskCandidate.user_id == person for person in people]
        ranges += [_offered_range(shape, offer) for offer in offers]
        ranges += _rule_ranges(shape)
    return _merged_page(shape, [select(r.subquery().c.task_id) for r in ranges])


@functools.lru_cache(maxsize=64)
def _folded_statement(shape: _Shape):
    """PostgreSQL: the statement of ``_indexed_statement`` that also reads the viewer —
    its groups and the colleagues it acts for (``me``, ``day``) — in the same round trip.
    The ranges are taken per element of those lists (``unnest`` … ``LATERAL``), and the
    viewer's lists come back on every row (on one row of NULL task columns when the page
    is empty: ``viewer_groups``, ``viewer_ids``)."""
    me, day = bindparam("me", type_=Integer), bindparam("day", type_=Date)
    groups = select(func.array_agg(Group.name)).where(
        Group.id.in_(select(group_membership.c.group_id).where(group_membership.c.user_id == me))
    )
    people = union(
        select(me.label("id")),
        select(Substitution.absent_id.label("id")).where(active_absence(me, day)),
    ).subquery()
    viewer = select(
        groups.scalar_subquery().label("groups"),
        select(func.array_agg(people.c.id)).scalar_subquery().label("ids"),
    ).cte("viewer")

    def each(column, name: str, make_range) -> Select:
        elements = select(column).scalar_subquery()
        element = func.unnest(elements).table_valued(name).render_derived(name=f"each_{name}")
        found = make_range(element.c[name]).lateral()
        return select(found.c.task_id).select_from(element).join(found, true())

    def held(person) -> Select:
        return _held_range(shape, person)

    def group_basket(name) -> Select:
        return _offered_range(shape, TaskCandidate.group_name == name)

    def named_basket(person) -> Select:
        return _offered_range(shape, TaskCandidate.user_id == person)

    ranges = []
    if shape.view in ("mine", "all", "overdue"):
        ranges.append(each(viewer.c.ids, "person", held))
    if shape.view in ("candidate", "all", "overdue"):
        ranges.append(each(viewer.c.groups, "group_name", group_basket))
        ranges.append(each(viewer.c.ids, "person", named_basket))
        ranges += [select(r.subquery().c.task_id) for r in _rule_ranges(shape)]
    # The assignee's name and e-mail are looked up row by row: the planner cannot tell how
    # few rows the ranges hold, and would rather hash the whole user table for a join.
    page = _merged_page(shape, ranges, assignee=False).subquery("page")
    order = [page.c.due_sort, page.c.id]
    assignee = [
        select(column).where(User.id == page.c.assignee_id).scalar_subquery().label(column.key)
        for column in _ASSIGNEE_COLUMNS
    ]
    return (
        select(
            page,
            *assignee,
            viewer.c.groups.label("viewer_groups"),
            viewer.c.ids.label("viewer_ids"),
        )
        .select_from(viewer)
        .outerjoin(page, true())
        .order_by(*[c.desc() if shape.descending else c.asc() for c in order])
    )


# --- counts ---------------------------------------------------------------------------


def _count_of(view: str, n_ids: int, n_groups: int, admin: bool):
    if view == "completed" or (view == "all" and admin):
        condition = (
            OPEN
            if view == "all"
            else and_(
                HumanTask.status == TaskStatus.COMPLETED,
                HumanTask.completed_by_id == bindparam("me", type_=Integer),
            )
        )
        return select(func.count()).select_from(HumanTask).where(condition)
    branches = _branches(view, n_ids, n_groups)
    if not branches:
        return select(literal(0))
    ids = union(*branches).subquery() if len(branches) > 1 else branches[0].subquery()
    return select(func.count()).select_from(ids)


@functools.lru_cache(maxsize=256)
def _counts_statement(views: tuple[str, ...], n_ids: int, n_groups: int, admin: bool):
    """Every tab's count in one statement (one round trip), built once per shape."""
    return select(*(_count_of(v, n_ids, n_groups, admin).scalar_subquery().label(v) for v in views))


def count_view(user: User, view: str, viewer: Viewer | None = None) -> int:
    """How many tasks a view holds (without filters)."""
    viewer = viewer or Viewer.of(user)
    if view not in VIEWS:
        view_condition(view, viewer)  # raises the French error
    stmt = _counts_statement((view,), len(viewer.ids), len(viewer.groups), user.is_admin)
    return db.session.execute(stmt, viewer.params()).scalar() or 0


def view_counts(user: User) -> dict[str, int]:
    """The count of every view the user sees, for the tabs."""
    viewer = Viewer.of(user)
    views = tuple(v for v in VIEWS if v != "all" or user.is_admin)
    stmt = _counts_statement(views, len(viewer.ids), len(viewer.groups), user.is_admin)
    row = db.session.execute(stmt, viewer.params()).one()
    return {view: row._mapping[view] or 0 for view in views}


def column_value(task: HumanTask | TaskRow, column: str) -> Any:
    """The raw value of a column for a task (the template formats it)."""
    if column in METADATA_COLUMNS:
        meta = task.metadata_ or {}
        for key in METADATA_COLUMNS[column]:
            if meta.get(key) not in (None, ""):
                return meta[key]
        return None
    return {
        "title": task.title,
        "process": task.process_key,
        "due": task.due_at,
        "priority": task.priority,
        "received": task.received_at,
        "created": task.created_at,
        "assignee": task.assignee.name if task.assignee else None,
        "groups": ", ".join(task.candidate_groups or []) or None,
        "completed": task.completed_at,
    }.get(column)


def on_behalf_of(task: HumanTask | TaskRow, viewer: Viewer) -> int | None:
    """The absent colleague whose task this is, when the viewer sees it as a substitute."""
    if task.status != TaskStatus.OPEN or task.assignee_id == viewer.user.id:
        return None
    return task.assignee_id if task.assignee_id in viewer.ids else None


def may_claim(task: HumanTask | TaskRow, viewer: Viewer) -> bool:
    """True when the viewer may take this unassigned task (from the row alone)."""
    if task.status != TaskStatus.OPEN or task.assignee_id is not None:
        return False
    if viewer.user.is_admin or set(task.candidate_groups or []) & set(viewer.groups):
        return True
    if viewer.user.email in (task.candidate_users or []):
        return True
    return bool(offer_conditions()) and is_candidate(viewer.user, task)  # candidate rules


def is_overdue(task: HumanTask | TaskRow, now: datetime) -> bool:
    """True when an open task is past its due date."""
    return task.status == TaskStatus.OPEN and task.due_sort < now and task.due_sort != NO_DUE_DATE
