"""What the engine calls: completion hooks of visa/signature/correction tasks, service tasks.

A visa, a signature or a correction is an ordinary task of a BPMN circuit, completed from
the inbox, the folder page or ``POST /api/v1/tasks/{id}/complete``: whichever way, the hook
records the decision on the folder and, for a signature, signs the documents before the
circuit moves on, in the same transaction.
"""

from __future__ import annotations

from app.engine.handlers import (
    HandlerContext,
    completion_hook,
    on_instance_completed,
    on_instance_terminated,
    service_handler,
)
from app.engine.permissions import register_candidate_rule
from app.inbox.services import register_task_documents
from app.parapheur import services

completion_hook("visa")(services.record_visa)
completion_hook("signature")(services.sign_step)
completion_hook("parapheur_correction")(services.record_correction)
register_candidate_rule(services.is_signature_delegate, offers=services.delegated_signature_offers)
on_instance_completed(services.close_folder_of)
on_instance_terminated(services.abandon_folder_of)


@register_task_documents
def folder_documents(task, viewer) -> list:
    """A step of a folder shows the folder's current documents on the inbox's task page."""
    folder = services.folder_for_instance(task.instance_id)
    return [entry.current for entry in folder.current_documents()] if folder else []


def _folder_id(context: HandlerContext) -> int:
    folder_id = context.data.get("folder_id")
    if not isinstance(folder_id, int):
        raise ValueError("la variable folder_id (identifiant du parapheur) est absente")
    return folder_id


@service_handler("parapheur_seal")
def seal(context: HandlerContext) -> dict:
    """Seal the folder's signed documents with the server seal."""
    sealed = services.seal_folder(_folder_id(context))
    return {"sealed_documents": [d.id for d in sealed]}


@service_handler("parapheur_designate")
def designate(context: HandlerContext) -> dict:
    """The signer named by unit (``signer_unit``, a unit code) is that unit's head."""
    return {"signer": services.unit_head_email(context.data.get("signer_unit"))}
