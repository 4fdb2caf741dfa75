"""The texts of the inbox's e-mails (assignment, mention, daily digest), in French."""

from __future__ import annotations

from datetime import date

from flask import current_app

from app.auth.models import User
from app.engine.models import HumanTask
from app.inbox.models import Notification
from app.inbox.queries import PARIS, VIEW_LABELS


def _link(path: str) -> str:
    return current_app.config["MISSIVE_BASE_URL"].rstrip("/") + path


def notification_mail(note: Notification) -> tuple[str, str]:
    """Subject and body of the e-mail for one notification."""
    subject = f"[Missive] {note.message}"
    lines = [f"Bonjour {note.user.name},", "", note.message + "."]
    if note.task_id:
        lines += ["", "Ouvrir la tâche : " + _link(f"/taches/{note.task_id}")]
    lines += ["", "—", "Vos préférences de notification : " + _link("/notifications/preferences")]
    return subject, "\n".join(lines)


def digest_mail(
    user: User, counts: dict[str, int], unread: int, overdue: list[HumanTask], day: date
) -> tuple[str, str]:
    """Subject and body of the daily summary of an agent's inbox."""
    subject = f"[Missive] Vos tâches du {day.strftime('%d/%m/%Y')}"
    lines = [f"Bonjour {user.name},", "", "Votre boîte de tâches ce matin :"]
    for view in ("mine", "candidate", "overdue"):
        lines.append(f"- {VIEW_LABELS[view]} : {counts.get(view, 0)}")
    if unread:
        lines.append(f"- Notifications non lues : {unread}")
    if overdue:
        lines += ["", "En retard :"]
        for task in overdue:
            due = task.due_at.astimezone(PARIS).strftime("%d/%m/%Y") if task.due_at else ""
            lines.append(f"- {task.title} (échéance {due}) : " + _link(f"/taches/{task.id}"))
    lines += [
        "",
        "Ouvrir Missive : " + _link("/"),
        "—",
        "Ne plus recevoir ce résumé : " + _link("/notifications/preferences"),
    ]
    return subject, "\n".join(lines)
