"""Who may see and act on cases; who may read the documents attached to them.

A confidential case is visible only to its service in charge and the people given
access. Other cases are also visible to the mail office, the services in copy, the
person who registered it and the agents working on its circuit.
"""

from __future__ import annotations

from sqlalchemy import Integer, and_, cast, false, or_, select, true

from app.core.extensions import db
from app.core.permissions import can, policy
from app.correspondence.models import (
    CaseAccess,
    CaseCopy,
    CaseDocument,
    Channel,
    Confidentiality,
    Correspondence,
)
from app.documents.services import register_document_access

MAIL_OFFICE_GROUP = "courrier-central"


def is_mail_office(user) -> bool:
    """Members of the mail office register paper, API items and see the whole registry."""
    return MAIL_OFFICE_GROUP in user.group_names


def in_service(user, case: Correspondence) -> bool:
    """True when the user belongs to the service in charge of the case."""
    if case.service_group and case.service_group in user.group_names:
        return True
    return case.service_id is not None and case.service_id == user.org_unit_id


def can_view(user, case: Correspondence) -> bool:
    if in_service(user, case) or any(g.user_id == user.id for g in case.grants):
        return True
    if case.confidentiality == Confidentiality.CONFIDENTIAL:
        return False
    if is_mail_office(user) or case.registered_by_id == user.id:
        return True
    groups = set(user.group_names)
    if any(c.group.name in groups for c in case.copies):
        return True
    if case.process_instance_id is not None:
        from app.engine.models import ProcessInstance

        instance = db.session.get(ProcessInstance, case.process_instance_id)
        if instance is not None and can(user, "view", "instance", instance):
            return True
    return _works_on_its_reply(user, case)


def _works_on_its_reply(user, case: Correspondence) -> bool:
    """Who gives the visa or signs the case's reply (its parapheur) reads the case too."""
    from app.parapheur.models import Folder

    folders = db.session.execute(
        select(Folder).where(
            Folder.origin_type == "correspondence", Folder.origin_id == str(case.id)
        )
    ).scalars()
    return any(can(user, "view", "folder", folder) for folder in folders)


def visible_condition(user):
    """The SQL condition selecting the cases ``user`` may see (for lists and search)."""
    if user.is_admin:
        return true()
    from app.auth.models import Group
    from app.engine.models import HumanTask, TaskCandidate

    groups = user.group_names
    group_ids = select(Group.id).where(Group.name.in_(groups)) if groups else None
    service = or_(
        Correspondence.service_group.in_(groups) if groups else false(),
        and_(
            Correspondence.service_id.is_not(None),
            Correspondence.service_id == user.org_unit_id,
        )
        if user.org_unit_id
        else false(),
        Correspondence.id.in_(
            select(CaseAccess.correspondence_id).where(CaseAccess.user_id == user.id)
        ),
    )
    if is_mail_office(user):
        return or_(service, Correspondence.confidentiality == Confidentiality.NORMAL)
    participation = select(HumanTask.instance_id).where(
        or_(
            HumanTask.assignee_id == user.id,
            HumanTask.completed_by_id == user.id,
            HumanTask.id.in_(
                select(TaskCandidate.task_id).where(
                    or_(
                        TaskCandidate.user_id == user.id,
                        TaskCandidate.group_name.in_(groups) if groups else false(),
                    )
                )
            ),
        )
    )
    from app.parapheur.models import Folder

    reply_of = select(cast(Folder.origin_id, Integer)).where(
        Folder.origin_type == "correspondence", Folder.process_instance_id.in_(participation)
    )
    others = or_(
        Correspondence.registered_by_id == user.id,
        Correspondence.id.in_(reply_of),
        Correspondence.id.in_(
            select(CaseCopy.correspondence_id).where(CaseCopy.group_id.in_(group_ids))
        )
        if group_ids is not None
        else false(),
        Correspondence.process_instance_id.in_(participation),
    )
    return or_(service, and_(Correspondence.confidentiality == Confidentiality.NORMAL, others))


@policy("correspondence")
def correspondence_policy(user, action: str, obj) -> bool:
    if action == "register":
        # obj is the channel: anyone writes internal notes; the mail office registers the rest
        return obj == Channel.INTERNAL or is_mail_office(user)
    if action == "view":
        return can_view(user, obj)
    if action == "manage":
        return in_service(user, obj) or (
            obj.confidentiality == Confidentiality.NORMAL and is_mail_office(user)
        )
    if action == "grant":
        return in_service(user, obj)
    return False


@policy("answer")
def answer_policy(user, action: str, obj) -> bool:
    return action == "print" and is_mail_office(user)  # paper answers leave by the mail office


@register_document_access
def answer_batches_readable(user, document) -> bool:
    """The mail office prints (and prints again) the batches of signed paper answers."""
    from app.correspondence.replies import PRINT_BATCH_KIND

    return document.kind == PRINT_BATCH_KIND and is_mail_office(user)


@policy("mailbox")
def mailbox_policy(user, action: str, obj) -> bool:
    return False  # mailboxes are managed by admins only (admins pass every check)


@register_document_access
def case_documents_readable(user, document) -> bool:
    """A document attached to a case is readable by whoever may see one of its cases."""
    cases = db.session.execute(
        select(Correspondence)
        .join(CaseDocument, CaseDocument.correspondence_id == Correspondence.id)
        .where(CaseDocument.document_id == document.id)
    ).scalars()
    return any(can_view(user, case) for case in cases)
