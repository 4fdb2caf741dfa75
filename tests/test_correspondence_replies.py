"""The incoming-mail circuit answers through the parapheur: the reply drafted on the case is
rendered, goes round the outgoing-letter circuit (visa, PAdES signature), comes back as the
case's signed answer, leaves by e-mail or in the print batch, and dates the answer."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.auth.services import create_org_unit, find_user_by_email, update_org_unit
from app.core.db import utcnow
from app.core.errors import ValidationFailed
from app.core.extensions import db
from app.correspondence import replies
from app.correspondence import services as intake
from app.correspondence.models import (
    AnswerDelivery,
    CaseLink,
    CaseStatus,
    Channel,
    Correspondence,
    Direction,
    LinkKind,
)
from app.deadlines import services as deadlines
from app.deadlines.calendar import local_day
from app.documents.services import content
from app.engine import services as engine
from app.engine.models import HumanTask, MessageSubscription, TaskStatus
from app.inbox import queries
from app.inbox.services import task_documents
from app.parapheur import services as parapheur
from app.parapheur.models import FolderStatus
from app.parapheur.services import Upload
from app.stats import services as stats
from tests.conftest import csrf_token, login
from tests.deadlines_helpers import ADMIN, citizen, setup_office
from tests.intake_helpers import pdf_bytes
from tests.parapheur_support import PKCS12_PASSWORD, make_pdf, pdfsig
from tests.smtp_sink import SmtpSink

LETTER = (
    "Madame,\n\nLa réfection de la chaussée de la route de Vannes est programmée pour "
    "le printemps.\nLes riverains seront prévenus.\n\nVeuillez agréer, Madame, "
    "l'expression de nos salutations distinguées."
)


@pytest.fixture
def office(signing_app, make_user, signing_infrastructure):
    """Intake's office (services with contact details, letterhead) plus the people of the
    outgoing-letter circuit: a DGS member who gives the visa, the President who signs."""
    people = setup_office(signing_app, make_user)
    people["visa"] = make_user(groups=["dgs"], email="visa@example.test", name="Victor Visa")
    people["president"] = make_user(
        email="president@example.test",
        name="Marie Présidente",
        title="Présidente du Conseil départemental",
    )
    with signing_app.app_context():
        unit = create_org_unit(code="departement", name="Département", kind="departement")
        update_org_unit(unit, name="Département", parent=None, head=user(people["president"]))
        parapheur.import_pkcs12(
            signing_infrastructure.identity("Marie Présidente").pkcs12(),
            PKCS12_PASSWORD,
            email=people["president"],
        )
    return people


def user(email):
    return find_user_by_email(email)


def case_tasks(case: Correspondence) -> dict[str, HumanTask]:
    rows = db.session.execute(
        select(HumanTask).where(
            HumanTask.instance_id == case.process_instance_id,
            HumanTask.status == TaskStatus.OPEN,
        )
    ).scalars()
    return {row.element_id: row for row in rows}


def folder_tasks(folder) -> dict[str, HumanTask]:
    return {t.form_key: t for t in parapheur.open_tasks(folder)}


def letter(channel=Channel.PAPER, **sender) -> Correspondence:
    """An incoming letter for the roads service, with its scan, circuit started."""
    return intake.register_case(
        intake.Intake(
            channel=channel,
            subject="Nids de poule route de Vannes",
            received_at=utcnow(),
            type_code="demande_information",
            service_group="routes",
            sender=citizen(**sender),
            files=[
                intake.IncomingFile(
                    "lettre.pdf", "application/pdf", pdf_bytes("Lettre recue"), role="scan"
                )
            ],
        ),
        None,
    )


def draft(case: Correspondence, office, text: str = LETTER):
    """The service decides to answer and drafts the reply: it goes into a parapheur."""
    routes = user(office["routes"])
    engine.complete_task(case_tasks(case)["Task_traiter"].id, {"action": "reply"}, routes)
    engine.complete_task(case_tasks(case)["Task_rediger"].id, {"response_text": text}, routes)
    db.session.refresh(case)
    return replies.reply_folder(case)


def visa_and_sign(folder, office):
    engine.complete_task(
        folder_tasks(folder)["visa"].id, {"decision": "approve"}, user(office["visa"])
    )
    engine.complete_task(
        folder_tasks(folder)["signature"].id, {"decision": "sign"}, user(office["president"])
    )


def pdftotext(data: bytes, workdir) -> str:
    path = workdir / "letter.pdf"
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_a_paper_letter_is_answered_through_the_parapheur_and_waits_in_the_print_batch(
    signing_app, office, signing_infrastructure, tmp_path
):
    with signing_app.app_context():
        case = letter()
        folder = draft(case, office)
        # the reply is a parapheur of its own circuit (own instance, pinned to its version);
        # the case waits for it inside the sub-process that carries its deadline timers
        assert folder.process_key == "parapheur_par_type"
        assert (folder.origin_type, folder.origin_id) == ("correspondence", str(case.id))
        assert folder.process_instance_id != case.process_instance_id
        assert case_tasks(case) == {}
        waiting = db.session.execute(
            select(MessageSubscription.message_name).where(
                MessageSubscription.instance_id == case.process_instance_id
            )
        ).scalars()
        assert list(waiting) == ["parapheur_termine"]
        draft_text = pdftotext(content(folder.current_documents("main")[0].current), tmp_path)
        assert case.chrono in draft_text and "route de Vannes est programmée" in draft_text

        # the visa step is the outgoing-letter circuit's (DGS), and the inbox finds it by
        # the case's number, with the case's due date
        visa = folder_tasks(folder)["visa"]
        assert visa.candidate_groups == ["dgs"]
        assert visa.due_at == case.due_at
        found = queries.list_tasks(
            user(office["visa"]), "candidate", filters=queries.Filters(terms=[case.chrono.lower()])
        ).tasks
        assert [t.id for t in found] == [visa.id]
        # the signer reads the letter being answered through the task
        engine.complete_task(visa.id, {"decision": "approve"}, user(office["visa"]))
        signature = folder_tasks(folder)["signature"]
        readable = {d.filename for d in task_documents(signature, user(office["president"]))}
        assert "lettre.pdf" in readable
        engine.complete_task(signature.id, {"decision": "sign"}, user(office["president"]))

        db.session.refresh(case)
        assert parapheur.get_folder(folder.id).status == FolderStatus.COMPLETED
        assert case.status == CaseStatus.CLOSED
        assert case.answered_at is not None and case.answered_at <= case.closed_at
        answer = replies.answer_of(case)
        assert answer.delivery == AnswerDelivery.PAPER
        assert answer.answer.direction == Direction.OUTGOING
        assert "-D-" in answer.answer.chrono
        assert answer.answer.status == CaseStatus.CLOSED
        link = db.session.execute(select(CaseLink).where(CaseLink.source_id == answer.answer_id))
        assert [(lk.target_id, lk.kind) for lk in link.scalars()] == [(case.id, LinkKind.REPLY_TO)]
        attached = [(a.role, a.document_id) for a in case.attachments if a.role == "reponse"]
        assert attached == [("reponse", answer.document_id)]
        assert answer.document.kind == "signed"

        signed = content(answer.document)
        [check] = pdfsig(signed, signing_infrastructure.nssdb, signing_infrastructure.workdir)
        assert check.valid and check.trusted and check.whole_document
        assert "Marie Présidente" in (check.value("Signer Certificate Common Name") or "")

        # the mail office prints the batch of signed paper answers
        mail_office = user(office["courrier"])
        assert [a.id for a in replies.answers_to_print(mail_office)] == [answer.id]
        batch = replies.print_answers(mail_office)
        assert "Nids de poule" in pdftotext(content(batch), tmp_path)
        assert replies.answers_to_print(mail_office) == []
        assert replies.print_answers(mail_office) is None

        # the dashboard counts the case as answered within its target
        today = local_day(utcnow())
        report = stats.report(user(ADMIN), stats.Period(today - timedelta(days=1), today))
        assert (report.total.answers_measured, report.total.answered_in_time) == (1, 1)


def test_an_electronic_request_gets_its_signed_answer_by_e_mail(
    signing_app, office, signing_infrastructure
):
    with SmtpSink() as sink:
        signing_app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=sink.port)
        with signing_app.app_context():
            case = letter(channel=Channel.EMAIL, email="claire.dupont@example.org")
            visa_and_sign(draft(case, office), office)
            db.session.refresh(case)
            answer = replies.answer_of(case)
            assert case.status == CaseStatus.CLOSED
            assert (answer.delivery, answer.recipient) == (
                AnswerDelivery.EMAIL,
                "claire.dupont@example.org",
            )
            assert answer.answer.channel == Channel.EMAIL
            assert replies.answers_to_print(user(office["courrier"])) == []
            chrono = case.chrono
            deadlines.send_pending_notices()
        [mail] = [m for m in sink.messages if m["Subject"].startswith("Réponse à votre demande")]
        assert mail["To"] == "claire.dupont@example.org"
        assert chrono in mail["Subject"]
        [attachment] = list(mail.iter_attachments())
        [check] = pdfsig(
            attachment.get_content(), signing_infrastructure.nssdb, signing_infrastructure.workdir
        )
        assert check.valid and check.trusted and check.whole_document


def test_a_refused_reply_returns_to_its_drafter_with_the_reason_and_a_new_version_is_signed(
    signing_app, office, signing_infrastructure
):
    with signing_app.app_context():
        case = letter()
        folder = draft(case, office)
        engine.complete_task(
            folder_tasks(folder)["visa"].id,
            {"decision": "reject", "comment": "Préciser la date des travaux"},
            user(office["visa"]),
        )
        correction = folder_tasks(folder)["parapheur_correction"]
        assert correction.assignee_id == user(office["routes"]).id
        assert "Préciser la date des travaux" in correction.documentation
        assert "Victor Visa" in correction.documentation
        assert case_tasks(case) == {}  # the case still waits for its reply
        parapheur.resubmit_folder(
            folder.id, user(office["routes"]), [Upload("reponse-v2.pdf", make_pdf())]
        )
        visa_and_sign(parapheur.get_folder(folder.id), office)
        db.session.refresh(case)
        assert case.status == CaseStatus.CLOSED
        answer = replies.answer_of(case)
        assert answer.document.filename == "reponse-v2.pdf"
        assert answer.document.kind == "signed"


def test_an_abandoned_reply_sends_the_drafter_back_to_writing_with_the_reason(signing_app, office):
    with signing_app.app_context():
        case = letter()
        first = draft(case, office)
        engine.complete_task(
            folder_tasks(first)["visa"].id,
            {"decision": "reject", "comment": "Le ton ne convient pas"},
            user(office["visa"]),
        )
        parapheur.abandon_folder(first.id, user(office["routes"]), "Je réécris")
        rewrite = case_tasks(case)["Task_rediger"]
        assert "Le ton ne convient pas" in rewrite.documentation
        assert "Victor Visa" in rewrite.documentation
        engine.complete_task(
            rewrite.id, {"response_text": "Madame,\n\nNouvelle réponse."}, user(office["routes"])
        )
        second = replies.reply_folder(case)
        assert second.id != first.id
        assert second.status == FolderStatus.IN_PROGRESS
        assert parapheur.get_folder(first.id).status == FolderStatus.ABANDONED


def test_terminating_a_reply_folder_abandons_it_and_returns_the_case_to_its_drafter(
    signing_app, office
):
    with signing_app.app_context():
        case = letter()
        folder = draft(case, office)
        engine.terminate_instance(folder.process_instance_id, user(ADMIN), "Doublon")
        folder = parapheur.get_folder(folder.id)
        assert folder.status == FolderStatus.ABANDONED
        steps = parapheur.folder_steps(folder)
        assert [(s["kind"], s["decision"], s["comment"]) for s in steps][-1] == (
            "termination",
            "abandon",
            "Doublon",
        )
        assert folder_tasks(folder) == {}
        rewrite = case_tasks(case)["Task_rediger"]
        assert "abandonnée" in rewrite.documentation


def test_a_lost_outcome_is_delivered_by_the_worker_safety_net(signing_app, office):
    with signing_app.app_context():
        case = letter()
        folder = draft(case, office)
        admin = user(ADMIN)
        engine.suspend_instance(case.process_instance_id, admin)
        visa_and_sign(folder, office)  # the case cannot hear it while suspended
        db.session.refresh(case)
        assert parapheur.get_folder(folder.id).status == FolderStatus.COMPLETED
        assert case.status != CaseStatus.CLOSED
        engine.resume_instance(case.process_instance_id, admin)
        assert replies.deliver_pending_outcomes() == 1
        db.session.refresh(case)
        assert case.status == CaseStatus.CLOSED
        assert replies.answer_of(case) is not None
        assert replies.deliver_pending_outcomes() == 0


def test_a_reply_draft_naming_a_document_of_another_case_is_refused_and_nothing_starts(
    signing_app, office
):
    with signing_app.app_context():
        case, other = letter(), letter()
        routes = user(office["routes"])
        engine.complete_task(case_tasks(case)["Task_traiter"].id, {"action": "reply"}, routes)
        foreign = other.attachments[0].document_id
        task = case_tasks(case)["Task_rediger"]
        with pytest.raises(ValidationFailed) as refused:
            engine.complete_task(task.id, {"response_document_id": foreign}, routes)
        assert refused.value.errors[0]["field"] == "response_document_id"
        db.session.refresh(task)
        assert task.status == TaskStatus.OPEN
        assert replies.reply_folder(case) is None
        # a PDF of the case itself goes into the parapheur as it is
        own = case.attachments[0].document_id
        engine.complete_task(task.id, {"response_document_id": own}, routes)
        folder = replies.reply_folder(case)
        assert folder.current_documents("main")[0].original.sha256 == (
            case.attachments[0].document.sha256
        )


def test_the_folder_api_is_unchanged_for_a_reply_folder(signing_app, office, client, api_token):
    with signing_app.app_context():
        case = letter()
        folder = draft(case, office)
        instance_id = folder.process_instance_id
    response = client.get(
        f"/api/v1/parapheur/folders/{folder.id}", headers=api_token(office["routes"])
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["id"] == folder.id and body["process_instance_id"] == instance_id
    assert [s["kind"] for s in body["steps"]] == ["submit", "visa"]
    assert body["documents"][0]["versions"][0]["kind"] == "original"


def test_an_answered_case_counts_late_when_its_answer_left_after_the_due_date(signing_app, office):
    with signing_app.app_context():
        case = intake.register_case(
            intake.Intake(
                channel=Channel.PAPER,
                subject="Ancienne demande",
                received_at=utcnow() - timedelta(days=60),
                type_code="demande_information",
                service_group="routes",
                sender=citizen(),
            ),
            None,
        )
        visa_and_sign(draft(case, office), office)
        db.session.refresh(case)
        assert case.answered_at > case.due_at
        day = local_day(case.received_at)
        report = stats.report(user(ADMIN), stats.Period(day, local_day(utcnow())))
        assert (report.total.answers_measured, report.total.answered_in_time) == (1, 0)
        assert case.status == CaseStatus.CLOSED


def test_the_mail_office_prints_paper_answers_from_its_page_and_the_case_shows_its_answer(
    signing_app, office, client
):
    with signing_app.app_context():
        case = letter()
        folder = draft(case, office)
        visa_and_sign(folder, office)
        answer = replies.answer_of(case)
        case_id, folder_id, answer_chrono = case.id, folder.id, answer.answer.chrono
    login(client, office["routes"])
    page = client.get(f"/correspondences/{case_id}").get_data(as_text=True)
    assert f"/parapheur/{folder_id}" in page
    assert answer_chrono in page and "Réponse signée" in page
    assert "dans le prochain lot" in page
    assert client.get("/reponses-a-imprimer").status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    login(client, office["courrier"])
    page = client.get("/reponses-a-imprimer").get_data(as_text=True)
    assert answer_chrono in page
    token = csrf_token(client, "/reponses-a-imprimer")
    response = client.post("/reponses-a-imprimer/lot", data={"csrf_token": token})
    assert response.status_code == 302
    batch = client.get(response.headers["Location"])
    assert batch.mimetype == "application/pdf" and batch.data.startswith(b"%PDF")
    page = client.get("/reponses-a-imprimer").get_data(as_text=True)
    assert "Aucune réponse en attente." in page
    assert "Lot de 1 réponses signées" in page


def test_who_signs_the_reply_reads_the_request_and_others_do_not(signing_app, office, client):
    with signing_app.app_context():
        case = letter()
        folder = draft(case, office)
        engine.complete_task(
            folder_tasks(folder)["visa"].id, {"decision": "approve"}, user(office["visa"])
        )
        president = user(office["president"])
        assert [c.id for c in intake.search_cases(president)[0]] == [case.id]
        assert intake.search_cases(user(office["colleges"]))[0] == []
        case_id, folder_id = case.id, folder.id
    login(client, office["president"])
    assert f"/correspondences/{case_id}" in client.get(f"/parapheur/{folder_id}").get_data(
        as_text=True
    )
    assert client.get(f"/correspondences/{case_id}").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, office["colleges"])
    assert client.get(f"/correspondences/{case_id}").status_code == 403


def test_a_job_application_is_answered_through_the_parapheur_too(signing_app, office, make_user):
    nantes = make_user(groups=["delegation-nantes"], email="nantes@example.test")
    with signing_app.app_context():
        case = intake.register_case(
            intake.Intake(
                channel=Channel.WEB,
                subject="Candidature spontanée : agent d'accueil",
                received_at=utcnow(),
                type_code="candidature",
                sender=citizen(),
                data={"form": {"postal_code": "44000"}},
            ),
            None,
        )
        agent = user(nantes)
        engine.complete_task(case_tasks(case)["Task_examiner"].id, {"decision": "declined"}, agent)
        engine.complete_task(
            case_tasks(case)["Task_repondre"].id,
            {"response_text": "Madame,\n\nNous ne pouvons donner suite."},
            agent,
        )
        assert case_tasks(case) == {}
        visa_and_sign(replies.reply_folder(case), office)
        db.session.refresh(case)
        assert case.status == CaseStatus.CLOSED
        assert replies.answer_of(case).delivery == AnswerDelivery.PAPER  # no e-mail address
