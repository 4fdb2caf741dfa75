"""Demo data of the registry: the type list and the shipped intake circuits."""

from __future__ import annotations

from sqlalchemy import select

from app.core.config import PROJECT_ROOT
from app.core.extensions import db
from app.correspondence.models import CaseType

PROCESSES_DIR = PROJECT_ROOT / "processes"

# (code, label, circuit, per-channel circuits); delays are the deadlines domain's rules
CASE_TYPES = [
    ("demande_information", "Demande d'information", "courrier_entrant", {}),
    ("reclamation", "Réclamation", "courrier_entrant", {}),
    ("candidature", "Candidature", "candidature", {}),
    ("facture", "Facture", "courrier_entrant", {}),
    ("invitation", "Invitation", "courrier_entrant", {}),
    ("autre", "Autre", "courrier_entrant", {}),
]


def load_case_types() -> int:
    """Create the missing types of the default list; return how many were added."""
    existing = set(db.session.execute(select(CaseType.code)).scalars())
    added = 0
    for position, (code, label, process, per_channel) in enumerate(CASE_TYPES):
        if code in existing:
            continue
        db.session.add(
            CaseType(
                code=code,
                label=label,
                process_key=process,
                channel_processes=per_channel,
                position=position * 10,
            )
        )
        added += 1
    db.session.commit()
    return added


def deploy_processes() -> dict[str, int]:
    """Deploy the BPMN and DMN files of processes/ (unchanged files keep their version);
    return how many process and decision versions were created."""
    from app.engine.services import deploy

    files = [
        (path.name, path.read_bytes())
        for path in sorted(PROCESSES_DIR.iterdir())
        if path.suffix in (".bpmn", ".dmn")
    ]
    created = {"process_versions": 0, "decision_versions": 0}
    for item in deploy(files, None) if files else []:
        if item.created:
            created[f"{item.kind}_versions"] += 1
    return created


def load() -> dict[str, int]:
    """Idempotent: types of the registry, then the shipped circuits."""
    return {"case_types": load_case_types(), **deploy_processes()}


def load_activity() -> dict[str, int]:
    """Idempotent: a few dozen cases on every channel, at every stage (once every domain's
    demo settings — letterhead, deadline rules, contacts — are there)."""
    from app.correspondence import demo_activity

    return demo_activity.load()
