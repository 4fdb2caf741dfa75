"""Circuit studio services: drafts, concurrent edits, publication, diff, rollback, packages."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from app.admin import bpmn_diff, packages
from app.admin import services as studio
from app.auth.services import create_group, find_user_by_email
from app.core.audit import AuditEvent
from app.core.errors import Conflict, PermissionDenied, ValidationFailed
from app.core.extensions import db
from app.engine import services as engine
from tests.studio_helpers import decision_table, deploy_circuit, linear_circuit


@pytest.fixture
def analyst(app, make_user):
    with app.app_context():
        create_group(name="redaction", label="Rédaction")
        create_group(name="dgs", label="Direction générale")
    email = make_user(role="analyst", groups=["redaction", "dgs"], name="Paul Renaud")
    return email


def user(email):
    return find_user_by_email(email)


def with_group(xml: str, old: str, new: str) -> str:
    return xml.replace(f'camunda:candidateGroups="{old}"', f'camunda:candidateGroups="{new}"', 1)


def test_opening_a_deployed_circuit_creates_a_shared_draft_from_its_latest_version(app, analyst):
    with app.app_context():
        deploy_circuit(linear_circuit())
        draft = studio.open_draft("courrier_test", user(analyst))
        assert draft.revision == 1
        assert draft.base_version == 1
        assert draft.source == engine.latest_version("courrier_test").source
        assert studio.open_draft("courrier_test", user(analyst)).id == draft.id


def test_saving_a_draft_bumps_its_revision_and_reports_deploy_problems(app, analyst):
    with app.app_context():
        deploy_circuit(linear_circuit())
        actor = user(analyst)
        draft = studio.open_draft("courrier_test", actor)
        broken = linear_circuit().replace('camunda:formKey="visa"', 'camunda:formKey="inconnu"')
        saved, _warnings = studio.save_draft(draft.id, broken, 1, actor)
        assert saved.revision == 2
        assert [p["element_id"] for p in saved.problems] == ["Task_visa"]
        assert "inconnu" in saved.problems[0]["message"]


def test_second_analyst_saving_a_stale_revision_gets_a_conflict_in_french(app, analyst, make_user):
    other = make_user(role="analyst", name="Claire Martin")
    with app.app_context():
        deploy_circuit(linear_circuit())
        first, second = user(analyst), user(other)
        draft = studio.open_draft("courrier_test", first)
        studio.save_draft(draft.id, with_group(linear_circuit(), "redaction", "dgs"), 1, first)
        with pytest.raises(Conflict) as caught:
            studio.save_draft(
                draft.id, with_group(linear_circuit(), "redaction", "courrier"), 1, second
            )
        assert "Paul Renaud" in caught.value.detail
        assert "n'ont pas été enregistrées" in caught.value.detail
        assert caught.value.extra["revision"] == 2
        db.session.expire_all()
        assert 'candidateGroups="dgs"' in studio.find_draft("bpmn", "courrier_test").source


def test_unreadable_xml_is_refused_and_the_draft_is_kept(app, analyst):
    with app.app_context():
        deploy_circuit(linear_circuit())
        draft = studio.open_draft("courrier_test", user(analyst))
        with pytest.raises(ValidationFailed):
            studio.save_draft(draft.id, "<bpmn:definitions", 1, user(analyst))
        db.session.expire_all()
        assert studio.find_draft("bpmn", "courrier_test").revision == 1


def test_publishing_a_changed_draft_creates_the_next_version(app, analyst):
    with app.app_context():
        deploy_circuit(linear_circuit())
        actor = user(analyst)
        draft = studio.open_draft("courrier_test", actor)
        studio.save_draft(draft.id, with_group(linear_circuit(), "redaction", "dgs"), 1, actor)
        result = studio.publish_draft(draft.id, actor, revision=2, version_tag="2025-03")
        assert result["created"] is True
        assert result["version"] == 2
        latest = engine.latest_version("courrier_test")
        assert latest.version_tag == "2025-03"
        assert latest.deployed_by_id == actor.id
        assert studio.find_draft("bpmn", "courrier_test").base_version == 2


def test_publishing_an_unchanged_draft_creates_no_version(app, analyst):
    with app.app_context():
        deploy_circuit(linear_circuit())
        actor = user(analyst)
        draft = studio.open_draft("courrier_test", actor)
        result = studio.publish_draft(draft.id, actor, revision=1)
        assert result["created"] is False
        assert result["version"] == 1
        assert "Aucun changement" in result["message"]
        assert len(engine.get_definition("courrier_test").versions) == 1


def test_publishing_an_invalid_draft_is_refused_with_element_ids(app, analyst):
    with app.app_context():
        actor = user(analyst)
        draft = studio.new_circuit("nouveau_circuit", "Nouveau circuit", actor)
        broken = draft.source.replace(
            '<bpmn:endEvent id="EndEvent_1" name="Fin">',
            ('<bpmn:complexGateway id="Gateway_x" /><bpmn:endEvent id="EndEvent_1" name="Fin">'),
        )
        studio.save_draft(draft.id, broken, 1, actor)
        with pytest.raises(ValidationFailed) as caught:
            studio.publish_draft(draft.id, actor, revision=2)
        assert "Gateway_x" in [e["element_id"] for e in caught.value.errors]
        assert engine.latest_version("nouveau_circuit") is None


def test_publishing_with_a_stale_revision_is_a_conflict(app, analyst):
    with app.app_context():
        deploy_circuit(linear_circuit())
        actor = user(analyst)
        draft = studio.open_draft("courrier_test", actor)
        studio.save_draft(draft.id, with_group(linear_circuit(), "redaction", "dgs"), 1, actor)
        with pytest.raises(Conflict):
            studio.publish_draft(draft.id, actor, revision=1)


def test_new_circuit_refuses_an_invalid_or_taken_key(app, analyst):
    with app.app_context():
        actor = user(analyst)
        with pytest.raises(ValidationFailed) as caught:
            studio.new_circuit("avec espace", "Nom", actor)
        assert caught.value.errors[0]["field"] == "key"
        studio.new_circuit("circuit_a", "Circuit A", actor)
        with pytest.raises(ValidationFailed):
            studio.new_circuit("circuit_a", "Encore", actor)


def test_new_circuit_template_publishes_as_version_one(app, analyst):
    with app.app_context():
        actor = user(analyst)
        draft = studio.new_circuit("circuit_a", "Circuit « A » & co", actor)
        assert draft.problems == [] or studio.validate_draft(draft.id, actor)["problems"] == []
        assert studio.publish_draft(draft.id, actor)["version"] == 1
        assert engine.get_definition("circuit_a").name == "Circuit « A » & co"


def test_diff_lists_added_removed_and_changed_elements_with_properties():
    old = linear_circuit()
    new = linear_circuit(
        tasks=[
            ("Task_redaction", "Rédiger la réponse", {"camunda:candidateGroups": "courrier"}),
            ("Task_sign", "Signer", {"camunda:candidateGroups": "dgs"}),
        ]
    )
    diff = bpmn_diff.compare(old, new)
    assert [e["id"] for e in diff["added"]] == ["Task_sign"]
    assert [e["id"] for e in diff["removed"]] == ["Task_visa"]
    changed = {e["id"]: e["changes"] for e in diff["changed"]}
    redaction = {c["property"]: (c["old"], c["new"]) for c in changed["Task_redaction"]}
    assert redaction["camunda:candidateGroups"] == ("redaction", "courrier")
    assert redaction["name"] == ("Rédiger", "Rédiger la réponse")
    assert {c["label"] for c in changed["Task_redaction"]} >= {"Groupes candidats", "Nom"}
    assert "Flow_2" in changed  # its target changed from Task_visa to Task_sign


def test_diff_sees_conditions_and_extension_properties():
    old = linear_circuit()
    new = old.replace(
        '<bpmn:userTask id="Task_visa" name="Viser" camunda:candidateGroups="dgs" '
        'camunda:formKey="visa">',
        '<bpmn:userTask id="Task_visa" name="Viser" camunda:candidateGroups="dgs" '
        'camunda:formKey="visa"><bpmn:extensionElements><camunda:properties>'
        '<camunda:property name="title" value="Viser {subject}" /></camunda:properties>'
        "</bpmn:extensionElements>",
    )
    diff = bpmn_diff.compare(old, new)
    (changed,) = diff["changed"]
    assert changed["id"] == "Task_visa"
    (change,) = changed["changes"]
    assert change["new"] == "Viser {subject}"
    assert "camunda:property[title]" in change["property"]
    assert change["label"] == "Propriété « title »"


def test_diff_of_identical_files_is_empty_and_moves_are_told_apart():
    xml = linear_circuit()
    assert bpmn_diff.compare(xml, xml) == {"added": [], "removed": [], "changed": [], "moved": []}
    moved = xml.replace('<dc:Bounds x="246"', '<dc:Bounds x="300"')
    diff = bpmn_diff.compare(xml, moved)
    assert diff["changed"] == [] and diff["moved"] == ["Task_redaction"]


def test_compare_service_reads_versions_and_the_draft(app, analyst):
    with app.app_context():
        deploy_circuit(linear_circuit())
        deploy_circuit(with_group(linear_circuit(), "redaction", "dgs"))
        result = studio.compare("courrier_test", "1", "2", user(analyst))
        assert [c["id"] for c in result["diff"]["changed"]] == ["Task_redaction"]
        draft = studio.open_draft("courrier_test", user(analyst))
        assert draft.base_version == 2
        same = studio.compare("courrier_test", "2", "draft", user(analyst))
        assert same["diff"]["changed"] == []


def test_rollback_republishes_an_old_version_as_a_new_one(app, analyst):
    with app.app_context():
        actor = user(analyst)
        deploy_circuit(linear_circuit())
        deploy_circuit(with_group(linear_circuit(), "redaction", "dgs"))
        studio.open_draft("courrier_test", actor)
        result = studio.rollback("courrier_test", 1, actor)
        assert result == {"version": 3, "from_version": 1}
        latest = engine.latest_version("courrier_test")
        assert 'candidateGroups="redaction"' in latest.source
        assert studio.find_draft("bpmn", "courrier_test").base_version == 3
        events = (
            db.session.execute(db.select(AuditEvent).where(AuditEvent.action == "process.rollback"))
            .scalars()
            .all()
        )
        assert events[0].data["from_version"] == 1
        with pytest.raises(Conflict):
            studio.rollback("courrier_test", 3, actor)


def test_an_untouched_draft_follows_a_version_published_elsewhere(app, analyst):
    with app.app_context():
        actor = user(analyst)
        deploy_circuit(linear_circuit())
        draft = studio.open_draft("courrier_test", actor)
        deploy_circuit(with_group(linear_circuit(), "redaction", "dgs"))
        reopened = studio.open_draft("courrier_test", actor)
        assert reopened.id == draft.id
        assert reopened.base_version == 2
        assert 'candidateGroups="dgs"' in reopened.source


def test_importing_a_diagram_from_another_tool_makes_it_the_draft(app, analyst):
    with app.app_context():
        raw = (
            linear_circuit(key="sid-4a1b")
            .replace('isExecutable="true"', 'isExecutable="false"')
            .encode()
        )
        draft = studio.import_diagram("export-signavio.bpmn", raw, user(analyst))
        assert (draft.key, draft.filename, draft.revision) == (
            "sid-4a1b",
            "export-signavio.bpmn",
            1,
        )
        assert "n'est pas exécutable" in draft.problems[0]["message"]


def test_importing_something_that_is_not_bpmn_is_refused_in_french(app, analyst):
    with app.app_context():
        with pytest.raises(ValidationFailed) as caught:
            studio.import_diagram("notes.xml", b"<notes><a/></notes>", user(analyst))
        assert "ni un diagramme BPMN" in caught.value.detail


def _package_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _manifest() -> bytes:
    return json.dumps({"format": "missive-circuit", "format_version": 1}).encode()


CUSTOM_FORM = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Avis du service",
    "type": "object",
    "properties": {"avis": {"type": "string", "title": "Avis"}},
    "required": ["avis"],
}


@pytest.fixture
def forms_import_dir(app, tmp_path):
    app.config["MISSIVE_FORMS_IMPORT_DIR"] = str(tmp_path / "imported-forms")
    yield tmp_path / "imported-forms"
    app.config["MISSIVE_FORMS_IMPORT_DIR"] = None


def test_package_round_trip_brings_the_circuit_and_its_new_forms(app, analyst, forms_import_dir):
    with app.app_context():
        actor = user(analyst)
        xml = linear_circuit(
            tasks=[
                (
                    "Task_avis",
                    "Donner un avis",
                    {"camunda:formKey": "avis_service", "camunda:candidateGroups": "dgs"},
                )
            ]
        )
        raw = _package_zip(
            {
                "manifest.json": _manifest(),
                "processes/courrier_test.bpmn": xml.encode(),
                "forms/avis_service.json": json.dumps(CUSTOM_FORM).encode(),
            }
        )
        result = studio.import_package(raw, actor)
        assert result["new_forms"] == ["avis_service"]
        assert result["deployed"][0]["version"] == 1
        assert (forms_import_dir / "avis_service.json").is_file()

        filename, exported = studio.export_package("courrier_test", None, actor)
        assert filename == "courrier_test-v1.zip"
        with zipfile.ZipFile(io.BytesIO(exported)) as archive:
            names = set(archive.namelist())
            manifest = json.loads(archive.read("manifest.json"))
        assert names == {"manifest.json", "processes/courrier_test.bpmn", "forms/avis_service.json"}
        assert manifest["key"] == "courrier_test" and manifest["forms"] == ["avis_service"]
        again = studio.import_package(exported, actor)
        assert again["deployed"][0]["created"] is False
        assert again["new_forms"] == []


def test_package_with_a_path_escaping_the_archive_is_refused(app, analyst, forms_import_dir):
    with app.app_context():
        raw = _package_zip(
            {
                "processes/courrier_test.bpmn": linear_circuit().encode(),
                "../../etc/evil.json": b"{}",
                "/absolute.bpmn": b"<x/>",
            }
        )
        with pytest.raises(ValidationFailed) as caught:
            studio.import_package(raw, user(analyst))
        messages = " ".join(e["message"] for e in caught.value.errors)
        assert "sort de l'archive" in messages and "absolu" in messages
        assert engine.latest_version("courrier_test") is None
        assert not forms_import_dir.exists()


def test_package_with_an_oversized_entry_is_refused(app, analyst, monkeypatch):
    monkeypatch.setattr(packages, "MAX_FILE_BYTES", 1000)
    with app.app_context():
        raw = _package_zip({"processes/courrier_test.bpmn": linear_circuit().encode()})
        with pytest.raises(ValidationFailed) as caught:
            studio.import_package(raw, user(analyst))
        assert "trop volumineux" in caught.value.errors[0]["message"]


def test_package_refuses_a_zip_bomb_by_total_size(monkeypatch):
    monkeypatch.setattr(packages, "MAX_TOTAL_BYTES", 10_000)
    raw = _package_zip({f"processes/p{i}.bpmn": b" " * 4000 for i in range(5)})
    content = packages.read(raw)
    assert any("décompressé trop volumineux" in e["message"] for e in content.errors)


def test_package_with_an_invalid_diagram_installs_nothing(app, analyst, forms_import_dir):
    with app.app_context():
        xml = linear_circuit(
            tasks=[("Task_avis", "Avis", {"camunda:formKey": "avis_service"})]
        ).replace(
            '<bpmn:endEvent id="EndEvent_1" name="Fin">',
            '<bpmn:complexGateway id="Gateway_x" /><bpmn:endEvent id="EndEvent_1" name="Fin">',
        )
        raw = _package_zip(
            {
                "processes/courrier_test.bpmn": xml.encode(),
                "forms/avis_service.json": json.dumps(CUSTOM_FORM).encode(),
            }
        )
        with pytest.raises(ValidationFailed) as caught:
            studio.import_package(raw, user(analyst))
        assert "Gateway_x" in [e["element_id"] for e in caught.value.errors]
        assert not (forms_import_dir / "avis_service.json").exists()


def test_package_form_clashing_with_an_installed_form_is_refused(app, analyst, forms_import_dir):
    with app.app_context():
        raw = _package_zip(
            {
                "processes/courrier_test.bpmn": linear_circuit().encode(),
                "forms/visa.json": json.dumps(CUSTOM_FORM).encode(),
            }
        )
        with pytest.raises(ValidationFailed) as caught:
            studio.import_package(raw, user(analyst))
        assert "existe déjà ici avec un contenu différent" in caught.value.errors[0]["message"]


def test_package_with_an_invalid_json_schema_is_refused(app, analyst, forms_import_dir):
    with app.app_context():
        raw = _package_zip(
            {
                "processes/courrier_test.bpmn": linear_circuit().encode(),
                "forms/avis.json": json.dumps({"type": "objet"}).encode(),
            }
        )
        with pytest.raises(ValidationFailed) as caught:
            studio.import_package(raw, user(analyst))
        assert "Formulaire « avis » invalide" in caught.value.errors[0]["message"]


def test_agents_may_not_use_the_studio_services(app, make_user):
    email = make_user(role="agent")
    with app.app_context():
        deploy_circuit(linear_circuit())
        with pytest.raises(PermissionDenied):
            studio.open_draft("courrier_test", user(email))
        with pytest.raises(PermissionDenied):
            studio.new_circuit("x", "X", user(email))
        with pytest.raises(PermissionDenied):
            studio.rollback("courrier_test", 1, user(email))


def test_decision_tables_have_drafts_and_publish_as_decision_versions(app, analyst):
    with app.app_context():
        actor = user(analyst)
        draft = studio.import_diagram("orientation.dmn", decision_table().encode(), actor)
        assert (str(draft.kind), draft.key, draft.problems) == ("dmn", "orientation", [])
        first = studio.publish_draft(draft.id, actor)
        assert (first["created"], first["version"]) == (True, 1)
        changed = decision_table().replace("delegation-nantes", "delegation-saint-nazaire")
        studio.save_draft(draft.id, changed, draft.revision, actor)
        assert studio.publish_draft(draft.id, actor)["version"] == 2
        assert studio.open_draft("orientation", actor, kind="dmn").id == draft.id


ROUTED = (
    linear_circuit(key="routage")
    .replace(
        '<bpmn:userTask id="Task_redaction" name="Rédiger" camunda:candidateGroups="redaction">',
        '<bpmn:businessRuleTask id="Task_redaction" name="Orienter" '
        'camunda:decisionRef="orientation" camunda:resultVariable="delegation" '
        'camunda:mapDecisionResult="singleEntry">',
    )
    .replace(
        '</bpmn:userTask>\n    <bpmn:userTask id="Task_visa"',
        '</bpmn:businessRuleTask>\n    <bpmn:userTask id="Task_visa"',
    )
)


def test_package_carries_the_decisions_a_circuit_uses(app, analyst, forms_import_dir):
    with app.app_context():
        actor = user(analyst)
        engine.deploy(
            [("orientation.dmn", decision_table().encode()), ("routage.bpmn", ROUTED.encode())],
            actor,
        )
        _name, exported = studio.export_package("routage", None, actor)
        with zipfile.ZipFile(io.BytesIO(exported)) as archive:
            names = set(archive.namelist())
            manifest = json.loads(archive.read("manifest.json"))
        assert "decisions/orientation.dmn" in names
        assert manifest["decisions"] == [
            {"key": "orientation", "version": 1, "file": "decisions/orientation.dmn"}
        ]
        result = studio.import_package(exported, actor)
        assert {(d["kind"], d["created"]) for d in result["deployed"]} == {
            ("decision", False),
            ("process", False),
        }
