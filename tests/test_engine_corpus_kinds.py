"""Files like the ones real modelling tools produce: the runnable ones deploy and run to
their end; the others are refused with a message naming the element."""

from __future__ import annotations

import pytest

from app.core.errors import ValidationFailed
from app.engine import services
from tests.engine_helpers import deploy_fixtures, drive_to_end

RUNNABLE = [
    # (files, process key, start data, answers per user task)
    (
        ["camunda_approval.bpmn"],
        "approbation_simple",
        {"subject": "Demande de subvention"},
        {
            "Task_redaction": {"subject": "Réponse", "signataire": "admin@example.test"},
            "Task_visa": {"decision": "approve"},
            "Task_signature": {"decision": "sign"},
        },
    ),
    (
        ["flowable_vacation.bpmn20.xml"],
        "demande_conge",
        {"jours": 3},
        {"handleRequest": {"decision": "approve"}},
    ),
    (
        ["sartography_style.bpmn"],
        "Process_commande",
        {"lines": [{"price": 12.5, "quantity": 4}, {"price": 3, "quantity": 10}]},
        {},
    ),
    (["multi_process.bpmn"], "fiche_poste", {}, {}),
    (["multi_process.bpmn"], "note_interne", {"destinataire": "admin@example.test"}, {}),
    (
        ["call_parent.bpmn", "call_child.bpmn"],
        "courrier_avec_visa",
        {},
        {"Task_visa_dgs": {"decision": "approve"}},
    ),
    (
        ["camunda_dmn.bpmn", "invoice_routing.dmn"],
        "circuit_facture",
        {"document_type": "facture", "amount": 1200},
        {"Task_signer": {"decision": "sign"}},
    ),
    (["camunda_service.bpmn"], "accuse_reception", {}, {}),
]

REFUSED = [
    (
        "signavio_descriptive.bpmn",
        "sid-5d1a9b7c-2f4e-4c3a-8b1d-7e6f5a4b3c2d",
        "n'est pas exécutable",
    ),
    ("trisotech_feel.bpmn", "_7c1e-yes", "FEEL"),
    ("trisotech_feel.bpmn", "_7c1e-no", "FEEL"),
    ("bonita_export.bpmn", "_bonita-start", "n'a pas d'expression de date, de durée ou de cycle"),
    ("bonita_export.bpmn", "_bonita-call", "n'indique pas le processus appelé"),
    ("bonita_export.bpmn", "_bonita-f3", "n'a ni condition ni statut de flux par défaut"),
    ("miwg_unsupported.bpmn", "complex", "passerelle complexe"),
    ("miwg_unsupported.bpmn", "compensate_pay", "compensation"),
    ("miwg_unsupported.bpmn", "refund", "compensation"),
    ("miwg_unsupported.bpmn", "link_throw", "événement de lien"),
    ("miwg_unsupported.bpmn", "ged", "entrepôt de données"),
    ("sartography_empty_pool.bpmn", "Process_portail", "n'a pas d'événement de début"),
    ("feel_functions.dmn", "IE_d1", "Cellule invalide (règle 1)"),
    ("feel_functions.dmn", "Table_any", "Politique de résultat « ANY » non prise en charge"),
]


@pytest.mark.parametrize(
    ("files", "key", "data", "answers"), RUNNABLE, ids=[r[1] for r in RUNNABLE]
)
def test_runnable_file_deploys_and_runs_to_its_end(app, make_user, files, key, data, answers):
    make_user(role="admin", email="admin@example.test")
    with app.app_context():
        results = deploy_fixtures(*files)
        assert key in {r.key for r in results if r.created}
        from app.auth.services import find_user_by_email

        instance = services.start_instance(key, data, find_user_by_email("admin@example.test"))
        finished = drive_to_end(instance.id, "admin@example.test", answers)
        assert str(finished.status) == "completed"


@pytest.mark.parametrize(
    ("filename", "element_id", "message"), REFUSED, ids=[f"{r[0]}:{r[1]}" for r in REFUSED]
)
def test_unsupported_file_is_refused_naming_the_element(app, filename, element_id, message):
    with app.app_context(), pytest.raises(ValidationFailed) as refused:
        deploy_fixtures(filename)
    matching = [e for e in refused.value.errors if e["element_id"] == element_id]
    assert matching, refused.value.errors
    assert any(message in e["message"] for e in matching), matching
    assert all(e["file"] == filename for e in refused.value.errors)


def test_parser_bugs_become_structured_errors():
    from app.engine.compiler import _spiff_problem

    problem = _spiff_problem("f.bpmn", KeyError("{http://camunda.org/schema/1.0/bpmn}x"))
    assert problem.message.startswith("Le moteur n'a pas pu lire ce diagramme (KeyError")
    assert (problem.file, problem.element_id) == ("f.bpmn", None)
    typed = _spiff_problem("f.bpmn", TypeError("'NoneType' object is not iterable"))
    assert "TypeError" in typed.message
