"""Business actions of the circuit studio: drafts, publication, comparison, rollback, packages.

Analysts edit a shared draft per BPMN or DMN file; every save is validated by the engine's
deploy checks (``app.engine.services.check_files``) and carries the revision it was based
on, so two analysts never overwrite each other silently. Publishing deploys the draft:
the engine creates a version only when the content changed.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import render_template
from lxml import etree
from sqlalchemy import or_, select, update

from app.admin import bpmn_diff, packages
from app.admin.models import DraftKind, ProcessDraft
from app.auth.models import User
from app.core import audit
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from app.core.extensions import db
from app.core.permissions import require
from app.engine import services as engine
from app.engine.forms import normalise_form_key
from app.engine.models import DecisionVersion, ProcessDefinition, ProcessVersion

BPMN_NS = bpmn_diff.BPMN_NS
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,199}$")
MAX_DRAFT_BYTES = 5 * 1024 * 1024
PARIS = ZoneInfo("Europe/Paris")
# Audit actions that make up the studio's log of who did what.
STUDIO_ACTIONS = (
    "draft.",
    "process.",
    "decision.",
    "instance.",
    "incident.",
)


# --- drafts ----------------------------------------------------------------------------


def get_draft(draft_id: int, actor: User) -> ProcessDraft:
    """A draft by id (analysts and admins)."""
    require(actor, "deploy", "process")
    draft = db.session.get(ProcessDraft, draft_id)
    if draft is None:
        raise NotFound("Brouillon introuvable.")
    return draft


def find_draft(kind: str, key: str) -> ProcessDraft | None:
    """The draft of a circuit or decision key, if any."""
    return db.session.execute(
        select(ProcessDraft).where(ProcessDraft.kind == DraftKind(kind), ProcessDraft.key == key)
    ).scalar_one_or_none()


def open_draft(key: str, actor: User, kind: str = "bpmn") -> ProcessDraft:
    """The draft to edit for a key: the shared one, else a new one from the latest version."""
    require(actor, "deploy", "process")
    draft = find_draft(kind, key)
    latest = _latest_source(kind, key)
    if draft is not None:
        if latest and draft.base_version is not None and latest[0] > draft.base_version:
            base = _source_of(kind, key, draft.base_version)
            if base is not None and base == draft.source:  # untouched: follow the new version
                draft.source, draft.base_version = latest[1], latest[0]
                draft.revision += 1
                draft.filename = latest[2]
                db.session.commit()
        return draft
    if latest is None:
        raise NotFound(f"Aucun circuit ni brouillon « {key} ».")
    version, source, filename, name = latest
    draft = ProcessDraft(
        kind=DraftKind(kind),
        key=key,
        name=name,
        filename=filename,
        source=source,
        revision=1,
        base_version=version,
        created_by_id=actor.id,
        updated_by_id=actor.id,
    )
    db.session.add(draft)
    db.session.commit()
    return draft


def _latest_source(kind: str, key: str) -> tuple[int, str, str, str] | None:
    if kind == DraftKind.DMN:
        row = db.session.execute(
            select(DecisionVersion)
            .where(DecisionVersion.key == key)
            .order_by(DecisionVersion.version.desc())
            .limit(1)
        ).scalar_one_or_none()
    else:
        row = engine.latest_version(key)
    if row is None:
        return None
    return row.version, row.source, row.filename, row.name


def _source_of(kind: str, key: str, version: int) -> str | None:
    if kind == DraftKind.DMN:
        stmt = select(DecisionVersion.source).where(
            DecisionVersion.key == key, DecisionVersion.version == version
        )
    else:
        stmt = (
            select(ProcessVersion.source)
            .join(ProcessDefinition)
            .where(ProcessDefinition.key == key, ProcessVersion.version == version)
        )
    return db.session.scalar(stmt)


def new_circuit(key: str, name: str, actor: User) -> ProcessDraft:
    """Start a new circuit: a draft with a start event, one task and an end event."""
    require(actor, "deploy", "process")
    key, name = (key or "").strip(), (name or "").strip()
    errors = []
    if not KEY_RE.match(key):
        errors.append(
            {
                "field": "key",
                "message": "Identifiant invalide : une lettre, puis lettres, chiffres, "
                "« _ », « - » ou « . » (sans espace ni accent).",
            }
        )
    if not name:
        errors.append({"field": "name", "message": "Ce champ est obligatoire."})
    if not errors and (find_draft("bpmn", key) or engine.latest_version(key)):
        errors.append({"field": "key", "message": "Un circuit porte déjà cet identifiant."})
    if errors:
        raise ValidationFailed("Le circuit n'a pas été créé.", errors=errors)
    draft = ProcessDraft(
        kind=DraftKind.BPMN,
        key=key,
        name=name[:300],
        filename=f"{key}.bpmn",
        source=_template(key, name),
        revision=1,
        created_by_id=actor.id,
        updated_by_id=actor.id,
    )
    db.session.add(draft)
    db.session.flush()
    audit.record(
        "draft.create",
        actor=actor,
        object_type="process_draft",
        object_id=draft.id,
        data={"key": key},
    )
    db.session.commit()
    return draft


def _template(key: str, name: str) -> str:
    """The starting diagram of a new circuit: start event, one user task, end event."""
    return render_template("admin/processes/new_circuit.xml", key=key, name=name)


def _describe(raw: bytes, filename: str) -> tuple[DraftKind, str, str]:
    """Kind, key and name of an uploaded diagram (the first executable process wins)."""
    try:
        root = bpmn_diff.parse(raw)
    except bpmn_diff.DiagramUnreadable as exc:
        raise ValidationFailed(
            "Ce fichier ne peut pas être importé.",
            errors=[{"file": filename, "element_id": None, "message": str(exc)}],
        ) from exc
    qname = etree.QName(root)
    if qname.localname == "definitions" and qname.namespace == BPMN_NS:
        processes = list(root.iter("{" + BPMN_NS + "}process"))
        if not processes:
            raise ValidationFailed(
                "Ce diagramme ne contient aucun processus.",
                errors=[
                    {
                        "file": filename,
                        "element_id": None,
                        "message": "Aucun élément <process> dans ce fichier.",
                    }
                ],
            )
        chosen = next(
            (p for p in processes if p.get("isExecutable", "true") == "true"), processes[0]
        )
        key = chosen.get("id") or ""
        return DraftKind.BPMN, key, chosen.get("name") or key
    if qname.localname == "definitions" and "DMN" in (qname.namespace or ""):
        decision = next((d for d in root if etree.QName(d).localname == "decision"), None)
        if decision is None:
            raise ValidationFailed(
                "Cette table DMN ne contient aucune décision.",
                errors=[
                    {
                        "file": filename,
                        "element_id": None,
                        "message": "Aucun élément <decision> dans ce fichier.",
                    }
                ],
            )
        key = decision.get("id") or ""
        return DraftKind.DMN, key, decision.get("name") or key
    raise ValidationFailed(
        "Ce fichier n'est ni un diagramme BPMN 2.0 ni une table DMN.",
        errors=[
            {
                "file": filename,
                "element_id": None,
                "message": f"Élément racine inattendu : {root.tag}",
            }
        ],
    )


def import_diagram(filename: str, raw: bytes, actor: User) -> ProcessDraft:
    """Bring a file drawn in another tool into the studio, as the draft of its key."""
    require(actor, "deploy", "process")
    if len(raw) > MAX_DRAFT_BYTES:
        raise PayloadTooLarge("Fichier trop volumineux (5 Mo au plus).")
    kind, key, name = _describe(raw, filename)
    if not KEY_RE.match(key):
        raise ValidationFailed(
            "Identifiant de processus inutilisable.",
            errors=[
                {
                    "file": filename,
                    "element_id": key or None,
                    "message": f"L'identifiant « {key} » n'est pas un identifiant XML valide.",
                }
            ],
        )
    source = raw.decode("utf-8", "replace")
    draft = find_draft(kind, key)
    if draft is None:
        latest = _latest_source(kind, key)
        draft = ProcessDraft(
            kind=kind,
            key=key,
            revision=0,
            created_by_id=actor.id,
            base_version=latest[0] if latest else None,
        )
        db.session.add(draft)
    draft.name = name[:300]
    draft.filename = Path(filename).name[:300] or f"{key}.{kind}"
    draft.source = source
    draft.revision += 1
    draft.updated_by_id, draft.updated_at = actor.id, utcnow()
    _validate(draft)
    db.session.flush()
    audit.record(
        "draft.import",
        actor=actor,
        object_type="process_draft",
        object_id=draft.id,
        data={"key": key, "file": draft.filename},
    )
    db.session.commit()
    return draft


def save_draft(
    draft_id: int, source: str, revision: int, actor: User
) -> tuple[ProcessDraft, list[dict]]:
    """Save the modeler's XML over the revision it was based on (409 if someone saved since).

    Returns the draft (its ``problems`` are the deploy checks' errors) and the warnings.
    """
    draft = get_draft(draft_id, actor)
    raw = (source or "").encode("utf-8")
    if len(raw) > MAX_DRAFT_BYTES:
        raise PayloadTooLarge("Diagramme trop volumineux (5 Mo au plus).")
    try:
        bpmn_diff.parse(raw)
    except bpmn_diff.DiagramUnreadable as exc:
        raise ValidationFailed(
            "Le brouillon n'a pas été enregistré.",
            errors=[{"field": "source", "message": str(exc)}],
        ) from exc
    result = db.session.execute(
        update(ProcessDraft)
        .where(ProcessDraft.id == draft.id, ProcessDraft.revision == revision)
        .values(
            source=source,
            revision=ProcessDraft.revision + 1,
            updated_by_id=actor.id,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.session.rollback()
        raise _conflict(draft_id)
    db.session.refresh(draft)
    _problems, warnings = _validate(draft)
    db.session.commit()
    return draft, warnings


def _conflict(draft_id: int) -> Conflict:
    draft = db.session.get(ProcessDraft, draft_id)
    who = draft.updated_by.name if draft.updated_by else "un autre analyste"
    when = draft.updated_at.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")
    return Conflict(
        f"Ce brouillon a été modifié par {who} le {when} (révision {draft.revision}) depuis "
        "votre dernier enregistrement : vos modifications n'ont pas été enregistrées pour ne "
        "pas écraser les siennes. Rechargez la version du serveur, ou téléchargez la vôtre "
        "pour la comparer.",
        revision=draft.revision,
    )


def _check_revision(draft: ProcessDraft, revision: int | None) -> None:
    if revision is not None and revision != draft.revision:
        raise _conflict(draft.id)


def _validate(draft: ProcessDraft) -> tuple[list[dict], list[dict]]:
    problems, warnings = engine.check_files([(draft.filename, draft.source.encode("utf-8"))])
    if not problems and draft.kind == DraftKind.BPMN:
        root = bpmn_diff.parse(draft.source)
        keys = {p.get("id") for p in root.iter("{" + BPMN_NS + "}process")}
        if draft.key not in keys:
            problems.append(
                {
                    "file": draft.filename,
                    "element_id": None,
                    "message": f"Le processus « {draft.key} » n'est plus dans ce diagramme : "
                    "gardez son identifiant pour publier une nouvelle version du même circuit.",
                }
            )
    draft.problems = problems
    return problems, warnings


def validate_draft(draft_id: int, actor: User, revision: int | None = None) -> dict:
    """Run the deploy checks on a draft: ``{"problems", "warnings"}``."""
    draft = get_draft(draft_id, actor)
    _check_revision(draft, revision)
    problems, warnings = _validate(draft)
    db.session.commit()
    return {"problems": problems, "warnings": warnings}


def draft_warnings(draft: ProcessDraft) -> list[dict]:
    """The warnings of the deploy checks for a draft (nothing stored)."""
    return engine.check_files([(draft.filename, draft.source.encode("utf-8"))])[1]


def _with_version_tag(source: str, key: str, tag: str) -> str:
    root = bpmn_diff.parse(source)
    for process in root.iter("{" + BPMN_NS + "}process"):
        if process.get("id") == key:
            process.set("{" + CAMUNDA_NS + "}versionTag", tag)
    declaration = '<?xml version="1.0" encoding="UTF-8"?>\n'
    return declaration + etree.tostring(root, encoding="unicode")


def publish_draft(
    draft_id: int, actor: User, revision: int | None = None, version_tag: str | None = None
) -> dict:
    """Deploy a draft: a new version when its content changed, else the existing one."""
    draft = get_draft(draft_id, actor)
    _check_revision(draft, revision)
    tag = (version_tag or "").strip()[:100]
    if tag and draft.kind == DraftKind.BPMN:
        tagged = _with_version_tag(draft.source, draft.key, tag)
        if tagged != draft.source:
            draft.source = tagged
            draft.revision += 1
    problems, _warnings = _validate(draft)
    if problems:
        db.session.commit()
        raise ValidationFailed(
            "La publication est refusée : corrigez les éléments signalés.", errors=problems
        )
    try:
        results = engine.deploy([(draft.filename, draft.source.encode("utf-8"))], actor)
    except ValidationFailed as error:
        db.session.rollback()
        draft = db.session.get(ProcessDraft, draft_id)
        draft.problems = error.errors
        db.session.commit()
        raise
    kind = "decision" if draft.kind == DraftKind.DMN else "process"
    result = next((r for r in results if r.kind == kind and r.key == draft.key), results[0])
    draft = db.session.get(ProcessDraft, draft_id)
    draft.base_version = result.version
    draft.problems = []
    audit.record(
        "draft.publish",
        actor=actor,
        object_type="process_draft",
        object_id=draft.id,
        data={
            "key": draft.key,
            "version": result.version,
            "created": result.created,
            "version_tag": tag or None,
        },
    )
    db.session.commit()
    if result.created:
        message = f"Version {result.version} publiée."
    else:
        message = (
            f"Aucun changement depuis la version {result.version} : aucune nouvelle version "
            "n'a été créée."
        )
    return {
        "created": result.created,
        "version": result.version,
        "key": draft.key,
        "revision": draft.revision,
        "message": message,
        "deployed": [r.as_dict() for r in results],
    }


def discard_draft(draft_id: int, actor: User) -> None:
    """Drop a draft's unpublished changes: it starts again from the latest version."""
    draft = get_draft(draft_id, actor)
    latest = _latest_source(draft.kind, draft.key)
    if latest is None:
        raise Conflict("Ce circuit n'a jamais été publié : il n'y a pas de version à reprendre.")
    draft.source, draft.base_version, draft.filename = latest[1], latest[0], latest[2]
    draft.revision += 1
    draft.updated_by_id, draft.updated_at = actor.id, utcnow()
    draft.problems = []
    audit.record(
        "draft.discard",
        actor=actor,
        object_type="process_draft",
        object_id=draft.id,
        data={"key": draft.key, "version": latest[0]},
    )
    db.session.commit()


# --- versions ----------------------------------------------------------------------------


def list_drafts() -> list[ProcessDraft]:
    """Every draft, by kind and key."""
    return list(
        db.session.execute(
            select(ProcessDraft).order_by(ProcessDraft.kind, ProcessDraft.key)
        ).scalars()
    )


def list_decisions() -> list[DecisionVersion]:
    """The latest version of every deployed decision."""
    rows = db.session.execute(
        select(DecisionVersion).order_by(DecisionVersion.key, DecisionVersion.version.desc())
    ).scalars()
    latest: dict[str, DecisionVersion] = {}
    for row in rows:
        latest.setdefault(row.key, row)
    return list(latest.values())


def get_version(key: str, version: int) -> ProcessVersion:
    """One version of a circuit, or NotFound."""
    row = db.session.execute(
        select(ProcessVersion)
        .join(ProcessDefinition)
        .where(ProcessDefinition.key == key, ProcessVersion.version == version)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Version {version} inconnue pour « {key} ».")
    return row


def get_decision_version(key: str, version: int) -> DecisionVersion:
    """One version of a decision table, or NotFound."""
    row = db.session.execute(
        select(DecisionVersion).where(
            DecisionVersion.key == key, DecisionVersion.version == version
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"Version {version} inconnue pour la décision « {key} ».")
    return row


def compare(key: str, old: int | str, new: int | str, actor: User) -> dict:
    """Compare two versions of a circuit (or a version and the draft, spelled "draft")."""
    require(actor, "view", "process")

    def source(which: int | str) -> str:
        if which == "draft":
            draft = find_draft("bpmn", key)
            if draft is None:
                raise NotFound("Ce circuit n'a pas de brouillon.")
            return draft.source
        return get_version(key, int(which)).source

    old_source, new_source = source(old), source(new)
    try:
        diff = bpmn_diff.compare(old_source, new_source)
    except bpmn_diff.DiagramUnreadable as exc:
        raise ValidationFailed(
            "Comparaison impossible.", errors=[{"field": "source", "message": str(exc)}]
        ) from exc
    return {"old_source": old_source, "new_source": new_source, "diff": diff}


def rollback(key: str, version: int, actor: User) -> dict:
    """Republish an older version as a new one (running cases keep their own version)."""
    require(actor, "deploy", "process")
    old = get_version(key, version)
    latest = engine.latest_version(key)
    if latest is not None and latest.version == old.version:
        raise Conflict(f"La version {version} est déjà la dernière version.")
    results = engine.deploy([(old.filename, old.source.encode("utf-8"))], actor)
    result = next(r for r in results if r.kind == "process" and r.key == key)
    if not result.created:
        raise Conflict(
            f"La version {version} a le même contenu que la version {result.version} : "
            "rien à republier."
        )
    draft = find_draft("bpmn", key)
    if draft is not None:
        draft.source, draft.base_version, draft.filename = old.source, result.version, old.filename
        draft.revision += 1
        draft.problems = []
        draft.updated_by_id, draft.updated_at = actor.id, utcnow()
    audit.record(
        "process.rollback",
        actor=actor,
        object_type="process_definition",
        object_id=old.definition_id,
        data={"key": key, "from_version": version, "new_version": result.version},
    )
    db.session.commit()
    return {"version": result.version, "from_version": version}


# --- packages ----------------------------------------------------------------------------


def export_package(key: str, version: int | None, actor: User) -> tuple[str, bytes]:
    """A zip with a circuit version, the circuits and decisions it calls and its forms."""
    require(actor, "view", "process")
    row = get_version(key, version) if version else engine.latest_version(key)
    if row is None:
        raise NotFound(f"Processus inconnu : {key}")
    diagrams: list[tuple[str, str]] = []
    forms: dict[str, dict] = dict(row.forms or {})
    processes, decisions = [], []
    seen_files: set[str] = set()
    queue = [(key, row)]
    while queue:
        process_key, process_version = queue.pop(0)
        name = f"processes/{process_key}.bpmn"
        if name in seen_files:
            continue
        seen_files.add(name)
        diagrams.append((name, process_version.source))
        processes.append({"key": process_key, "version": process_version.version, "file": name})
        forms.update(process_version.forms or {})
        for called, called_number in (process_version.called_versions or {}).items():
            if called_number:
                queue.append((called, get_version(called, int(called_number))))
        for decision_key in process_version.decision_keys or []:
            decision = _latest_decision(decision_key)
            if decision is None:
                continue
            decision_file = f"decisions/{Path(decision.filename).stem or decision_key}.dmn"
            if decision_file not in seen_files:
                seen_files.add(decision_file)
                diagrams.append((decision_file, decision.source))
            decisions.append(
                {"key": decision_key, "version": decision.version, "file": decision_file}
            )
    manifest = {
        "format": packages.FORMAT,
        "format_version": packages.FORMAT_VERSION,
        "key": key,
        "version": row.version,
        "version_tag": row.version_tag,
        "name": row.name,
        "exported_at": utcnow().isoformat(),
        "processes": processes,
        "decisions": decisions,
        "forms": sorted(forms),
    }
    audit.record(
        "process.export",
        actor=actor,
        object_type="process_version",
        object_id=row.id,
        data={"key": key, "version": row.version},
    )
    db.session.commit()
    return f"{key}-v{row.version}.zip", packages.build(manifest, diagrams, forms)


def _latest_decision(key: str) -> DecisionVersion | None:
    return db.session.execute(
        select(DecisionVersion)
        .where(DecisionVersion.key == key)
        .order_by(DecisionVersion.version.desc())
        .limit(1)
    ).scalar_one_or_none()


def _check_forms(content: packages.PackageContent) -> dict[str, dict]:
    """Parse the package's forms; refuse invalid schemas and clashes with installed forms."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    registry = engine.form_registry()
    new_forms: dict[str, dict] = {}
    for key, raw in sorted(content.forms.items()):
        name = f"forms/{key}.json"
        if normalise_form_key(key) != key:
            content.fail(name, f"Nom de formulaire invalide : « {key} ».")
            continue
        try:
            schema = json.loads(raw.decode("utf-8"))
            if not isinstance(schema, dict):
                raise ValueError("un objet JSON est attendu")
            Draft202012Validator.check_schema(schema)
        except (UnicodeDecodeError, ValueError, SchemaError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            content.fail(name, f"Formulaire « {key} » invalide : {message}")
            continue
        if registry.exists(key):
            try:
                installed = registry.schema(key)
            except ValueError:
                installed = None
            if installed != schema:
                content.fail(
                    name,
                    f"Le formulaire « {key} » existe déjà ici avec un contenu différent : "
                    "renommez-le dans le circuit ou alignez les deux installations.",
                )
            continue
        new_forms[key] = schema
    return new_forms


def import_package(raw: bytes, actor: User) -> dict:
    """Install a circuit package: everything is checked first, then forms, then deployment."""
    require(actor, "deploy", "process")
    content = packages.read(raw)
    new_forms = _check_forms(content) if not content.errors else {}
    if content.errors:
        raise ValidationFailed("Le paquet est refusé.", errors=content.errors)
    with tempfile.TemporaryDirectory(prefix="missive-package-") as staging:
        for key, schema in new_forms.items():
            (Path(staging) / f"{key}.json").write_text(json.dumps(schema), encoding="utf-8")
        problems, _warnings = engine.check_files(content.diagrams, Path(staging))
    if problems:
        raise ValidationFailed(
            "Le paquet est refusé : corrigez les éléments signalés.", errors=problems
        )
    target = engine.imported_forms_dir()
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        for key, schema in new_forms.items():
            path = target / f"{key}.json"
            partial = target / f".{key}.json.part"
            partial.write_text(json.dumps(schema, ensure_ascii=False, indent=2), encoding="utf-8")
            partial.replace(path)
            written.append(path)
        results = engine.deploy(content.diagrams, actor)
    except Exception:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    audit.record(
        "process.import",
        actor=actor,
        data={
            "manifest_key": content.manifest.get("key"),
            "files": [name for name, _data in content.diagrams],
            "new_forms": sorted(new_forms),
            "deployed": [r.as_dict() for r in results],
        },
    )
    db.session.commit()
    return {"deployed": [r.as_dict() for r in results], "new_forms": sorted(new_forms)}


# --- the studio's log --------------------------------------------------------------------


def studio_log(actor: User, before: int | None = None, limit: int = 50) -> list[AuditEvent]:
    """Who did what on circuits, drafts, versions, instances and incidents, newest first."""
    require(actor, "deploy", "process")
    stmt = (
        select(AuditEvent)
        .where(or_(*[AuditEvent.action.startswith(prefix) for prefix in STUDIO_ACTIONS]))
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    if before:
        stmt = stmt.where(AuditEvent.id < before)
    return list(db.session.execute(stmt).scalars())
