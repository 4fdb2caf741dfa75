"""The shipped circuits: qualification, DMN routing, redirect with trace, closing."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from app.auth.services import find_user_by_email
from app.core.extensions import db
from app.correspondence import services
from app.correspondence.handlers import mentions
from app.correspondence.models import CaseStatus, Channel, Correspondence
from app.correspondence.replies import reply_folder
from app.engine.models import HumanTask, TaskStatus
from app.engine.services import complete_task
from tests.intake_helpers import setup_registry


@pytest.fixture
def office(app, make_user):
    setup_registry(app)
    return {
        "courrier": make_user(groups=["courrier-central"], email="courrier@example.test"),
        "routes": make_user(groups=["routes"], email="routes@example.test"),
        "colleges": make_user(groups=["colleges"], email="colleges@example.test"),
        "signataire": make_user(groups=["signataires-president"], email="sign@example.test"),
        "nazaire": make_user(groups=["delegation-saint-nazaire"], email="nazaire@example.test"),
    }


def open_task(case_id: int) -> HumanTask:
    case = db.session.get(Correspondence, case_id)
    return (
        db.session.query(HumanTask)
        .filter_by(instance_id=case.process_instance_id, status=TaskStatus.OPEN)
        .one()
    )


def finish(case_id: int, email: str, data: dict) -> HumanTask:
    task = open_task(case_id)
    complete_task(task.id, data, find_user_by_email(email))
    return task


def register(subject: str, type_code: str, **extra) -> int:
    case = services.register_case(
        services.Intake(channel=Channel.PAPER, subject=subject, type_code=type_code, **extra), None
    )
    return case.id


def test_keyword_routing_helper_matches_whole_words_without_accents_or_plural():
    assert mentions("Déneigement des ROUTES départementales", "route")
    assert mentions("Demande d'aide APA", "APA")
    assert not mentions("Il faut apaiser les esprits", "APA")
    assert mentions("Inscription au college", "collège")


@pytest.mark.parametrize(
    ("postal_code", "delegation"),
    [
        ("44000", "delegation-nantes"),
        ("44600", "delegation-saint-nazaire"),
        ("44210", "delegation-pays-de-retz"),
        ("44190", "delegation-vignoble"),
        ("44110", "delegation-chateaubriant"),
        ("44150", "delegation-ancenis"),
        ("75011", "rh-recrutement"),
    ],
)
def test_job_applications_go_to_the_delegation_of_the_postal_code(
    app, office, postal_code, delegation
):
    with app.app_context():
        case_id = register(
            "Candidature spontanée : agent d'accueil",
            "candidature",
            data={"form": {"postal_code": postal_code}},
        )
        task = open_task(case_id)
        case = db.session.get(Correspondence, case_id)
        assert task.name == "Examiner la candidature"
        assert task.candidate_groups == [delegation]
        assert case.service_group == delegation
        assert case.status == CaseStatus.IN_PROGRESS
        copies = [c.group.name for c in case.copies]
        assert copies == ([] if delegation == "rh-recrutement" else ["rh-recrutement"])


def test_incoming_mail_circuit_qualifies_routes_and_hands_the_reply_to_the_parapheur(app, office):
    with app.app_context():
        case_id = register("Courrier", "demande_information")
        task = finish(
            case_id,
            office["courrier"],
            {
                "type_code": "reclamation",
                "subject": "Nids de poule sur la route de Vannes",
                "confidentiality": "normal",
            },
        )
        assert task.name == "Qualifier le courrier"
        case = db.session.get(Correspondence, case_id)
        assert case.case_type.code == "reclamation"
        assert case.subject == "Nids de poule sur la route de Vannes"
        assert case.service_group == "routes"
        assert [c.group.name for c in case.copies] == ["dgs"]
        assert open_task(case_id).candidate_groups == ["routes"]

        finish(case_id, office["routes"], {"action": "reply"})
        finish(case_id, office["routes"], {"response_text": "Les travaux sont programmés."})
        # visa, signature and sending are the parapheur's (tests/test_correspondence_replies.py)
        folder = reply_folder(case)
        assert folder.title.startswith(f"Réponse au courrier {case.chrono}")
        assert folder.drafter.email == office["routes"]
        waiting = db.session.query(HumanTask).filter_by(
            instance_id=case.process_instance_id, status=TaskStatus.OPEN
        )
        assert waiting.count() == 0
        assert case.status == CaseStatus.IN_PROGRESS


def test_incoming_mail_classed_without_reply_is_closed(app, office):
    with app.app_context():
        case_id = register("Invitation", "demande_information")
        qualification = {"type_code": "reclamation", "subject": "Route"}
        finish(case_id, office["courrier"], {**qualification, "confidentiality": "normal"})
        finish(case_id, office["routes"], {"action": "no_reply"})
        case = db.session.get(Correspondence, case_id)
        assert case.status == CaseStatus.CLOSED
        assert case.closed_at is not None
        assert case.answered_at is None


def test_redirect_keeps_a_trace_and_restarts_the_legal_clock(app, office):
    with app.app_context():
        case_id = register("Courrier", "demande_information")
        finish(
            case_id,
            office["courrier"],
            {
                "type_code": "demande_information",
                "subject": "Collège Jules Verne",
                "confidentiality": "normal",
            },
        )
        case = db.session.get(Correspondence, case_id)
        first_start, first_due = case.legal_start_at, case.due_at
        assert case.service_group == "colleges"

        # deadlines are whole days: the transfer happens a week later
        with time_machine.travel(first_start + timedelta(days=7), tick=False):
            finish(
                case_id,
                office["colleges"],
                {
                    "action": "redirect",
                    "redirect_to": "delegation-saint-nazaire",
                    "reason": "Hors compétence",
                },
            )
        db.session.refresh(case)
        assert case.service_group == "delegation-saint-nazaire"
        [redirect] = case.redirects
        assert (redirect.from_group, redirect.to_group, redirect.reason) == (
            "colleges",
            "delegation-saint-nazaire",
            "Hors compétence",
        )
        assert case.legal_start_at == redirect.received_by_competent_at
        assert case.legal_start_at > first_start
        assert case.due_at > first_due
        assert open_task(case_id).candidate_groups == ["delegation-saint-nazaire"]
        actions = [e.action for e in services.case_history(case)]
        assert "correspondence.redirect" in actions


def test_redirect_without_reason_is_refused_by_the_form(app, office):
    from app.core.errors import ValidationFailed

    with app.app_context():
        case_id = register("Collège", "demande_information")
        finish(
            case_id,
            office["courrier"],
            {"type_code": "autre", "subject": "Collège", "confidentiality": "normal"},
        )
        with pytest.raises(ValidationFailed):
            finish(case_id, office["colleges"], {"action": "redirect", "redirect_to": "routes"})


def test_item_whose_circuit_cannot_start_is_kept_and_flagged(app, office):
    from app.engine.services import set_definition_active

    with app.app_context():
        admin = find_user_by_email(office["courrier"])
        admin.role = "admin"
        db.session.commit()
        set_definition_active("courrier_entrant", False, admin)
        case_id = register("Courrier sans circuit", "autre")
        case = db.session.get(Correspondence, case_id)
        assert case.process_instance_id is None
        assert "process_error" in case.flags
        set_definition_active("courrier_entrant", True, admin)
        case.distribution_claimed_at = None
        db.session.commit()
        services.distribute_case(case_id)
        db.session.refresh(case)
        assert case.process_instance_id is not None
        assert "process_error" not in case.flags


def test_shipped_processes_deploy_with_the_cli(app):
    import json

    from app.correspondence.demo import PROCESSES_DIR

    result = app.test_cli_runner().invoke(
        args=["process", "deploy", *sorted(str(p) for p in PROCESSES_DIR.iterdir())]
    )
    assert result.exit_code == 0, result.output
    deployed = [json.loads(line) for line in result.output.splitlines()]
    assert {d["key"] for d in deployed} >= {
        "routage_candidature",
        "routage_courrier",
        "candidature",
        "courrier_entrant",
        "parapheur_adhoc",
        "parapheur_sequentiel",
    }
    assert all(d["created"] for d in deployed)


def test_worker_starts_the_circuit_of_an_item_registered_without_one(app, office):
    from datetime import timedelta

    with app.app_context():
        case = services.register_case(
            services.Intake(channel=Channel.API, subject="Sans circuit", type_code="autre"),
            None,
            distribute=False,
        )
        assert services.distribute_pending() == 0  # too recent: its own job may still run
        case.registered_at -= timedelta(minutes=2)
        db.session.commit()
        assert services.distribute_pending() == 1
        db.session.refresh(case)
        assert case.process_instance_id is not None
        assert services.distribute_pending() == 0
