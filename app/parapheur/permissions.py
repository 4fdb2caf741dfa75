"""Who may see and act on folders, and read their documents."""

from __future__ import annotations

from sqlalchemy import or_, select

from app.core.extensions import db
from app.core.permissions import can, policy
from app.documents.services import register_document_access
from app.parapheur.models import Folder, FolderDocument, SignatureRecord


@policy("folder")
def folder_policy(user, action: str, folder: Folder | None) -> bool:
    if action == "create":
        return True  # any agent may put documents into a parapheur
    if folder is None:
        return False
    if action == "view":
        return folder.drafter_id == user.id or _takes_part(user, folder)
    if action == "resubmit":
        return folder.drafter_id == user.id
    return False


def _takes_part(user, folder: Folder) -> bool:
    """Participants of the circuit, and delegates of a signer the folder waits for."""
    if folder.instance is None:
        return False
    if can(user, "view", "instance", folder.instance):
        return True
    from app.parapheur.services import is_signature_delegate, open_tasks

    return any(is_signature_delegate(user, task) for task in open_tasks(folder))


@register_document_access
def folder_document_access(user, document) -> bool:
    """A document of a folder (original or signed version) is readable by its viewers."""
    folder_ids = set(
        db.session.execute(
            select(FolderDocument.folder_id).where(
                or_(
                    FolderDocument.original_id == document.id,
                    FolderDocument.current_id == document.id,
                )
            )
        ).scalars()
    )
    folder_ids |= set(
        db.session.execute(
            select(SignatureRecord.folder_id).where(
                or_(
                    SignatureRecord.output_document_id == document.id,
                    SignatureRecord.input_document_id == document.id,
                ),
                SignatureRecord.folder_id.is_not(None),
            )
        ).scalars()
    )
    return any(folder_policy(user, "view", db.session.get(Folder, fid)) for fid in folder_ids)
