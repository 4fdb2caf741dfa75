"""Who may do what on contacts.

- every active agent reads, searches, creates and corrects contacts (the mail office
  registers senders all day; every change is audited and versioned);
- merging, undoing a merge and reviewing the duplicates queue belong to the members of the
  ``referents-contacts`` group (the GRC referents) — a merge touches every exchange;
- GDPR actions (export of a person's data, anonymisation) belong to the ``dpo`` group
  (the data protection officer and their deputies);
- administrators may do everything (the core check), including retention rules.
"""

from __future__ import annotations

from app.core.permissions import policy

REFERENTS_GROUP = "referents-contacts"
DPO_GROUP = "dpo"

_EVERY_AGENT = {"read", "create", "update", "link"}
_REFERENTS = {"merge", "unmerge", "review_duplicates"}
_DPO = {"export", "anonymise"}


@policy("contact")
def contact_policy(user, action: str, contact) -> bool:
    if action in _EVERY_AGENT:
        return True
    groups = set(user.group_names)
    if action in _REFERENTS:
        return REFERENTS_GROUP in groups
    if action in _DPO:
        return DPO_GROUP in groups
    return False  # "retention": administrators only
