"""Ingest of functional mailboxes against a real Dovecot: each message registered once,
moved to « Traités » only after its registration, hard MIME cases, failures."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from app.core import audit
from app.core.extensions import db
from app.correspondence import services as registry
from app.correspondence.models import CaseStatus, Channel, Correspondence
from app.documents import services as documents
from app.mail import services as mail
from app.mail.models import Mailbox, MailMessage
from tests import mail_fixtures as fx
from tests.dovecot import PASSWORD, Dovecot
from tests.intake_helpers import setup_registry

USERS = ["routes", "accueil", "rh"]


@pytest.fixture(scope="session")
def dovecot():
    server = Dovecot(USERS).start()
    yield server
    server.stop()


@pytest.fixture
def imap(app, dovecot):
    for user in USERS:
        dovecot.empty(user)
    setup_registry(app)
    return dovecot


def add_box(app, server, user: str, group: str | None = None, **extra) -> int:
    with app.app_context():
        box = mail.add_mailbox(
            name=f"boite-{user}",
            host="127.0.0.1",
            port=server.port,
            username=user,
            password=PASSWORD,
            use_tls=False,
            group_name=group,
            **extra,
        )
        return box.id


def fetch(app, box_id: int) -> mail.FetchReport:
    with app.app_context():
        return mail.fetch_mailbox(db.session.get(Mailbox, box_id))


def cases(app) -> list[Correspondence]:
    return list(db.session.execute(select(Correspondence).order_by(Correspondence.id)).scalars())


def test_mailbox_add_command_keeps_the_password_encrypted(app, imap):
    result = app.test_cli_runner().invoke(
        args=[
            "mailbox",
            "add",
            "--name",
            "Routes",
            "--host",
            "127.0.0.1",
            "--port",
            str(imap.port),
            "--username",
            "routes",
            "--password",
            PASSWORD,
            "--no-tls",
            "--group",
            "routes",
        ]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        box = db.session.execute(select(Mailbox)).scalar_one()
        assert PASSWORD not in box.secret
        assert (box.host, box.port, box.username, box.folder) == (
            "127.0.0.1",
            imap.port,
            "routes",
            "INBOX",
        )
        assert box.use_tls is False and box.group_name == "routes"
    again = app.test_cli_runner().invoke(
        args=[
            "mailbox",
            "add",
            "--name",
            "Routes",
            "--host",
            "h",
            "--port",
            "1",
            "--username",
            "u",
            "--password",
            "p",
        ]
    )
    assert again.exit_code == 1


def test_fetch_once_registers_every_message_and_moves_it_after_registration(app, imap):
    messages = [fx.simple(), fx.with_pdf(1), fx.latin1_body_and_encoded_subject()]
    imap.append("routes", messages)
    box_id = add_box(app, imap, "routes", group="routes")
    result = app.test_cli_runner().invoke(args=["mail", "fetch", "--once"])
    assert result.exit_code == 0, result.output
    assert '"registered": 3' in result.output
    assert imap.count("routes") == 0
    assert imap.count("routes", "Traités") == 3
    with app.app_context():
        registered = cases(app)
        assert [c.chrono[-6:] for c in registered] == ["000001", "000002", "000003"]
        assert {c.channel for c in registered} == {Channel.EMAIL}
        assert registered[2].subject == "Réclamation : déneigement"
        assert registered[2].sender.email == "renee@example.org"
        assert registered[2].sender.first_name == "Renée"
        assert registered[0].service_group == "routes"
        assert all(c.process_instance_id for c in registered)
        raw = next(a.document for a in registered[1].attachments if a.role == "raw_message")
        assert documents.content(raw).replace(b"\r\n", b"\n") == messages[1].replace(b"\r\n", b"\n")
        names = [a.document.filename for a in registered[1].attachments]
        assert names == ["message.eml", "demande-1.pdf"]
    assert fetch(app, box_id).registered == 0  # nothing left, nothing registered twice


def test_hard_mime_cases_are_all_registered_readably(app, imap):
    imap.append(
        "accueil",
        [
            fx.unknown_charset(),
            fx.broken_boundary(),
            fx.unclosed_boundary(),
            fx.nested_message(),
            fx.tricky_filenames(),
            fx.no_message_id_no_date(),
            fx.tnef_message(),
            fx.eight_bit_headers(),
        ],
    )
    box_id = add_box(app, imap, "accueil")
    report = fetch(app, box_id)
    assert (report.registered, report.failed, report.error) == (8, 0, None)
    with app.app_context():
        by_subject = {c.subject: c for c in cases(app)}
        files = {s: [a.document.filename for a in c.attachments] for s, c in by_subject.items()}
        assert "Café crème" in by_subject["Charset inconnu"].summary
        assert "Texte visible malgre tout" in by_subject["Boundary perdue"].summary
        assert files["Sans fin"] == ["message.eml", "coupe.pdf"]
        assert files["Fwd: Message transféré"] == ["message.eml", "Message transféré.eml"]
        assert files["Noms de fichiers"] == [
            "message.eml",
            "Reçu de dépôt été.pdf",
            "Attestation élève.pdf",
        ]
        assert files["Dossier via Outlook"] == ["message.eml", "releve.pdf", "note.txt"]
        eight_bit = by_subject["Dossier n°12 : réponse"]
        assert files["Dossier n°12 : réponse"] == ["message.eml", "relevé d'identité.pdf"]
        assert eight_bit.sender.first_name == "Jérôme" and eight_bit.sender.last_name == "Lefèvre"
        undated = by_subject["Sans identifiant"]
        assert undated.received_at is not None  # the server's reception date
        assert undated.flags == {}


def test_same_message_reaching_two_mailboxes_is_registered_once_with_a_copy(app, imap):
    message = fx.simple(subject="Envoyé à deux services", message_id="<twice@example.org>")
    imap.append("routes", [message])
    imap.append("rh", [message.replace(b"From:", b"Received: by relay2\r\nFrom:", 1)])
    routes = add_box(app, imap, "routes", group="routes")
    rh = add_box(app, imap, "rh", group="rh-recrutement")
    assert fetch(app, routes).registered == 1
    report = fetch(app, rh)
    assert (report.registered, report.duplicates, report.moved) == (0, 1, 1)
    with app.app_context():
        [case] = cases(app)
        assert [c.group.name for c in case.copies] == ["rh-recrutement"]
        assert db.session.query(MailMessage).count() == 1
    assert imap.count("rh") == 0


def test_reply_is_threaded_to_its_case(app, imap):
    imap.append("routes", [fx.simple(message_id="<first@example.org>")])
    box_id = add_box(app, imap, "routes")
    fetch(app, box_id)
    imap.append("routes", [fx.reply_to("<first@example.org>", "Re: Demande d'information")])
    report = fetch(app, box_id)
    assert (report.registered, report.threaded) == (0, 1)
    with app.app_context():
        [case] = cases(app)
        roles = [a.role for a in case.attachments]
        assert roles == ["raw_message", "raw_message"]
        actions = [
            e.action
            for e in __import__("app.correspondence.services", fromlist=["x"]).case_history(case)
        ]
        assert "correspondence.follow_up" in actions


def test_chrono_in_the_subject_threads_a_reply_and_a_closed_case_gets_a_linked_new_one(app, imap):
    imap.append("routes", [fx.simple(message_id="<a@example.org>")])
    box_id = add_box(app, imap, "routes")
    fetch(app, box_id)
    with app.app_context():
        [case] = cases(app)
        chrono = case.chrono
        case.status = CaseStatus.CLOSED
        db.session.commit()
    imap.append(
        "routes", [fx.simple(subject=f"Votre dossier {chrono}", message_id="<b@example.org>")]
    )
    report = fetch(app, box_id)
    assert report.registered == 1
    with app.app_context():
        first, second = cases(app)
        from app.correspondence.services import links_of

        [link] = links_of(second)
        assert (link.source_id, link.target_id, str(link.kind)) == (
            second.id,
            first.id,
            "same_thread",
        )


def test_a_batch_with_a_reply_and_a_repeat_of_its_own_messages_keeps_order_and_chain(app, imap):
    first = fx.simple(message_id="<premier@example.org>")
    imap.append(
        "routes",
        [
            fx.with_pdf(1, size=3000),
            first,
            fx.reply_to("<premier@example.org>", "Re: Demande d'information"),
            first,  # the same message delivered twice
            fx.with_pdf(2, size=3000),
        ],
    )
    box_id = add_box(app, imap, "routes")
    report = fetch(app, box_id)
    assert (report.registered, report.threaded, report.duplicates, report.moved) == (3, 1, 1, 5)
    with app.app_context():
        registered = cases(app)
        assert [c.sequence for c in registered] == [1, 2, 3]
        assert [c.subject for c in registered] == [
            "Demande numéro 1",
            "Demande d'information",
            "Demande numéro 2",
        ]
        assert [a.role for a in registered[1].attachments] == ["raw_message", "raw_message"]
        assert audit.verify_chain() == []
        [registration] = [
            e
            for e in audit.events_for("correspondence", registered[2].id)
            if e.action == "correspondence.register"
        ]
        assert registration.data["chrono"] == registered[2].chrono
    assert imap.count("routes") == 0


def test_a_message_failing_in_its_batch_stays_flagged_and_the_others_are_registered(
    app, imap, monkeypatch
):
    imap.append(
        "routes",
        [fx.with_pdf(1, size=3000), fx.simple(subject="Piège"), fx.with_pdf(2, size=3000)],
    )
    box_id = add_box(app, imap, "routes")
    original = registry.record_cases

    def refuse_the_trap(intakes, actor=None):
        if any(intake.subject == "Piège" for intake in intakes):
            raise RuntimeError("enregistrement impossible")
        return original(intakes, actor)

    monkeypatch.setattr(registry, "record_cases", refuse_the_trap)
    report = fetch(app, box_id)
    assert (report.registered, report.failed, report.moved) == (2, 1, 2)
    assert "non enregistré" in report.error
    with imap.client("routes") as client:
        client.select_folder("INBOX", readonly=True)
        [uid] = client.search(["ALL"])
        kept = client.fetch([uid], ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])[uid]
    assert b"\\Flagged" in kept[b"FLAGS"]
    assert b"Pi" in kept[b"BODY[HEADER.FIELDS (SUBJECT)]"]
    with app.app_context():
        assert [(c.sequence, c.subject) for c in cases(app)] == [
            (1, "Demande numéro 1"),
            (2, "Demande numéro 2"),
        ]
        assert audit.verify_chain() == []
    monkeypatch.setattr(registry, "record_cases", original)
    again = fetch(app, box_id)
    assert (again.registered, again.failed, again.error) == (1, 0, None)
    with app.app_context():
        assert [c.sequence for c in cases(app)] == [1, 2, 3]


def test_dangerous_attachments_are_quarantined_and_the_case_flagged(app, imap):
    imap.append("routes", [fx.dangerous_attachments()])
    fetch(app, add_box(app, imap, "routes"))
    with app.app_context():
        [case] = cases(app)
        roles = {a.document.filename: (a.role, a.document.flags) for a in case.attachments}
        assert roles["facture.pdf.exe"][0] == "quarantine"
        assert roles["facture.pdf.exe"][1]["quarantined"] is True
        assert roles["facture.docm"][0] == "quarantine"
        assert roles["facture.pdf"] == ("attachment", {})
        assert len(case.flags["quarantine"]) == 2


def test_message_that_cannot_be_parsed_is_registered_raw_and_flagged(app, imap):
    garbage = bytes(range(1, 256)) * 8
    imap.append("routes", [garbage])
    fetch(app, add_box(app, imap, "routes"))
    with app.app_context():
        [case] = cases(app)
        assert "unparsed" in case.flags
        raw = case.attachments[0].document
        with imap.client("routes") as client:
            client.select_folder("Traités", readonly=True)
            [uid] = client.search(["ALL"])
            on_server = client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
        assert documents.content(raw) == on_server


def test_ingest_interrupted_mid_batch_then_run_again_registers_each_message_once(
    app, imap, monkeypatch
):
    imap.append("routes", [fx.with_pdf(i, size=3000) for i in range(12)])
    box_id = add_box(app, imap, "routes")
    app.config["MISSIVE_MAIL_BATCH"] = 5
    original = mail._message_values
    calls = {"n": 0}

    class Crash(BaseException):
        """Stands for the process being killed."""

    def crash_at_the_eighth(*args, **kwargs):
        # the 8th message: its batch's cases are numbered and flushed, not committed
        calls["n"] += 1
        if calls["n"] == 8:
            raise Crash
        return original(*args, **kwargs)

    monkeypatch.setattr(mail, "_message_values", crash_at_the_eighth)
    with pytest.raises(Crash):
        fetch(app, box_id)
    with app.app_context():
        db.session.rollback()
        assert len(cases(app)) == 5  # the first batch committed, the second was lost whole
    assert imap.count("routes") == 7
    monkeypatch.setattr(mail, "_message_values", original)
    report = fetch(app, box_id)
    app.config["MISSIVE_MAIL_BATCH"] = 25
    assert report.registered == 7
    with app.app_context():
        registered = cases(app)
        subjects = sorted(c.subject for c in registered)
        assert subjects == sorted(f"Demande numéro {i}" for i in range(12))
        assert [c.sequence for c in registered] == list(range(1, 13))
    assert imap.count("routes") == 0 and imap.count("routes", "Traités") == 12


def test_crash_after_commit_before_move_does_not_register_twice(app, imap, monkeypatch):
    imap.append("routes", [fx.simple(), fx.with_pdf(2)])
    box_id = add_box(app, imap, "routes")
    from app.mail import imap as imap_module

    real_move = imap_module.move_messages

    def broken_move(*args, **kwargs):
        raise ConnectionResetError("connexion perdue")

    monkeypatch.setattr(imap_module, "move_messages", broken_move)
    report = fetch(app, box_id)
    assert report.registered == 2 and report.error
    assert imap.count("routes") == 2
    monkeypatch.setattr(imap_module, "move_messages", real_move)
    again = fetch(app, box_id)
    assert (again.registered, again.moved, again.error) == (0, 2, None)
    assert imap.count("routes") == 0
    with app.app_context():
        assert len(cases(app)) == 2


def test_storage_error_on_an_attachment_leaves_the_message_unregistered_in_the_mailbox(app, imap):
    attachment = fx.pdf_bytes("bloque")
    message = fx.simple(attachment=("bloque.pdf", "application/pdf", attachment))
    imap.append("routes", [fx.simple(message_id="<ok@example.org>"), message])
    box_id = add_box(app, imap, "routes")
    digest = hashlib.sha256(attachment).hexdigest()
    from pathlib import Path

    blocker = Path(app.config["MISSIVE_STORAGE"]) / digest[:2] / digest[2:4]
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("un fichier à la place du dossier : l'écriture échoue")
    try:
        report = fetch(app, box_id)
    finally:
        blocker.unlink()
    assert report.registered == 1 and "Stockage" in report.error
    assert imap.count("routes") == 1
    with app.app_context():
        assert [c.sequence for c in cases(app)] == [1]
        assert db.session.query(MailMessage).count() == 1
        assert db.session.get(Mailbox, box_id).last_error
    report = fetch(app, box_id)
    assert (report.registered, report.error) == (1, None)
    with app.app_context():
        assert [c.sequence for c in cases(app)] == [1, 2]
        assert [a.document.filename for a in cases(app)[1].attachments] == [
            "message.eml",
            "bloque.pdf",
        ]


def test_wrong_password_is_reported_on_the_mailbox(app, imap):
    with app.app_context():
        box = mail.add_mailbox(
            name="x",
            host="127.0.0.1",
            port=imap.port,
            username="routes",
            password="mauvais",
            use_tls=False,
        )
        report = mail.fetch_mailbox(box)
        assert "AUTHENTICATIONFAILED" in report.error or "failed" in report.error.lower()
        assert db.session.get(Mailbox, box.id).last_error
