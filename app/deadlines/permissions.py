"""Who configures deadlines and prints acknowledgements; who reads the print batches."""

from __future__ import annotations

from app.core.permissions import policy
from app.correspondence.permissions import is_mail_office
from app.documents.services import register_document_access


@policy("deadline_rule")
def deadline_rule_policy(user, action: str, obj) -> bool:
    return False  # rules, closures and letterhead: admins only (admins pass every check)


@policy("acknowledgement")
def acknowledgement_policy(user, action: str, obj) -> bool:
    return action == "print" and is_mail_office(user)


@register_document_access
def print_batches_readable(user, document) -> bool:
    """The mail office prints (and prints again) the batches of paper acknowledgements."""
    from app.deadlines.services import BATCH_KIND

    return document.kind == BATCH_KIND and is_mail_office(user)
