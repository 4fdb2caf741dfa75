"""Business actions of the parapheur: folders, visas, signatures, seals, keys, delegations.

Public actions commit. The functions marked "in the engine's transaction" are called by
the engine when a person completes a visa, signature or correction task (completion
hooks, see handlers.py) or by a service task: they flush and let the engine commit, so a
refused signature leaves the task open and nothing half-done.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from flask import current_app, render_template
from sqlalchemy import Date, Integer, and_, bindparam, or_, select

from app.auth.models import Group, OrgUnit, User
from app.auth.services import find_user_by_email, get_group_by_name
from app.core import audit
from app.core.db import in_values, utcnow
from app.core.errors import (
    Conflict,
    MissiveError,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from app.core.extensions import db
from app.core.pagination import keyset_page
from app.core.permissions import can, require
from app.documents import services as documents
from app.documents.models import Document
from app.documents.rendering import html_to_pdf, sanitise_html
from app.engine import services as engine
from app.engine.models import HumanTask, TaskCandidate, TaskStatus
from app.parapheur import keystore, signing
from app.parapheur.models import (
    FOLDER_TYPE_LABELS,
    CertificateKind,
    Delegation,
    Folder,
    FolderDocument,
    FolderStatus,
    FolderStep,
    FolderType,
    KeySource,
    SignatureKind,
    SignatureRecord,
    SigningCertificate,
)

log = logging.getLogger(__name__)

PARIS = ZoneInfo("Europe/Paris")
ADHOC_PROCESS = "parapheur_adhoc"
TYPED_PROCESS = "parapheur_par_type"
MAX_STEPS = 20
MAX_DOCUMENTS = 20
DEFAULT_MENTION = "Pour le Président et par délégation"
STEP_KINDS = {"visa": "visa", "signature": "signature", "parapheur_correction": "correction"}


def today() -> date:
    """The date in the Département's time zone (delegations are in local dates)."""
    return utcnow().astimezone(PARIS).date()


def _local(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


def euros_to_cents(amount: Any, field: str = "amount") -> int | None:
    """An amount in euros (number or French-formatted text) as integer cents."""
    if amount in (None, ""):
        return None
    try:
        value = float(str(amount).replace("\u202f", "").replace(" ", "").replace(",", "."))
    except ValueError:
        value = -1
    if value < 0 or value > 1e12:
        raise ValidationFailed(
            "Montant invalide.", errors=[{"field": field, "message": "Montant positif attendu."}]
        )
    return round(value * 100)


# --- folders -------------------------------------------------------------------------------


@dataclass
class Upload:
    """A file received from a form, the API or another domain."""

    filename: str
    data: bytes


def _check_type(value: str) -> FolderType:
    try:
        return FolderType(value)
    except ValueError as exc:
        raise ValidationFailed(
            "Type de document inconnu.",
            errors=[
                {
                    "field": "type",
                    "message": "Choix possibles : " + ", ".join(t.value for t in FolderType) + ".",
                }
            ],
        ) from exc


def _check_circuit(steps: list[dict]) -> list[dict]:
    """Ad-hoc steps → ``[{"kind", "user", "group"}]`` with people and groups that exist."""
    if not steps:
        raise ValidationFailed(
            "Le circuit doit comporter au moins une étape.",
            errors=[{"field": "circuit", "message": "Au moins une étape."}],
        )
    if len(steps) > MAX_STEPS:
        raise ValidationFailed(
            "Circuit trop long.",
            errors=[{"field": "circuit", "message": f"Au plus {MAX_STEPS} étapes."}],
        )
    checked, errors = [], []
    for index, step in enumerate(steps):
        where = f"circuit.{index}"
        kind = step.get("step")
        if kind not in ("visa", "signature"):
            errors.append({"field": f"{where}.step", "message": "« visa » ou « signature »."})
            continue
        email, group = step.get("assignee"), step.get("group")
        if bool(email) == bool(group):
            errors.append(
                {
                    "field": where,
                    "message": "Indiquez soit « assignee » (une adresse), soit « group ».",
                }
            )
            continue
        if email:
            user = find_user_by_email(email)
            if user is None or not user.active:
                errors.append(
                    {
                        "field": f"{where}.assignee",
                        "message": f"Aucun agent actif n'a l'adresse {email}.",
                    }
                )
                continue
            checked.append({"kind": kind, "user": user.email, "group": None})
        else:
            if get_group_by_name(group) is None:
                errors.append({"field": f"{where}.group", "message": f"Groupe inconnu : {group}."})
                continue
            checked.append({"kind": kind, "user": None, "group": group})
    if errors:
        raise ValidationFailed("Le circuit n'est pas valide.", errors=errors)
    return checked


def _read_pdfs(uploads: list[Upload], field: str) -> list[tuple[Upload, dict]]:
    read = []
    for upload in uploads:
        if not upload.data:
            raise ValidationFailed(
                f"« {upload.filename} » est vide.",
                errors=[{"field": field, "message": "Fichier vide."}],
            )
        read.append((upload, signing.read_layout(upload.data, upload.filename)))
    return read


def _attach(
    folder: Folder,
    uploads: list[tuple[Upload, dict]],
    role: str,
    actor: User,
    previous: list[FolderDocument] | None = None,
) -> None:
    for position, (upload, layout) in enumerate(uploads):
        parent = previous[position].original if previous and position < len(previous) else None
        document = documents.add_document(
            upload.data,
            filename=upload.filename,
            mime_type="application/pdf",
            actor=actor,
            description=f"Parapheur n° {folder.id} — {folder.title}"[:500],
            parent=parent,
        )
        db.session.add(
            FolderDocument(
                folder=folder,
                version=folder.version,
                role=role,
                position=position,
                original=document,
                current=document,
                layout=layout,
            )
        )


def create_folder(
    *,
    title: str,
    type: str,
    actor: User,
    documents: list[Upload],
    annexes: list[Upload] | None = None,
    circuit: list[dict] | None = None,
    process_key: str | None = None,
    variables: dict | None = None,
    amount: Any = None,
    seal: bool = False,
    origin: tuple[str, str] | None = None,
    commit: bool = True,
) -> Folder:
    """Put documents into a new parapheur and start its circuit.

    The circuit is, in order of precedence: the ad-hoc ``circuit`` steps (the generic
    diagram), a named ``process_key`` with its ``variables``, or the circuit chosen by
    the DMN rules for the document type and amount. ``origin`` names what the folder
    answers (``("correspondence", case id)``): that domain's outcome listeners are told
    when the folder is completed or abandoned. With ``commit=False`` everything happens
    in the caller's transaction (another circuit's completion hook).
    """
    require(actor, "create", "folder")
    title = (title or "").strip()
    errors = []
    if not title:
        errors.append({"field": "title", "message": "Ce champ est obligatoire."})
    if not documents:
        errors.append({"field": "documents", "message": "Au moins un document PDF."})
    if len(documents) + len(annexes or []) > MAX_DOCUMENTS:
        errors.append({"field": "documents", "message": f"Au plus {MAX_DOCUMENTS} fichiers."})
    if errors:
        raise ValidationFailed("Le parapheur est incomplet.", errors=errors)
    folder_type = _check_type(type)
    cents = euros_to_cents(amount)
    steps = _check_circuit(circuit) if circuit is not None else None
    key = ADHOC_PROCESS if steps is not None else (process_key or TYPED_PROCESS)
    mains, extras = _read_pdfs(documents, "documents"), _read_pdfs(annexes or [], "annexes")
    try:
        folder = Folder(
            title=title[:300],
            type=folder_type,
            amount_cents=cents,
            drafter=actor,
            process_key=key,
            circuit=steps or [],
            seal=bool(seal),
            origin_type=origin[0] if origin else None,
            origin_id=str(origin[1]) if origin else None,
        )
        db.session.add(folder)
        db.session.flush()
        _attach(folder, mains, "main", actor)
        _attach(folder, extras, "annex", actor)
        db.session.add(
            FolderStep(
                folder=folder,
                folder_version=1,
                kind="submit",
                name="Dépôt du parapheur",
                actor=actor,
                decision="submit",
            )
        )
        audit.record(
            "folder.create",
            actor=actor,
            object_type="folder",
            object_id=folder.id,
            data={
                "type": folder_type.value,
                "process": key,
                "documents": len(mains),
                "annexes": len(extras),
            },
        )
        data = {**(variables or {}), **_case_data(folder)}
        if steps is not None:
            data.update({"steps": steps, "step_index": 0})
        instance = engine.start_instance(
            key,
            data,
            actor,
            business_key=f"parapheur-{folder.id}",
            title=folder.title,
            commit=commit,
        )
    except Exception:
        if commit:
            db.session.rollback()
        raise
    folder.process_instance_id = instance.id
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return folder


def _case_data(folder: Folder) -> dict:
    """What circuits read: ids, type, amount, who drafted, whether to seal."""
    return {
        "folder_id": folder.id,
        "title": folder.title,
        "type": folder.type.value,
        "document_type": folder.type.value,
        "amount": folder.amount if folder.amount is not None else 0,
        "drafter": folder.drafter.email,
        "seal": folder.seal,
        "decision": "",
    }


def create_folder_from_draft(
    *,
    title: str,
    type: str,
    actor: User,
    html: str | None = None,
    template: str | None = None,
    context: dict | None = None,
    filename: str | None = None,
    **options: Any,
) -> Folder:
    """Render a reply draft (sanitised HTML, or a template with its context) to PDF with
    WeasyPrint and start a parapheur on it; ``options`` are those of ``create_folder``.

    Print ``[[signature]]`` where the signature stamp should go (the letter template
    ``parapheur/letter.html`` does, in white so it stays invisible).
    """
    if bool(html) == bool(template):
        raise ValidationFailed(
            "Indiquez soit un texte HTML, soit un modèle.",
            errors=[{"field": "html", "message": "HTML ou modèle."}],
        )
    if html:
        page = render_template(
            "parapheur/letter.html", title=title, body=sanitise_html(html), **(context or {})
        )
    else:
        page = render_template(template, title=title, **(context or {}))
    pdf = html_to_pdf(page)
    name = filename or f"{_slug(title) or 'document'}.pdf"
    return create_folder(
        title=title, type=type, actor=actor, documents=[Upload(name, pdf)], **options
    )


def _slug(text: str) -> str:
    import re
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:80]


def get_folder(folder_id: int, actor: User | None = None, action: str = "view") -> Folder:
    """A folder the actor may see (or act on)."""
    folder = db.session.get(Folder, folder_id)
    if folder is None:
        raise NotFound("Parapheur introuvable.")
    if actor is not None:
        require(actor, action, "folder", folder)
    return folder


def folder_for_instance(instance_id: int) -> Folder | None:
    """The folder a process instance carries, if any."""
    return db.session.execute(
        select(Folder).where(Folder.process_instance_id == instance_id)
    ).scalar_one_or_none()


def _task_scope(user: User):
    """Instance ids where the user has an open task, directly or by delegation."""
    groups = user.group_names
    direct = select(HumanTask.instance_id).where(
        HumanTask.status == TaskStatus.OPEN,
        or_(
            HumanTask.assignee_id == user.id,
            HumanTask.id.in_(
                select(TaskCandidate.task_id).where(
                    or_(
                        TaskCandidate.user_id == user.id,
                        TaskCandidate.group_name.in_(groups) if groups else False,
                    )
                )
            ),
        ),
    )
    delegators = select(Delegation.delegator_id).where(*_current_delegations(user))
    delegated = select(HumanTask.instance_id).where(
        HumanTask.status == TaskStatus.OPEN,
        HumanTask.form_key == "signature",
        HumanTask.assignee_id.is_(None),
        HumanTask.id.in_(
            select(TaskCandidate.task_id).where(TaskCandidate.user_id.in_(delegators))
        ),
    )
    return direct.union(delegated)


def _current_delegations(delegate: User) -> list:
    moment = today()
    return [
        Delegation.delegate_id == delegate.id,
        Delegation.revoked_at.is_(None),
        Delegation.valid_from <= moment,
        or_(Delegation.valid_until.is_(None), Delegation.valid_until >= moment),
    ]


def list_folders(
    actor: User,
    *,
    scope: str = "todo",
    status: str | None = None,
    type: str | None = None,
    q: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Folder], str | None]:
    """Folders for a list: to handle (``todo``), drafted by me (``mine``) or all I may see."""
    stmt = select(Folder)
    if scope == "todo":
        stmt = stmt.where(Folder.process_instance_id.in_(_task_scope(actor)))
    elif scope == "mine":
        stmt = stmt.where(Folder.drafter_id == actor.id)
    elif not actor.is_admin:
        participated = select(HumanTask.instance_id).where(
            or_(HumanTask.completed_by_id == actor.id, HumanTask.assignee_id == actor.id)
        )
        stmt = stmt.where(
            or_(
                Folder.drafter_id == actor.id,
                Folder.process_instance_id.in_(_task_scope(actor)),
                Folder.process_instance_id.in_(participated),
            )
        )
    if status:
        stmt = stmt.where(Folder.status == FolderStatus(status))
    if type:
        stmt = stmt.where(Folder.type == _check_type(type))
    if q:
        stmt = stmt.where(Folder.title.ilike(f"%{q.strip()}%"))
    return keyset_page(stmt, [Folder.id], cursor=cursor, limit=limit, descending=True)


def open_tasks(folder: Folder) -> list[HumanTask]:
    """The folder's current steps (open tasks of its circuit)."""
    if folder.process_instance_id is None:
        return []
    return list(
        db.session.execute(
            select(HumanTask)
            .where(
                HumanTask.instance_id == folder.process_instance_id,
                HumanTask.status == TaskStatus.OPEN,
            )
            .order_by(HumanTask.id)
        ).scalars()
    )


def actionable_task(folder: Folder, actor: User) -> HumanTask | None:
    """The open step of this folder the actor may complete now, if any."""
    for task in open_tasks(folder):
        if can(actor, "complete", "task", task) and task.assignee_id in (None, actor.id):
            return task
    return None


def folder_steps(folder: Folder) -> list[dict]:
    """The circuit as people see it: what was done (who, when, decision, comment), then
    what is waiting (for whom)."""
    steps = []
    for step in folder.steps:
        steps.append(
            {
                "kind": step.kind,
                "name": step.name,
                "status": "done",
                "folder_version": step.folder_version,
                "decision": step.decision,
                "comment": step.comment,
                "at": step.at.isoformat(),
                "by": step.actor.email if step.actor else None,
                "by_name": step.actor.name if step.actor else "Missive",
                "on_behalf_of": step.on_behalf_of.email if step.on_behalf_of else None,
                "on_behalf_of_name": step.on_behalf_of.name if step.on_behalf_of else None,
                "task_id": step.task_id,
            }
        )
    for task in open_tasks(folder):
        users = [c.user_id for c in task.candidates if c.user_id]
        people = [db.session.get(User, uid) for uid in users]
        steps.append(
            {
                "kind": STEP_KINDS.get(task.form_key or "", task.form_key or "task"),
                "name": task.name,
                "status": "pending",
                "folder_version": folder.version,
                "decision": None,
                "comment": None,
                "at": task.created_at.isoformat(),
                "by": None,
                "by_name": None,
                "on_behalf_of": None,
                "on_behalf_of_name": None,
                "task_id": task.id,
                "assignee": task.assignee.email if task.assignee else None,
                "candidate_users": [p.email for p in people if p],
                "candidate_groups": list(task.candidate_groups or []),
                "due_at": task.due_at.isoformat() if task.due_at else None,
            }
        )
    return steps


def document_versions(folder: Folder) -> list[dict]:
    """Every PDF of the folder, version by version: original, then each signed state."""
    records: dict[int, list[SignatureRecord]] = {}
    for record in db.session.execute(
        select(SignatureRecord)
        .where(SignatureRecord.folder_id == folder.id)
        .order_by(SignatureRecord.id)
    ).scalars():
        records.setdefault(record.folder_document_id, []).append(record)
    items = []
    for entry in folder.documents:
        original = entry.original
        items.append(
            {
                "id": entry.id,
                "role": entry.role,
                "folder_version": entry.version,
                "position": entry.position,
                "current": entry.version == folder.version,
                "filename": original.filename,
                "current_document_id": entry.current_id,
                "pages": (entry.layout or {}).get("pages"),
                "versions": [
                    {
                        "document_id": original.id,
                        "kind": "original",
                        "sha256": original.sha256,
                        "size": original.size,
                        "created_at": original.created_at.isoformat(),
                    }
                ]
                + [
                    {
                        "document_id": r.output_document_id,
                        "kind": r.kind.value,
                        "sha256": r.output_sha256,
                        "size": r.output_document.size,
                        "created_at": r.signed_at.isoformat(),
                        "level": r.level,
                        "field": r.field_name,
                        "input_document_id": r.input_document_id,
                        "input_sha256": r.input_sha256,
                        "signed_by": r.signer.email if r.signer else None,
                        "signed_by_name": r.signer.name if r.signer else r.certificate.subject,
                        "on_behalf_of": r.on_behalf_of.email if r.on_behalf_of else None,
                    }
                    for r in records.get(entry.id, [])
                ],
            }
        )
    return items


def add_version(
    folder_id: int, actor: User, documents_: list[Upload], annexes: list[Upload] | None = None
) -> Folder:
    """The drafter deposits corrected documents after a rejection (a new folder version)."""
    folder = get_folder(folder_id, actor, "resubmit")
    if folder.status != FolderStatus.REJECTED:
        raise Conflict("Une nouvelle version ne peut être déposée qu'après un refus.")
    if not documents_:
        raise ValidationFailed(
            "Déposez la version corrigée du document.",
            errors=[{"field": "documents", "message": "Au moins un PDF."}],
        )
    mains = _read_pdfs(documents_, "documents")
    extras = _read_pdfs(annexes, "annexes") if annexes else None
    previous_main = folder.current_documents("main")
    previous_annexes = folder.current_documents("annex")
    folder.version += 1
    _attach(folder, mains, "main", actor, previous_main)
    if extras is not None:
        _attach(folder, extras, "annex", actor, previous_annexes)
    else:  # annexes carry over unchanged
        for old in previous_annexes:
            db.session.add(
                FolderDocument(
                    folder=folder,
                    version=folder.version,
                    role="annex",
                    position=old.position,
                    original=old.original,
                    current=old.current,
                    layout=old.layout,
                )
            )
    folder.updated_at = utcnow()
    audit.record(
        "folder.version",
        actor=actor,
        object_type="folder",
        object_id=folder.id,
        data={"version": folder.version, "documents": len(mains)},
    )
    db.session.commit()
    return folder


def resubmit_folder(
    folder_id: int,
    actor: User,
    documents_: list[Upload],
    annexes: list[Upload] | None = None,
    comment: str | None = None,
) -> Folder:
    """Deposit the corrected version and send the folder round its circuit again."""
    folder = add_version(folder_id, actor, documents_, annexes)
    task = _correction_task(folder)
    engine.complete_task(task.id, {"decision": "resubmit", "comment": comment or ""}, actor)
    db.session.refresh(folder)
    return folder


def abandon_folder(folder_id: int, actor: User, comment: str | None = None) -> Folder:
    """The drafter gives up a rejected folder: its circuit ends."""
    folder = get_folder(folder_id, actor, "resubmit")
    task = _correction_task(folder)
    engine.complete_task(task.id, {"decision": "abandon", "comment": comment or ""}, actor)
    db.session.refresh(folder)
    return folder


def _correction_task(folder: Folder) -> HumanTask:
    for task in open_tasks(folder):
        if task.form_key == "parapheur_correction":
            return task
    raise Conflict("Ce parapheur n'attend pas de correction.")


# --- steps, run inside the engine's transaction (completion hooks) ---------------------------


def record_visa(task: HumanTask, data: dict, actor: User) -> dict | None:
    """A visa was given or refused (in the engine's transaction)."""
    folder = folder_for_instance(task.instance_id)
    if folder is None:
        return None
    _require_circulating(folder)
    decision = data.get("decision")
    if decision == "reject":
        return _reject(folder, task, actor, "visa", data.get("comment"))
    _record_step(folder, task, actor, "visa", "approve", data.get("comment"))
    return None


def record_correction(task: HumanTask, data: dict, actor: User) -> dict | None:
    """The drafter resubmits or abandons a rejected folder (in the engine's transaction)."""
    folder = folder_for_instance(task.instance_id)
    if folder is None:
        return None
    if folder.status != FolderStatus.REJECTED:
        raise Conflict("Ce parapheur n'est pas en correction.")
    decision = data.get("decision")
    if decision == "resubmit":
        if (folder.rejected_version or 0) >= folder.version:
            raise ValidationFailed(
                "Déposez d'abord la version corrigée du document.",
                errors=[
                    {"field": "documents", "message": "Aucune nouvelle version depuis le refus."}
                ],
            )
        folder.status = FolderStatus.IN_PROGRESS
        _record_step(folder, task, actor, "correction", "resubmit", data.get("comment"))
        return {"folder_version": folder.version}
    folder.status = FolderStatus.ABANDONED
    folder.completed_at = utcnow()
    _record_step(folder, task, actor, "correction", "abandon", data.get("comment"))
    audit.record("folder.abandon", actor=actor, object_type="folder", object_id=folder.id)
    _folder_ended(folder)
    return None


def _require_circulating(folder: Folder) -> None:
    if folder.status != FolderStatus.IN_PROGRESS:
        raise Conflict(
            f"Ce parapheur est « {folder.status_label} » : cette étape ne peut plus être accomplie."
        )


def _new_step(
    folder: Folder,
    task: HumanTask | None,
    actor: User | None,
    kind: str,
    decision: str,
    comment: str | None,
    on_behalf_of: User | None = None,
    delegation: Delegation | None = None,
) -> FolderStep:
    step = FolderStep(
        folder=folder,
        folder_version=folder.version,
        kind=kind,
        task_id=task.id if task else None,
        element_id=task.element_id if task else None,
        name=task.name if task else _STEP_NAMES.get(kind, kind),
        actor=actor,
        on_behalf_of=on_behalf_of,
        delegation_id=delegation.id if delegation else None,
        decision=decision,
        comment=(comment or None),
    )
    db.session.add(step)
    folder.updated_at = utcnow()
    db.session.flush()
    return step


def _audit_step(step: FolderStep, **details: Any) -> None:
    audit.record(
        f"folder.{step.kind}",
        actor=step.actor,
        object_type="folder",
        object_id=step.folder_id,
        data={
            "decision": step.decision,
            "task": step.task_id,
            "version": step.folder_version,
            "on_behalf_of": step.on_behalf_of_id,
            **details,
        },
    )


def _record_step(
    folder: Folder,
    task: HumanTask | None,
    actor: User | None,
    kind: str,
    decision: str,
    comment: str | None,
) -> FolderStep:
    step = _new_step(folder, task, actor, kind, decision, comment)
    _audit_step(step)
    return step


_STEP_NAMES = {
    "seal": "Cachet serveur",
    "submit": "Dépôt du parapheur",
    "termination": "Circuit arrêté",
}


def _reject(folder: Folder, task: HumanTask, actor: User, kind: str, reason: str | None) -> dict:
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise ValidationFailed(
            "Le motif du refus est obligatoire.",
            errors=[{"field": "comment", "message": "Le motif du refus est obligatoire."}],
        )
    folder.status = FolderStatus.REJECTED
    folder.rejection_reason = reason
    folder.rejected_by = actor
    folder.rejected_at = utcnow()
    folder.rejected_version = folder.version
    _record_step(folder, task, actor, kind, "reject", reason)
    # the drafter's correction task shows who refused and why
    return {"rejection_reason": reason, "rejected_by": actor.name}


def sign_step(task: HumanTask, data: dict, actor: User) -> dict | None:
    """The signer signs every main document of the folder, or refuses it (in the engine's
    transaction). Delegation, certificate and level are checked before anything is signed.
    """
    folder = folder_for_instance(task.instance_id)
    if folder is None:
        return None
    _require_circulating(folder)
    if data.get("decision") == "reject":
        return _reject(folder, task, actor, "signature", data.get("comment"))
    principal, delegation = signing_capacity(task, folder, actor)
    certificate = active_certificate(actor)
    targets = folder.current_documents("main")
    signed = []
    moment = utcnow()
    stamp = _stamp_lines(actor, delegation, moment)
    reason = (
        f"{delegation.mention} — {folder.type_label}"
        if delegation
        else f"Signature — {folder.type_label}"
    )
    level, tsa_url = pades_level()
    roots = _signing_roots(certificate)
    with keystore.signer_for(certificate) as signer:
        for entry in targets:  # the expensive part, before any row is written
            data_in = documents.content(entry.current)
            where = signing.placement(
                entry.layout or {}, _stamp_index(entry, SignatureKind.SIGNATURE)
            )
            result = signing.sign_pdf(
                data_in,
                signer,
                level=level,
                stamp_lines=stamp,
                where=where,
                reason=reason,
                signer_name=actor.name,
                tsa_url=tsa_url,
                trust_roots=roots,
            )
            signed.append((entry, result))
    step = _new_step(
        folder,
        task,
        actor,
        "signature",
        "sign",
        data.get("comment"),
        on_behalf_of=principal,
        delegation=delegation,
    )
    outputs = [
        _store_signed(
            folder,
            entry,
            result,
            certificate,
            SignatureKind.SIGNATURE,
            actor,
            step,
            principal,
            delegation,
            reason,
        )
        for entry, result in signed
    ]
    _audit_step(step, certificate=certificate.fingerprint, documents=outputs_audit(outputs))
    return {"signed_documents": [d.id for d in outputs], "signed_by": actor.email}


def _stamp_index(entry: FolderDocument, kind: SignatureKind) -> int:
    return (
        db.session.scalar(
            select(db.func.count())
            .select_from(SignatureRecord)
            .where(SignatureRecord.folder_document_id == entry.id, SignatureRecord.kind == kind)
        )
        or 0
    )


def _stamp_lines(actor: User, delegation: Delegation | None, moment: datetime) -> list[str]:
    if delegation is not None:
        return [
            f"{delegation.mention},",
            actor.title or "",
            actor.name,
            f"Signé électroniquement le {_local(moment)}",
        ]
    return ["Signé électroniquement par", actor.name, actor.title or "", f"le {_local(moment)}"]


def _store_signed(
    folder: Folder | None,
    entry: FolderDocument | None,
    result: signing.Signed,
    certificate: SigningCertificate,
    kind: SignatureKind,
    actor: User | None,
    step: FolderStep | None,
    principal: User | None,
    delegation: Delegation | None,
    reason: str,
    source: Document | None = None,
) -> Document:
    source = source if source is not None else entry.current
    output = documents.add_document(
        result.data,
        filename=source.filename,
        mime_type="application/pdf",
        actor=actor,
        kind="signed" if kind == SignatureKind.SIGNATURE else "sealed",
        description=reason[:500],
        parent=source,
        flags={"signature_level": result.level, "field": result.field_name},
    )
    db.session.add(
        SignatureRecord(
            kind=kind,
            folder_id=folder.id if folder else None,
            folder_document_id=entry.id if entry else None,
            step_id=step.id if step else None,
            input_document_id=source.id,
            output_document_id=output.id,
            input_sha256=source.sha256,
            output_sha256=output.sha256,
            certificate_id=certificate.id,
            signer_id=actor.id if actor else None,
            on_behalf_of_id=principal.id if principal else None,
            delegation_id=delegation.id if delegation else None,
            level=result.level,
            field_name=result.field_name,
            reason=reason[:300],
        )
    )
    if entry is not None:
        entry.current = output
    db.session.flush()
    return output


def outputs_audit(outputs: list[Document]) -> list[dict]:
    """What the audit keeps of signed documents: input and output ids and hashes."""
    return [
        {
            "input": d.parent_id,
            "input_sha256": d.parent.sha256,
            "output": d.id,
            "output_sha256": d.sha256,
            "level": (d.flags or {}).get("signature_level"),
        }
        for d in outputs
    ]


def pades_level() -> tuple[str, str | None]:
    """The PAdES level signatures are made at, and the timestamp authority if any."""
    tsa_url = current_app.config.get("MISSIVE_TSA_URL")
    level = (current_app.config.get("MISSIVE_PADES_LEVEL") or "").upper()
    if not level:
        level = "B-T" if tsa_url else "B-B"
    if level not in signing.LEVELS:
        raise Conflict(f"MISSIVE_PADES_LEVEL inconnu : {level} (B-B, B-T, B-LT ou B-LTA).")
    return level, tsa_url


def trust_roots() -> list[asn1_x509.Certificate]:
    """The trust anchors of this installation (MISSIVE_TRUST_ROOTS, PEM files); in
    development without any, the demo authority written by ``missive demo load``."""
    names = [
        n.strip()
        for n in (current_app.config.get("MISSIVE_TRUST_ROOTS") or "").split(os.pathsep)
        if n.strip()
    ]
    if not names and current_app.config.get("MISSIVE_ENV") == "development":
        from app.parapheur.demo import demo_ca_path

        names = [str(demo_ca_path())] if demo_ca_path().exists() else []
    roots = []
    for name in names:
        try:
            roots.extend(_load_roots(name, Path(name).stat().st_mtime))
        except (OSError, ValueError):
            log.warning("trust roots file %s unreadable", name, exc_info=True)
    return roots


_roots_cache: dict[tuple[str, float], list[asn1_x509.Certificate]] = {}


def _load_roots(path: str, mtime: float) -> list[asn1_x509.Certificate]:
    key = (path, mtime)
    if key not in _roots_cache:
        _roots_cache[key] = [
            keystore.to_asn1(c) for c in keystore.read_certificates(Path(path).read_bytes())
        ]
    return _roots_cache[key]


def _signing_roots(certificate: SigningCertificate) -> list[asn1_x509.Certificate]:
    """Anchors to build the validation path of our own signer (B-LT): the configured ones
    and the self-signed root imported with the signer's certificate."""
    own = [
        keystore.to_asn1(c)
        for c in keystore.chain_from_rows(certificate.chain_der)
        if c.subject == c.issuer
    ]
    return trust_roots() + own


def signing_capacity(
    task: HumanTask, folder: Folder, actor: User
) -> tuple[User | None, Delegation | None]:
    """Whether the actor signs in their own name (None, None) or for whom, by which
    delegation; PermissionDenied says precisely why a delegation does not apply."""
    candidate_ids = {c.user_id for c in task.candidates if c.user_id}
    if actor.id in candidate_ids or set(actor.group_names) & set(task.candidate_groups or []):
        return None, None
    if not candidate_ids and not task.candidate_groups:
        return None, None  # a task assigned by name to the actor in the diagram
    delegations = list(
        db.session.execute(
            select(Delegation)
            .where(
                Delegation.delegate_id == actor.id,
                Delegation.delegator_id.in_(candidate_ids),
                Delegation.revoked_at.is_(None),
            )
            .order_by(Delegation.id)
        ).scalars()
    )
    if not delegations:
        raise PermissionDenied(
            "Vous n'êtes pas signataire de ce parapheur et aucune "
            "délégation de signature ne vous le permet."
        )
    problems = []
    for delegation in delegations:
        problem = delegation_problem(delegation, folder.type.value, folder.amount_cents)
        if problem is None:
            return delegation.delegator, delegation
        problems.append(problem)
    raise PermissionDenied(problems[0])


def delegation_problem(
    delegation: Delegation, folder_type: str, amount_cents: int | None, on: date | None = None
) -> str | None:
    """Why a delegation does not cover this signature (None when it does)."""
    on = on or today()
    who = delegation.delegator.name
    if delegation.revoked_at is not None:
        return f"La délégation de signature de {who} a été révoquée."
    if on < delegation.valid_from:
        return (
            f"La délégation de signature de {who} ne prend effet que le "
            f"{delegation.valid_from.strftime('%d/%m/%Y')}."
        )
    if delegation.valid_until is not None and on > delegation.valid_until:
        return (
            f"La délégation de signature de {who} a pris fin le "
            f"{delegation.valid_until.strftime('%d/%m/%Y')}."
        )
    if delegation.document_types and folder_type not in delegation.document_types:
        label = FOLDER_TYPE_LABELS.get(FolderType(folder_type), folder_type)
        return (
            f"La délégation de signature de {who} ne couvre pas les documents de type « {label} »."
        )
    if (
        delegation.amount_ceiling_cents is not None
        and (amount_cents or 0) > delegation.amount_ceiling_cents
    ):
        return (
            f"Le montant ({_euros(amount_cents)}) dépasse le plafond de la délégation de "
            f"signature de {who} ({_euros(delegation.amount_ceiling_cents)})."
        )
    return None


def _euros(cents: int | None) -> str:
    value = f"{(cents or 0) / 100:,.2f}".replace(",", "\u202f").replace(".", ",")
    return f"{value} €"


def is_signature_delegate(user: User, task: HumanTask) -> bool:
    """True when the user holds an unrevoked delegation from a named signer of this open
    signature task (the engine then lets them act; scope and dates are checked at signing)."""
    if task.form_key != "signature" or task.status != TaskStatus.OPEN:
        return False
    candidate_ids = [c.user_id for c in task.candidates if c.user_id]
    if not candidate_ids:
        return False
    return (
        db.session.execute(
            select(Delegation.id)
            .where(
                Delegation.delegate_id == user.id,
                Delegation.delegator_id.in_(candidate_ids),
                Delegation.revoked_at.is_(None),
            )
            .limit(1)
        ).first()
        is not None
    )


def delegated_signature_offers():
    """``is_signature_delegate`` as SQL for the inbox's baskets: open signature tasks
    offered by name to someone who delegated their signature to the reader (``me``),
    under a delegation valid today (``day``); scope is checked at signing, as always."""
    me, day = bindparam("me", type_=Integer), bindparam("day", type_=Date)
    delegators = select(Delegation.delegator_id).where(
        Delegation.delegate_id == me,
        Delegation.revoked_at.is_(None),
        Delegation.valid_from <= day,
        or_(Delegation.valid_until.is_(None), Delegation.valid_until >= day),
    )
    return and_(HumanTask.form_key == "signature", in_values(TaskCandidate.user_id, delegators))


# --- seal ------------------------------------------------------------------------------------


def seal_certificate() -> SigningCertificate:
    """The active server seal (Conflict when none was imported)."""
    row = db.session.execute(
        select(SigningCertificate)
        .where(SigningCertificate.kind == CertificateKind.SEAL, SigningCertificate.active)
        .order_by(SigningCertificate.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if row is None:
        raise Conflict(
            "Aucun cachet serveur n'est configuré (missive certificate import --seal …)."
        )
    return row


def seal_document(
    document: Document,
    reason: str,
    *,
    visible: bool = True,
    folder_document: FolderDocument | None = None,
) -> Document:
    """Seal a PDF with the server seal: a new document (``parent`` = the input), in the
    caller's transaction (flushed, not committed), like ``add_document``.

    Other domains call it for automatic documents (acknowledgements of receipt).
    """
    if document.mime_type != "application/pdf":
        raise ValidationFailed(
            "Seul un PDF peut être scellé.",
            errors=[{"field": "document", "message": "PDF attendu."}],
        )
    certificate = seal_certificate()
    _check_dates(certificate)
    data_in = documents.content(document)
    layout = folder_document.layout if folder_document is not None else None
    if visible and layout is None:
        layout = signing.read_layout(data_in, document.filename)
    index = _stamp_index(folder_document, SignatureKind.SEAL) if folder_document else 0
    where = signing.placement(layout, index, seal=True) if visible else None
    moment = utcnow()
    name = x509.load_der_x509_certificate(certificate.certificate_der).subject.rfc4514_string()
    level, tsa_url = pades_level()
    with keystore.signer_for(certificate) as signer:
        result = signing.sign_pdf(
            data_in,
            signer,
            level=level,
            where=where,
            reason=reason,
            stamp_lines=[
                "Cachet électronique",
                _common_name(certificate),
                f"le {_local(moment)}",
                reason[:60],
            ],
            signer_name=name,
            tsa_url=tsa_url,
            trust_roots=_signing_roots(certificate),
            field_prefix="Cachet",
        )
    folder = folder_document.folder if folder_document is not None else None
    output = _store_signed(
        folder,
        folder_document,
        result,
        certificate,
        SignatureKind.SEAL,
        None,
        None,
        None,
        None,
        reason,
        source=document,
    )
    audit.record(
        "document.seal",
        object_type="document",
        object_id=output.id,
        data={
            "reason": reason[:200],
            "certificate": certificate.fingerprint,
            **outputs_audit([output])[0],
        },
    )
    return output


def _common_name(certificate: SigningCertificate) -> str:
    parsed = x509.load_der_x509_certificate(certificate.certificate_der)
    names = parsed.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else parsed.subject.rfc4514_string()


def seal_folder(folder_id: int) -> list[Document]:
    """The circuit's seal step: seal every signed main document (in the job's transaction)."""
    folder = get_folder(folder_id)
    sealed = [
        seal_document(
            entry.current, f"Cachet — {folder.type_label} n° {folder.id}", folder_document=entry
        )
        for entry in folder.current_documents("main")
    ]
    _record_step(folder, None, None, "seal", "seal", None)
    return sealed


def close_folder_of(instance) -> Folder | None:
    """The folder's circuit reached its end: the folder is completed (unless it was
    abandoned). Run by the engine in the transaction that completes the instance."""
    folder = folder_for_instance(instance.id)
    if folder is None or folder.status != FolderStatus.IN_PROGRESS:
        return folder
    folder.status = FolderStatus.COMPLETED
    folder.completed_at = folder.updated_at = utcnow()
    audit.record(
        "folder.complete",
        object_type="folder",
        object_id=folder.id,
        data={"version": folder.version, "instance": instance.id},
    )
    _folder_ended(folder)
    return folder


def abandon_folder_of(instance, actor: User | None, reason: str = "") -> Folder | None:
    """An administrator terminated the folder's circuit: the folder is abandoned. Run by
    the engine in the terminating transaction."""
    folder = folder_for_instance(instance.id)
    if folder is None or folder.status in (FolderStatus.COMPLETED, FolderStatus.ABANDONED):
        return folder
    folder.status = FolderStatus.ABANDONED
    folder.completed_at = folder.updated_at = utcnow()
    step = _new_step(
        folder,
        None,
        actor,
        "termination",
        "abandon",
        reason or "Circuit arrêté par un administrateur.",
    )
    _audit_step(step, instance=instance.id)
    audit.record(
        "folder.abandon",
        actor=actor,
        object_type="folder",
        object_id=folder.id,
        data={"instance": instance.id, "reason": reason},
    )
    _folder_ended(folder)
    return folder


# Domains that put folders into the parapheur (a case's reply) are told when one of
# theirs ends, in the ending transaction: ``listener(folder)``, by the folder's origin type.
FolderListener = Callable[[Folder], None]
_outcome_listeners: dict[str, list[FolderListener]] = {}


def on_folder_outcome(origin_type: str) -> Callable[[FolderListener], FolderListener]:
    """Register a listener told when a folder of that origin is completed or abandoned."""

    def register(listener: FolderListener) -> FolderListener:
        listeners = _outcome_listeners.setdefault(origin_type, [])
        if listener not in listeners:
            listeners.append(listener)
        return listener

    return register


def _folder_ended(folder: Folder) -> None:
    for listener in _outcome_listeners.get(folder.origin_type or "", []):
        listener(folder)


# --- batch signing -------------------------------------------------------------------------


@dataclass
class BatchResult:
    """What happened to one folder of a batch signature."""

    folder_id: int
    title: str
    documents: list[str]
    ok: bool
    message: str
    signed_document_ids: list[int]


def signature_queue(actor: User) -> list[tuple[Folder, HumanTask]]:
    """Folders waiting for the actor's signature (directly or by delegation)."""
    folders, _cursor = list_folders(
        actor, scope="todo", status=FolderStatus.IN_PROGRESS.value, limit=200
    )
    queue = []
    for folder in folders:
        for task in open_tasks(folder):
            if (
                task.form_key == "signature"
                and can(actor, "complete", "task", task)
                and task.assignee_id in (None, actor.id)
            ):
                queue.append((folder, task))
                break
    return queue


def sign_batch(
    task_ids: list[int], actor: User, opened_document_ids: set[int]
) -> list[BatchResult]:
    """Sign several folders after one confirmation; each document must have been opened.

    Each folder is its own transaction: one refusal does not stop the others.
    """
    results = []
    for task_id in task_ids:
        folder = None
        try:
            task = engine.get_task(task_id, actor, "complete")
            if task.form_key != "signature":
                raise Conflict("Cette étape n'est pas une signature.")
            folder = folder_for_instance(task.instance_id)
            if folder is None:
                raise NotFound("Parapheur introuvable.")
            require(actor, "view", "folder", folder)
            mains = folder.current_documents("main")
            unread = [e.original.filename for e in mains if e.current_id not in opened_document_ids]
            if unread:
                raise Conflict("Document non consulté : " + ", ".join(unread) + ".")
            names = [e.original.filename for e in mains]
            title, folder_id = folder.title, folder.id
            engine.complete_task(task_id, {"decision": "sign"}, actor)
            signed_ids = _signed_ids(folder_id, task_id)
            results.append(BatchResult(folder_id, title, names, True, "Signé", signed_ids))
        except MissiveError as error:
            db.session.rollback()
            results.append(
                BatchResult(
                    folder.id if folder else 0,
                    folder.title if folder else f"Tâche {task_id}",
                    [],
                    False,
                    error.detail,
                    [],
                )
            )
    audit.record(
        "folder.batch_sign",
        actor=actor,
        object_type="user",
        object_id=actor.id,
        data={
            "tasks": task_ids,
            "signed": [r.folder_id for r in results if r.ok],
            "refused": [r.folder_id for r in results if not r.ok],
        },
    )
    db.session.commit()
    return results


def _signed_ids(folder_id: int, task_id: int) -> list[int]:
    return list(
        db.session.execute(
            select(SignatureRecord.output_document_id)
            .join(FolderStep, FolderStep.id == SignatureRecord.step_id)
            .where(SignatureRecord.folder_id == folder_id, FolderStep.task_id == task_id)
            .order_by(SignatureRecord.id)
        ).scalars()
    )


# --- validation ------------------------------------------------------------------------------


def validation_report(document_id: int, actor: User) -> dict:
    """pyHanko's validation report for any PDF the actor may read."""
    document = documents.get_document(document_id, actor)
    if document.mime_type != "application/pdf":
        raise ValidationFailed(
            "Seul un PDF peut être vérifié.",
            errors=[{"field": "document", "message": "PDF attendu."}],
        )
    report = signing.validation_report(documents.content(document), trust_roots())
    report.update(
        {
            "document_id": document.id,
            "sha256": document.sha256,
            "filename": document.filename,
            "trust_roots": len(trust_roots()),
        }
    )
    return report


# --- certificates ----------------------------------------------------------------------------


def active_certificate(user: User) -> SigningCertificate:
    """The user's signing certificate (Conflict when there is none or it expired)."""
    row = db.session.execute(
        select(SigningCertificate)
        .where(
            SigningCertificate.kind == CertificateKind.PERSONAL,
            SigningCertificate.user_id == user.id,
            SigningCertificate.active,
        )
        .order_by(SigningCertificate.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if row is None:
        raise Conflict(
            f"Aucun certificat de signature n'est enregistré pour {user.name} : "
            "demandez à un administrateur de l'importer."
        )
    _check_dates(row)
    return row


def _check_dates(row: SigningCertificate) -> None:
    now = utcnow()
    if row.not_after < now:
        raise Conflict(
            f"Le certificat de signature « {row.subject} » a expiré le {_local(row.not_after)}."
        )
    if row.not_before > now:
        raise Conflict(f"Le certificat de signature « {row.subject} » n'est pas encore valide.")


def _owner(email: str | None, seal: bool) -> User | None:
    if seal:
        if email:
            raise ValidationFailed(
                "Le cachet serveur n'appartient à personne.",
                errors=[{"field": "email", "message": "Inutile avec --seal."}],
            )
        return None
    user = find_user_by_email(email or "")
    if user is None or not user.active:
        raise ValidationFailed(
            f"Aucun agent actif n'a l'adresse {email}.",
            errors=[{"field": "email", "message": "Agent inconnu."}],
        )
    return user


def _new_certificate_row(
    user: User | None,
    seal: bool,
    source: KeySource,
    certificate: x509.Certificate,
    chain: list[x509.Certificate],
) -> SigningCertificate:
    keystore.check_usable(certificate)
    kind = CertificateKind.SEAL if seal else CertificateKind.PERSONAL
    previous = select(SigningCertificate).where(
        SigningCertificate.kind == kind, SigningCertificate.active
    )
    previous = (
        previous.where(SigningCertificate.user_id == user.id)
        if user
        else previous.where(SigningCertificate.user_id.is_(None))
    )
    for old in db.session.execute(previous).scalars():
        old.active = False
        old.deactivated_at = utcnow()
    row = SigningCertificate(
        kind=kind,
        user=user,
        source=source,
        subject=certificate.subject.rfc4514_string()[:500],
        issuer=certificate.issuer.rfc4514_string()[:500],
        serial=format(certificate.serial_number, "x")[:80],
        fingerprint=hashlib.sha256(
            certificate.public_bytes(serialization.Encoding.DER)
        ).hexdigest(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        certificate_der=certificate.public_bytes(serialization.Encoding.DER),
        chain_der=keystore.chain_to_rows(chain),
        key_id=keystore.keystore_key_id(),
    )
    db.session.add(row)
    return row


def import_pkcs12(
    data: bytes,
    password: str | None,
    *,
    email: str | None = None,
    seal: bool = False,
    actor: User | None = None,
) -> SigningCertificate:
    """Give a signer (or the server seal) a certificate and key from a PKCS#12 file.

    The key is re-encrypted under the keystore key; the passphrase is not stored.
    """
    owner = _owner(email, seal)
    material = keystore.read_pkcs12(data, password)
    row = _new_certificate_row(owner, seal, KeySource.PKCS12, material.certificate, material.chain)
    plaintext = material.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    row.encrypted_key = keystore.encrypt_secret(plaintext, row.fingerprint)
    del plaintext, material
    db.session.flush()
    audit.record(
        "certificate.import",
        actor=actor,
        object_type="certificate",
        object_id=row.id,
        data={
            "kind": row.kind.value,
            "source": "pkcs12",
            "user": getattr(owner, "id", None),
            "subject": row.subject,
            "fingerprint": row.fingerprint,
        },
    )
    db.session.commit()
    return row


def import_pkcs11(
    *,
    module: str,
    token: str,
    key_label: str,
    pin: str | None,
    certificate_data: bytes | None = None,
    email: str | None = None,
    seal: bool = False,
    actor: User | None = None,
) -> SigningCertificate:
    """Give a signer (or the server seal) a key held by a PKCS#11 token (an HSM).

    The certificate comes from the file given or from the token (same label as the key);
    the key must sign for it. Only the PIN is kept, encrypted under the keystore key.
    """
    owner = _owner(email, seal)
    session = keystore.open_token_session(module, token, pin)
    try:
        certificates = keystore.read_certificates(certificate_data) if certificate_data else []
        leaf = (
            certificates[0] if certificates else keystore.certificate_from_token(session, key_label)
        )
        if leaf is None:
            raise ValidationFailed(
                "Aucun certificat : donnez-le (--certificate) ou "
                "enregistrez-le sur le jeton sous le même libellé que la clé.",
                errors=[{"field": "certificate", "message": "Absent."}],
            )
        if not keystore.token_key_matches(session, key_label, leaf):
            raise ValidationFailed(
                f"La clé « {key_label} » du jeton ne correspond pas au "
                "certificat (ou est introuvable).",
                errors=[{"field": "key_label", "message": "Clé discordante."}],
            )
    finally:
        session.close()
    row = _new_certificate_row(owner, seal, KeySource.PKCS11, leaf, certificates[1:])
    row.pkcs11_module, row.pkcs11_token, row.pkcs11_key_label = module, token, key_label
    if pin:
        row.encrypted_pin = keystore.encrypt_secret(pin.encode(), row.fingerprint)
    db.session.flush()
    audit.record(
        "certificate.import",
        actor=actor,
        object_type="certificate",
        object_id=row.id,
        data={
            "kind": row.kind.value,
            "source": "pkcs11",
            "user": getattr(owner, "id", None),
            "subject": row.subject,
            "fingerprint": row.fingerprint,
            "token": token,
        },
    )
    db.session.commit()
    return row


def deactivate_certificate(certificate_id: int, actor: User) -> SigningCertificate:
    """Withdraw a certificate (it can no longer sign); the cached signer is dropped."""
    if not actor.is_admin:
        raise PermissionDenied("Réservé aux administrateurs.")
    row = db.session.get(SigningCertificate, certificate_id)
    if row is None:
        raise NotFound("Certificat introuvable.")
    row.active = False
    row.deactivated_at = utcnow()
    audit.record(
        "certificate.deactivate",
        actor=actor,
        object_type="certificate",
        object_id=row.id,
        data={"fingerprint": row.fingerprint},
    )
    db.session.commit()
    keystore.forget_signers()
    return row


def list_certificates() -> list[SigningCertificate]:
    """Every certificate, active first (for administrators)."""
    return list(
        db.session.execute(
            select(SigningCertificate).order_by(
                SigningCertificate.active.desc(), SigningCertificate.id.desc()
            )
        ).scalars()
    )


# --- delegations -----------------------------------------------------------------------------


def create_delegation(
    *,
    delegator: User,
    delegate: User,
    actor: User,
    document_types: list[str] | None = None,
    amount_ceiling: Any = None,
    valid_from: date | None = None,
    valid_until: date | None = None,
    mention: str | None = None,
) -> Delegation:
    """Record a delegation of signature (by the delegator or an administrator)."""
    if actor.id != delegator.id and not actor.is_admin:
        raise PermissionDenied(
            "Seul le délégant (ou un administrateur) peut déléguer sa signature."
        )
    errors = []
    if delegate.id == delegator.id:
        errors.append({"field": "delegate", "message": "On ne se délègue pas à soi-même."})
    if not delegate.active:
        errors.append({"field": "delegate", "message": "Ce compte est désactivé."})
    types = []
    for value in document_types or []:
        try:
            types.append(FolderType(value).value)
        except ValueError:
            errors.append({"field": "document_types", "message": f"Type inconnu : {value}."})
    valid_from = valid_from or today()
    if valid_until is not None and valid_until < valid_from:
        errors.append(
            {"field": "valid_until", "message": "La fin doit suivre le début de la délégation."}
        )
    if errors:
        raise ValidationFailed("La délégation n'est pas valide.", errors=errors)
    delegation = Delegation(
        delegator=delegator,
        delegate=delegate,
        document_types=types,
        amount_ceiling_cents=euros_to_cents(amount_ceiling, "amount_ceiling"),
        valid_from=valid_from,
        valid_until=valid_until,
        mention=(mention or DEFAULT_MENTION).strip()[:300],
        created_by_id=actor.id,
    )
    db.session.add(delegation)
    db.session.flush()
    audit.record(
        "delegation.create",
        actor=actor,
        object_type="delegation",
        object_id=delegation.id,
        data={
            "delegator": delegator.id,
            "delegate": delegate.id,
            "types": types,
            "ceiling": delegation.amount_ceiling_cents,
            "from": valid_from.isoformat(),
            "until": valid_until.isoformat() if valid_until else None,
        },
    )
    db.session.commit()
    return delegation


def revoke_delegation(delegation_id: int, actor: User) -> Delegation:
    """End a delegation now (by the delegator or an administrator)."""
    delegation = db.session.get(Delegation, delegation_id)
    if delegation is None:
        raise NotFound("Délégation introuvable.")
    if actor.id != delegation.delegator_id and not actor.is_admin:
        raise PermissionDenied(
            "Seul le délégant (ou un administrateur) peut révoquer cette délégation."
        )
    if delegation.revoked_at is not None:
        raise Conflict("Cette délégation est déjà révoquée.")
    delegation.revoked_at = utcnow()
    delegation.revoked_by_id = actor.id
    audit.record(
        "delegation.revoke", actor=actor, object_type="delegation", object_id=delegation.id
    )
    db.session.commit()
    return delegation


def delegations_of(user: User) -> list[Delegation]:
    """Delegations given or received by the user (all of them for administrators)."""
    stmt = select(Delegation).order_by(Delegation.revoked_at.is_not(None), Delegation.id.desc())
    if not user.is_admin:
        stmt = stmt.where(
            or_(Delegation.delegator_id == user.id, Delegation.delegate_id == user.id)
        )
    return list(db.session.execute(stmt).scalars())


def unit_head_email(unit_code: str | None) -> str | None:
    """The e-mail of the head of an organisation unit (the circuit's designated signer)."""
    if not unit_code:
        return None
    unit = db.session.execute(select(OrgUnit).where(OrgUnit.code == unit_code)).scalar_one_or_none()
    if unit is None or unit.head is None or not unit.head.active:
        raise ValueError(f"l'unité « {unit_code} » n'existe pas ou n'a pas de responsable actif")
    return unit.head.email


def active_people() -> list[User]:
    """Active agents, for choosing a visa holder, a signer or a delegate."""
    return list(db.session.execute(select(User).where(User.active).order_by(User.name)).scalars())


def groups() -> list[Group]:
    """Functional groups, for circuit steps."""
    return list(db.session.execute(select(Group).order_by(Group.label)).scalars())
