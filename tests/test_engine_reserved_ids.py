"""Deploying a diagram whose element ids collide with the engine's own step names."""

from __future__ import annotations

import pytest

from app.core.errors import ValidationFailed
from app.engine import services as engine
from tests.inbox_support import BPMN


def test_element_ids_reserved_by_the_engine_are_refused_at_deploy(app):
    source = BPMN.read_text().replace("StartEvent_courrier", "Start")
    with app.app_context(), pytest.raises(ValidationFailed) as refused:
        engine.deploy([("reserved.bpmn", source.encode())], None)
    [problem] = [e for e in refused.value.errors if e["element_id"] == "Start"]
    assert "réservé" in problem["message"]
