"""Demo data of deadlines: the letterhead and court of acknowledgements, rules for the
demo types (what silence means for each), and a bridge day the services close."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from app.core.extensions import db
from app.correspondence.models import CaseType
from app.deadlines.models import Closure, DeadlineRule, ReceiptSettings

SETTINGS = {
    "authority_name": "Département de Loire-Atlantique",
    "letterhead_lines": "Hôtel du Département — 3 quai Ceineray — CS 94109 — 44041 Nantes Cedex 1"
    "\nloire-atlantique.fr — 02 40 99 10 00",
    "signatory": "Pour le Président du Conseil départemental et par délégation,\n"
    "la Directrice générale des services",
    "tribunal_name": "tribunal administratif de Nantes",
    "tribunal_address": "6 allée de l'Île-Gloriette\nCS 24111\n44041 Nantes Cedex",
}
# Types added for the demo: (code, label)
TYPES = [
    ("demande_subvention", "Demande de subvention"),
    ("demande_autorisation", "Demande d'autorisation (silence vaut accord)"),
]
# Per type, what silence means and whether it is acknowledged; delays stay the channel's.
RULES = [
    ("reclamation", "rejection", True),
    ("demande_subvention", "rejection", True),
    ("demande_autorisation", "acceptance", True),
    ("facture", "none", False),
    ("invitation", "none", False),
]
CLOSURES = [
    (date(2026, 5, 15), "Pont de l'Ascension"),
    (date(2027, 5, 7), "Pont de l'Ascension"),
]


def load() -> dict[str, int]:
    """Idempotent: letterhead, extra types, rules and closures."""
    from app.correspondence.services import save_case_type

    if db.session.get(ReceiptSettings, 1) is None:
        db.session.add(ReceiptSettings(id=1, **SETTINGS))
    existing_types = set(db.session.execute(select(CaseType.code)).scalars())
    added_types = 0
    for position, (code, label) in enumerate(TYPES, start=60):
        if code not in existing_types:
            save_case_type(code, label, process_key="courrier_entrant", position=position)
            added_types += 1
    types = {t.code: t.id for t in db.session.execute(select(CaseType)).scalars()}
    configured = set(
        db.session.execute(
            select(DeadlineRule.case_type_id).where(DeadlineRule.channel.is_(None))
        ).scalars()
    )
    added_rules = 0
    for code, silence, acknowledge in RULES:
        type_id = types.get(code)
        if type_id is None or type_id in configured:
            continue
        db.session.add(
            DeadlineRule(case_type_id=type_id, acknowledge=acknowledge, implicit_decision=silence)
        )
        added_rules += 1
    closed = set(db.session.execute(select(Closure.day)).scalars())
    added_closures = 0
    for day, label in CLOSURES:
        if day not in closed:
            db.session.add(Closure(day=day, label=label))
            added_closures += 1
    db.session.commit()
    return {"types": added_types, "rules": added_rules, "closures": added_closures}
