"""The texts of the inbox's e-mails (assignment, mention, daily digest), in the agent's language."""

from __future__ import annotations

from datetime import date

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _

from app.auth.models import User
from app.inbox.models import Notification
from app.inbox.queries import PARIS, VIEW_LABELS, TaskRow


def _link(path: str) -> str:
    return current_app.config["MISSIVE_BASE_URL"].rstrip("/") + path


def notification_mail(note: Notification) -> tuple[str, str]:
    """Subject and body of the e-mail for one notification."""
    with force_locale(note.user.locale or "fr"):
        subject = f"[Missive] {note.message}"
        lines = [_("Bonjour %(name)s,", name=note.user.name), "", note.message + "."]
        if note.task_id:
            lines += ["", _("Ouvrir la tâche : %(url)s", url=_link(f"/taches/{note.task_id}"))]
        lines += [
            "",
            "—",
            _(
                "Vos préférences de notification : %(url)s",
                url=_link("/notifications/preferences"),
            ),
        ]
        return subject, "\n".join(lines)


def digest_mail(
    user: User, counts: dict[str, int], unread: int, overdue: list[TaskRow], day: date
) -> tuple[str, str]:
    """Subject and body of the daily summary of an agent's inbox."""
    with force_locale(user.locale or "fr"):
        subject = _("[Missive] Vos tâches du %(day)s", day=day.strftime("%d/%m/%Y"))
        lines = [_("Bonjour %(name)s,", name=user.name), "", _("Votre boîte de tâches ce matin :")]
        for view in ("mine", "candidate", "overdue"):
            lines.append(f"- {VIEW_LABELS[view]} : {counts.get(view, 0)}")
        if unread:
            lines.append("- " + _("Notifications non lues : %(n)s", n=unread))
        if overdue:
            lines += ["", _("En retard :")]
            for task in overdue:
                due = task.due_at.astimezone(PARIS).strftime("%d/%m/%Y") if task.due_at else ""
                lines.append(
                    "- "
                    + _(
                        "%(title)s (échéance %(due)s) : %(url)s",
                        title=task.title,
                        due=due,
                        url=_link(f"/taches/{task.id}"),
                    )
                )
        lines += [
            "",
            _("Ouvrir Missive : %(url)s", url=_link("/")),
            "—",
            _("Ne plus recevoir ce résumé : %(url)s", url=_link("/notifications/preferences")),
        ]
        return subject, "\n".join(lines)
