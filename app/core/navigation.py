"""The main navigation of the layout, filtered by role."""

from __future__ import annotations

from dataclasses import dataclass

from flask import request, url_for
from flask_babel import gettext as _
from flask_login import current_user


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    role: str = "agent"


def _items() -> list[NavItem]:
    return [
        NavItem(_("Mes tâches"), "inbox.index"),
        NavItem(_("Administration"), "admin.index", "admin"),
    ]


def main_navigation() -> list[dict]:
    """Return the entries the signed-in user may open, marking the current one."""
    if not current_user.is_authenticated:
        return []
    entries = []
    for item in _items():
        if not current_user.has_role(item.role):
            continue
        url = url_for(item.endpoint)
        current = request.path == url or (url != "/" and request.path.startswith(url))
        entries.append({"label": item.label, "url": url, "current": current})
    return entries
