"""The demo data of deadlines loads once and gives the demo types their legal meaning."""

from __future__ import annotations

from app.core.extensions import db
from app.deadlines import demo
from app.deadlines.clocks import resolve_rule
from app.deadlines.models import Closure, DeadlineRule
from tests.intake_helpers import setup_registry


def test_demo_load_is_idempotent_and_sets_silence_per_type(app):
    setup_registry(app, deploy=False)
    with app.app_context():
        first = demo.load()
        assert first == {"types": 2, "rules": 5, "closures": 2}
        assert demo.load() == {"types": 0, "rules": 0, "closures": 0}
        assert db.session.query(DeadlineRule).count() == 5
        assert db.session.query(Closure).count() == 2
        from app.correspondence.services import get_case_type

        subsidy = get_case_type("demande_subvention")
        assert resolve_rule(subsidy.id, "paper").implicit_decision == "rejection"
        assert resolve_rule(subsidy.id, "email").target_days == 5
        invoice = get_case_type("facture")
        assert resolve_rule(invoice.id, "paper").acknowledge is False
