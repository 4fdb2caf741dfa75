"""Who may read a document: its creator, admins, and the rules other domains register."""

from __future__ import annotations

from app.core.permissions import policy
from app.documents.services import can_read


@policy("document")
def document_policy(user, action: str, document) -> bool:
    return action == "read" and can_read(user, document)
