"""The main navigation of the layout: domains register their entries, filtered by role."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user


@dataclass(frozen=True)
class NavItem:
    label: object
    endpoint: str
    role: str = "agent"
    order: int = 50
    badge: Callable | None = None  # badge(user) -> a count shown beside the label


_items: dict[str, NavItem] = {}


def register_nav(
    label, endpoint: str, role: str = "agent", order: int = 50, badge: Callable | None = None
) -> None:
    """Add an entry to the main navigation (idempotent per endpoint); ``badge(user)``
    may return a count shown beside it (unread notifications…)."""
    _items[endpoint] = NavItem(label, endpoint, role, order, badge)


register_nav(_l("Mes tâches"), "inbox.index", order=10)
register_nav(_l("Administration"), "admin.index", role="admin", order=90)


def main_navigation() -> list[dict]:
    """Return the entries the signed-in user may open, marking the current one."""
    if not current_user.is_authenticated:
        return []
    entries = []
    for item in sorted(_items.values(), key=lambda i: i.order):
        if not current_user.has_role(item.role):
            continue
        url = url_for(item.endpoint)
        badge = item.badge(current_user) if item.badge else None
        entries.append({"label": str(item.label), "url": url, "current": False, "badge": badge})
    # The current entry is the one whose address is the longest prefix of the page's
    # (/admin/mailboxes/ is « Boîtes fonctionnelles », not also « Administration »).
    matching = [
        e
        for e in entries
        if request.path == e["url"] or (e["url"] != "/" and request.path.startswith(e["url"]))
    ]
    if matching:
        max(matching, key=lambda e: len(e["url"]))["current"] = True
    for entry in entries:
        entry["badge"] = entry["badge"] or None
    return entries
