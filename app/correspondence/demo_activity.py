"""The demo office at work: a few dozen cases on every channel, driven through the real
services and circuits by the demo agents.

Paper letters (a generated scan), e-mails taken from two functional mailboxes, public web
forms, internal notes and business-application items arrive from the demo contacts, some
days ago or today; the agents then qualify, claim, answer or leave them, so that every
inbox, the registry and the dashboard have something to show: acknowledged items, items
answered on time, overdue ones (their reminder and escalation fired), job applications
routed to the délégations. Each case is registered once (the audit trail remembers the
demo key), so loading again adds nothing.
"""

from __future__ import annotations

import io
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import select
from werkzeug.datastructures import FileStorage, MultiDict

from app.auth.models import Group, User
from app.contacts.models import Contact, ContactKind, ContactStatus
from app.core import audit
from app.core.audit import AuditEvent
from app.core.db import utcnow
from app.core.errors import MissiveError
from app.core.extensions import db
from app.correspondence import services, webforms
from app.correspondence.models import Channel, Correspondence, Direction
from app.correspondence.numbering import PARIS
from app.engine.models import HumanTask, TaskStatus

log = logging.getLogger(__name__)

DEMO_EVENT = "demo.case"
DOMAIN = "departement.test"
# Who works each basket in the demo (else: the first member of the group).
AGENTS = {
    "courrier-central": "claire.martin",
    "routes": "julie.perrin",
    "rh-recrutement": "elodie.roussel",
    "delegation-nantes": "marie.lefebvre",
    "delegation-saint-nazaire": "morgane.le-roux",
    "comptabilite": "mathilde.henry",
    "autonomie": "thomas.leroy",
    "colleges": "david.lambert",
    "culture-sports": "gael.riviere",
    "environnement": "erwan.kerjean",
    "enfance-famille": "emilie.blanchard",
    "insertion-rsa": "yannick.le-bihan",
    "transports-scolaires": "antoine.roux",
    "signataires-president": "michel.le-goff",
    "dgs": "helene.fournier",
}
MAILBOXES = {
    "accueil": ("Accueil du Département (démonstration)", None),
    "routes": ("Routes et mobilités (démonstration)", "routes"),
}


@dataclass
class DemoCase:
    """One scripted item: how it arrives, from whom, and how far the agents take it."""

    key: str
    channel: Channel
    subject: str
    body: str
    days_ago: int = 0
    type_code: str | None = None
    sender: str = "person"  # person | organisation | <postal code> (a person living there)
    service_group: str | None = None
    mailbox: str = "accueil"
    form: str | None = None
    author: str | None = None  # internal notes
    amount: float | None = None
    steps: list[str] = field(default_factory=list)


CASES = [
    # --- paper, scanned by the mail office -------------------------------------------------
    DemoCase(
        "papier-nid-de-poule",
        Channel.PAPER,
        "Nid-de-poule dangereux sur la RD 59 à Vertou",
        "Un nid-de-poule profond s'est formé sur la RD 59, à la sortie de Vertou. "
        "Deux voitures y ont déjà crevé un pneu.",
        days_ago=2,
        type_code="reclamation",
        steps=["qualify"],
    ),
    DemoCase(
        "papier-transport",
        Channel.PAPER,
        "Inscription de mon fils au transport scolaire (ligne 312)",
        "Mon fils entre en sixième au collège de Machecoul ; comment l'inscrire au car ?",
        days_ago=1,
        type_code="demande_information",
        steps=["claim"],
    ),
    DemoCase(
        "papier-apa",
        Channel.PAPER,
        "Dossier APA de ma mère, Mme Rousseau",
        "Le dossier d'allocation personnalisée d'autonomie déposé en mai est sans réponse.",
        days_ago=35,
        type_code="demande_information",
        steps=["qualify"],
    ),
    DemoCase(
        "papier-subvention",
        Channel.PAPER,
        "Demande de subvention pour le festival de musique de Clisson",
        "Notre association sollicite une subvention de 4 000 € pour l'édition 2027.",
        days_ago=6,
        type_code="demande_subvention",
        sender="organisation",
        steps=["qualify", "reply"],
    ),
    DemoCase(
        "papier-invitation",
        Channel.PAPER,
        "Invitation à l'inauguration de la médiathèque de Rezé",
        "Le maire a le plaisir d'inviter le Président à l'inauguration, le 12 à 18 h.",
        days_ago=4,
        type_code="invitation",
        sender="organisation",
        steps=["qualify", "no_reply"],
    ),
    DemoCase(
        "papier-college",
        Channel.PAPER,
        "Demi-pension au collège Jules Verne : facture contestée",
        "La facture de demi-pension du premier trimestre compte des jours d'absence.",
        days_ago=25,
        type_code="reclamation",
        steps=["qualify", "claim"],
    ),
    DemoCase(
        "papier-candidature",
        Channel.PAPER,
        "Candidature au poste d'agent d'exploitation des routes",
        "Veuillez trouver ci-joint ma candidature et mon curriculum vitae.",
        days_ago=3,
        type_code="candidature",
        sender="44600",
    ),
    # --- e-mails of the functional mailboxes -------------------------------------------------
    DemoCase(
        "courriel-rsa",
        Channel.EMAIL,
        "Question sur le versement du RSA",
        "Bonjour, mon RSA n'a pas été versé ce mois-ci. Pouvez-vous me dire pourquoi ?",
        days_ago=0,
    ),
    DemoCase(
        "courriel-chaussee",
        Channel.EMAIL,
        "Chaussée déformée route de Clisson",
        "La chaussée est très déformée route de Clisson, au niveau du pont de la Sèvre.",
        days_ago=3,
        steps=["qualify:reclamation", "reply"],
    ),
    DemoCase(
        "courriel-assistante-maternelle",
        Channel.EMAIL,
        "Demande d'agrément d'assistante maternelle",
        "Je souhaite devenir assistante maternelle : quelles sont les démarches ?",
        days_ago=3,
        steps=["qualify:demande_information"],
    ),
    DemoCase(
        "courriel-littoral",
        Channel.EMAIL,
        "Sentier du littoral fermé à Piriac",
        "Le sentier du littoral est fermé depuis la tempête ; quand rouvrira-t-il ?",
        days_ago=30,
        steps=["qualify:demande_information"],
    ),
    DemoCase(
        "courriel-archives",
        Channel.EMAIL,
        "Horaires d'ouverture des archives départementales",
        "Bonjour, les archives sont-elles ouvertes le samedi matin ?",
        days_ago=1,
        steps=["qualify:demande_information", "reply"],
    ),
    DemoCase(
        "courriel-deneigement",
        Channel.EMAIL,
        "Déneigement de la RD 178 à Nort-sur-Erdre",
        "La RD 178 n'était pas déneigée ce matin à 7 h.",
        days_ago=2,
        mailbox="routes",
    ),
    DemoCase(
        "courriel-rond-point",
        Channel.EMAIL,
        "Éclairage du rond-point de la Chantrerie en panne",
        "L'éclairage du rond-point est éteint depuis une semaine.",
        days_ago=12,
        mailbox="routes",
        steps=["claim"],
    ),
    # --- public web forms ----------------------------------------------------------------------
    DemoCase(
        "web-renovation",
        Channel.WEB,
        "Aide pour la rénovation énergétique",
        "Existe-t-il une aide du Département pour isoler une maison ancienne ?",
        form="demande_information",
    ),
    DemoCase(
        "web-chantier",
        Channel.WEB,
        "Bruit du chantier de la déviation de la route",
        "Le chantier de la déviation commence à 5 h du matin, c'est insupportable.",
        form="reclamation",
        steps=["qualify", "reply"],
    ),
    DemoCase(
        "web-cmi",
        Channel.WEB,
        "Carte mobilité inclusion pour une personne âgée",
        "Ma grand-mère de 92 ans peut-elle obtenir une carte mobilité inclusion ?",
        form="demande_information",
        steps=["qualify", "claim"],
    ),
    DemoCase(
        "web-candidature-nantes-1",
        Channel.WEB,
        "Assistante sociale",
        "Diplômée d'État, je souhaite rejoindre vos équipes de polyvalence de secteur.",
        form="candidature_spontanee",
        sender="44000",
        steps=["examine:interview", "claim"],
    ),
    DemoCase(
        "web-candidature-nantes-2",
        Channel.WEB,
        "Agent d'accueil",
        "Je vous propose ma candidature pour l'accueil de la délégation.",
        form="candidature_spontanee",
        sender="44300",
    ),
    DemoCase(
        "web-candidature-saint-nazaire",
        Channel.WEB,
        "Technicien routes",
        "Titulaire d'un BTS travaux publics, je cherche un poste en Presqu'île.",
        form="candidature_spontanee",
        sender="44600",
        steps=["examine:kept_on_file", "answer"],
    ),
    DemoCase(
        "web-candidature-vignoble",
        Channel.WEB,
        "Éducatrice de jeunes enfants",
        "Je souhaite travailler en protection maternelle et infantile.",
        form="candidature_spontanee",
        sender="44190",
    ),
    DemoCase(
        "web-candidature-ancenis",
        Channel.WEB,
        "Agent d'entretien des collèges",
        "Je candidate pour un poste d'agent d'entretien dans un collège.",
        form="candidature_spontanee",
        sender="44150",
    ),
    DemoCase(
        "web-candidature-rennes",
        Channel.WEB,
        "Juriste marchés publics",
        "Juriste depuis six ans, je souhaite rejoindre la commande publique.",
        form="candidature_spontanee",
        sender="35000",
        steps=["claim"],
    ),
    # --- internal notes --------------------------------------------------------------------------
    DemoCase(
        "note-rd723",
        Channel.INTERNAL,
        "Point d'étape sur les travaux de la RD 723 pour la séance du 15",
        "Merci de me transmettre un point d'avancement chiffré avant jeudi.",
        service_group="routes",
        author="jean.morel",
    ),
    DemoCase(
        "note-recrutement",
        Channel.INTERNAL,
        "Plan de recrutement des assistants sociaux 2027",
        "Les postes vacants en délégation doivent être publiés avant la fin du mois.",
        service_group="rh-recrutement",
        author="nathalie.guerin",
    ),
    DemoCase(
        "note-mandats",
        Channel.INTERNAL,
        "Clôture de l'exercice : mandats en attente",
        "Merci de solder les mandats en attente avant le 15 décembre.",
        service_group="comptabilite",
        author="catherine.faure",
        steps=["no_reply"],
    ),
    # --- business applications (API) -------------------------------------------------------------
    DemoCase(
        "api-facture-espaces-verts",
        Channel.API,
        "Facture F-2026-0412 — entretien des espaces verts du collège de Rezé",
        "Facture transmise par la plateforme de dématérialisation.",
        days_ago=4,
        type_code="facture",
        sender="organisation",
        service_group="comptabilite",
        amount=12480.0,
    ),
    DemoCase(
        "api-facture-travaux",
        Channel.API,
        "Facture F-2026-0398 — réfection de la toiture du collège de Savenay",
        "Facture transmise par la plateforme de dématérialisation.",
        days_ago=20,
        type_code="facture",
        sender="organisation",
        service_group="comptabilite",
        amount=86500.0,
        steps=["claim"],
    ),
    DemoCase(
        "api-facture-fournitures",
        Channel.API,
        "Facture F-2026-0420 — fournitures de bureau",
        "Facture transmise par la plateforme de dématérialisation.",
        days_ago=5,
        type_code="facture",
        sender="organisation",
        service_group="comptabilite",
        amount=3240.5,
        steps=["no_reply"],
    ),
    DemoCase(
        "api-candidature",
        Channel.API,
        "Candidature : chargé de mission biodiversité",
        "Candidature reçue par le site emploi territorial.",
        days_ago=1,
        type_code="candidature",
        sender="35000",
    ),
    DemoCase(
        "api-convention",
        Channel.API,
        "Convention de déneigement 2026-2027 avec la commune",
        "Projet de convention transmis par le logiciel de la mairie.",
        days_ago=8,
        type_code="demande_information",
        sender="organisation",
        steps=["qualify", "reply"],
    ),
]
FORM_ANSWERS = {
    "visa": {"decision": "approve", "comment": "Vu."},
    "signature": {"decision": "sign"},
    "redaction_reponse": {
        "response_text": "Madame, Monsieur,\n\nNous avons bien pris en compte votre demande "
        "et y donnons la suite suivante…"
    },
}


def load() -> dict[str, int]:
    """Register the cases not registered yet and take each one to its stage."""
    done = _done_keys()
    todo = [case for case in CASES if case.key not in done]
    if not todo or _agent("claire.martin") is None:
        return {"demo_cases": 0}
    rng = random.Random(44)  # noqa: S311 (demo data, not secrets)
    senders = _Senders(rng)
    added = 0
    for item in todo:
        try:
            case_id = _register(item, senders)
        except MissiveError as error:  # a demo item refused: say so, load the others
            db.session.rollback()
            log.warning("demo case %s not registered: %s", item.key, error.detail)
            continue
        audit.record(
            DEMO_EVENT, object_type="correspondence", object_id=case_id, data={"key": item.key}
        )
        db.session.commit()
        _advance(case_id, item)
        added += 1
    _print_paper_acknowledgements()
    _fire_due_timers()
    return {"demo_cases": added}


def _done_keys() -> set[str]:
    events = db.session.execute(select(AuditEvent.data).where(AuditEvent.action == DEMO_EVENT))
    return {(data or {}).get("key") for (data,) in events}


def _agent(login: str) -> User | None:
    return db.session.execute(select(User).where(User.email == f"{login}@{DOMAIN}")).scalar()


def _received(days_ago: int) -> datetime:
    """Some days ago at 10:00 Paris time (now for today's items)."""
    if days_ago <= 0:
        return utcnow()
    day = (utcnow() - timedelta(days=days_ago)).astimezone(PARIS).date()
    return datetime.combine(day, time(10, 0), PARIS)


@dataclass
class Newcomer:
    """Someone who is not in the contact base yet (intake records them)."""

    civility: str
    first_name: str
    last_name: str
    email: str
    address_lines: str
    postal_code: str
    city: str

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def details(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v}


# Candidates from outside Loire-Atlantique (the demo contacts all live in the département).
NEWCOMERS = {
    "35000": [
        Newcomer(
            "Mme",
            "Gwénola",
            "Le Guennec",
            "gwenola.le-guennec@example.org",
            "14 rue de Saint-Malo",
            "35000",
            "Rennes",
        ),
        Newcomer(
            "M.",
            "Yannick",
            "Briand",
            "yannick.briand@example.org",
            "3 place des Lices",
            "35000",
            "Rennes",
        ),
    ]
}


class _Senders:
    """Demo contacts to write from, each used once."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[int] = set()
        self.newcomers = {code: list(people) for code, people in NEWCOMERS.items()}

    def pick(self, wanted: str) -> Contact | Newcomer | None:
        if self.newcomers.get(wanted):
            return self.newcomers[wanted].pop(0)
        stmt = select(Contact).where(
            Contact.status == ContactStatus.ACTIVE, Contact.email.is_not(None)
        )
        if wanted == "organisation":
            stmt = stmt.where(Contact.kind == ContactKind.ORGANISATION)
        else:
            stmt = stmt.where(Contact.kind == ContactKind.PERSON, Contact.last_name.is_not(None))
            if wanted != "person":
                stmt = stmt.where(Contact.postal_code == wanted)
        candidates = [
            c
            for c in db.session.execute(stmt.order_by(Contact.id).limit(60)).scalars()
            if c.id not in self.used
        ]
        if not candidates:
            return self.pick("person") if wanted not in ("person", "organisation") else None
        contact = self.rng.choice(candidates)
        self.used.add(contact.id)
        return contact


def _register(item: DemoCase, senders: _Senders) -> int:
    if item.channel == Channel.WEB:
        return _submit_form(item, senders)
    if item.channel == Channel.EMAIL:
        return _receive_email(item, senders)
    sender = senders.pick(item.sender) if item.channel != Channel.INTERNAL else None
    if isinstance(sender, Newcomer):
        sender = services.sender_from_details(sender.details(), None)
    if item.channel == Channel.PAPER:
        [case] = services.register_paper(
            [(f"{item.key}.pdf", scanned_letter(item, sender))],
            _agent("claire.martin"),
            received_at=_received(item.days_ago),
            type_code=item.type_code,
            subject=item.subject,
            sender=sender,
            summary=item.body,
        )
        return case.id
    data = {"amount": item.amount} if item.amount is not None else {}
    if item.channel == Channel.API:
        data["external_reference"] = f"DEMO-{item.key.upper()}"
    author = _agent(item.author) if item.author else None
    case = services.register_case(
        services.Intake(
            channel=item.channel,
            direction=Direction.INTERNAL
            if item.channel == Channel.INTERNAL
            else Direction.INCOMING,
            subject=item.subject,
            summary=item.body,
            received_at=_received(item.days_ago) if item.channel == Channel.API else None,
            type_code=item.type_code,
            sender=sender,
            service_group=item.service_group,
            data={**data, **({"author": author.email} if author else {})},
            files=[
                services.IncomingFile(
                    f"{item.key}.pdf", "application/pdf", typed_letter(item, sender), "original"
                )
            ]
            if item.channel == Channel.API
            else [],
        ),
        author,
    )
    return case.id


def _submit_form(item: DemoCase, senders: _Senders) -> int:
    sender = senders.pick(item.sender)
    answers = {
        "civility": sender.civility,
        "first_name": sender.first_name,
        "last_name": sender.last_name,
        "email": sender.email,
        "address_lines": sender.address_lines,
        "postal_code": sender.postal_code,
        "city": sender.city,
        "message": item.body,
    }
    answers = {k: v for k, v in answers.items() if v}
    uploads = MultiDict()
    if item.form == "candidature_spontanee":
        answers["position"] = item.subject
        uploads.add(
            "cv",
            FileStorage(
                io.BytesIO(typed_letter(item, sender)),
                filename=f"cv-{(sender.last_name or 'candidat').lower()}.pdf",
                content_type="application/pdf",
            ),
        )
    else:
        answers["subject"] = item.subject
    address = f"192.0.2.{CASES.index(item) + 1}"  # documentation addresses (RFC 5737)
    case = webforms.submit(item.form, MultiDict(answers), uploads, address)
    return case.id


def _receive_email(item: DemoCase, senders: _Senders) -> int:
    from app.mail import imap
    from app.mail import services as mail

    sender = senders.pick(item.sender)
    mailbox = _mailbox(item.mailbox)
    received = _received(item.days_ago)
    message = EmailMessage()
    message["From"] = f"{sender.first_name} {sender.last_name} <{sender.email}>"
    message["To"] = f"{item.mailbox}@{DOMAIN}"
    message["Subject"] = item.subject
    message["Date"] = format_datetime(received - timedelta(minutes=7))
    message["Message-ID"] = f"<demo-{item.key}@{DOMAIN}>"
    message.set_content(f"Bonjour,\n\n{item.body}\n\nCordialement,\n{sender.display_name}\n")
    uid = CASES.index(item) + 1
    _outcome, case_id = mail.ingest_message(
        mailbox, mailbox.folder, 1, imap.Fetched(uid, message.as_bytes(), received)
    )
    db.session.commit()
    services.distribute_case(case_id)
    return case_id


def _mailbox(key: str):
    from app.mail import services as mail
    from app.mail.models import Mailbox

    name, group = MAILBOXES[key]
    mailbox = db.session.execute(select(Mailbox).where(Mailbox.name == name)).scalar()
    if mailbox is None:
        mailbox = mail.add_mailbox(
            name=name,
            host=f"imap.{DOMAIN}",
            port=993,
            username=key,
            password="demo-non-relevee",  # noqa: S106 (never polled: the box is inactive)
            group_name=group,
        )
        mail.update_mailbox(mailbox, None, active=False)
    return mailbox


# --- the agents at work ------------------------------------------------------------------------


def _advance(case_id: int, item: DemoCase) -> None:
    """Take the case through its scripted steps as the demo agents; stop quietly at the
    first step the circuit does not offer (the item stays where it is)."""
    for step in item.steps:
        name, _, arg = step.partition(":")
        try:
            if name == "qualify":
                _qualify(case_id, arg or item.type_code)
            elif name == "claim":
                _claim(case_id)
            elif name == "reply":
                _complete(case_id, "traitement", {"action": "reply", "comment": "Réponse."})
                _complete(case_id, "redaction_reponse", FORM_ANSWERS["redaction_reponse"])
                _sign_reply(case_id)
            elif name == "no_reply":
                _complete(
                    case_id, "traitement", {"action": "no_reply", "comment": "Classé : pour suite."}
                )
            elif name == "examine":
                _complete(case_id, "examen_candidature", {"decision": arg, "comment": ""})
            elif name == "answer":
                _complete(case_id, "redaction_reponse", FORM_ANSWERS["redaction_reponse"])
        except (MissiveError, LookupError) as error:
            db.session.rollback()
            log.warning("demo case %s stops before %s: %s", item.key, step, error)
            return


def _open_task(case_id: int, form_key: str) -> HumanTask:
    case = db.session.get(Correspondence, case_id)
    task = db.session.execute(
        select(HumanTask).where(
            HumanTask.instance_id == case.process_instance_id,
            HumanTask.status == TaskStatus.OPEN,
            HumanTask.form_key == form_key,
        )
    ).scalar()
    if task is None:
        raise LookupError(f"pas de tâche « {form_key} » ouverte")
    return task


def _worker_for(task: HumanTask) -> User:
    if task.assignee is not None:
        return task.assignee
    for email in task.candidate_users or []:
        named = db.session.execute(select(User).where(User.email == email)).scalar()
        if named is not None:
            return named
    for group_name in task.candidate_groups or []:
        preferred = _agent(AGENTS[group_name]) if group_name in AGENTS else None
        if preferred is not None:
            return preferred
        group = db.session.execute(select(Group).where(Group.name == group_name)).scalar()
        if group is not None and group.members:
            return group.members[0]
    raise LookupError(f"personne pour la tâche « {task.name} »")


CLAIMABLE = ("qualification", "traitement", "examen_candidature", "redaction_reponse")


def _claim(case_id: int) -> None:
    """The agent takes the item's current step (it moves to their « À traiter »)."""
    from app.engine.services import claim_task

    for form_key in CLAIMABLE:
        try:
            task = _open_task(case_id, form_key)
        except LookupError:
            continue
        if task.assignee_id is None:
            claim_task(task.id, _worker_for(task))
        return
    raise LookupError("aucune étape à prendre")


def _complete(case_id: int, form_key: str, data: dict | None) -> None:
    from app.engine.services import claim_task, complete_task

    if form_key == "envoi":
        data = {"sent_by": "post", "sent_on": utcnow().astimezone(PARIS).date().isoformat()}
    task = _open_task(case_id, form_key)
    agent = _worker_for(task)
    if task.assignee_id is None:
        claim_task(task.id, agent)
    complete_task(task.id, data or {}, agent)


def _sign_reply(case_id: int) -> None:
    """The reply went into a parapheur: the DGS gives the visa, the signer signs; the
    signed answer then leaves by itself (e-mail or the print batch)."""
    from app.correspondence.replies import reply_folder
    from app.engine.services import complete_task
    from app.parapheur.services import open_tasks

    for form_key in ("visa", "signature"):
        folder = reply_folder(db.session.get(Correspondence, case_id))
        if folder is None:
            raise LookupError("pas de parapheur pour la réponse")
        task = next((t for t in open_tasks(folder) if t.form_key == form_key), None)
        if task is None:
            raise LookupError(f"pas d'étape « {form_key} » dans le parapheur")
        complete_task(task.id, FORM_ANSWERS[form_key], _worker_for(task))


def _qualify(case_id: int, type_code: str | None) -> None:
    case = db.session.get(Correspondence, case_id)
    _complete(
        case_id,
        "qualification",
        {
            "type_code": type_code or "autre",
            "subject": case.subject,
            "confidentiality": "normal",
        },
    )


def _print_paper_acknowledgements() -> None:
    from app.deadlines.services import print_acknowledgements

    try:
        print_acknowledgements(_agent("claire.martin"))
    except MissiveError as error:
        db.session.rollback()
        log.warning("demo: paper acknowledgements not printed: %s", error.detail)


def _fire_due_timers() -> None:
    """Reminders and escalations of the overdue items fire now (the worker would)."""
    from app.engine.services import fire_due_timers

    fire_due_timers()


# --- generated letters ----------------------------------------------------------------------


def _letter_lines(item: DemoCase, sender: Contact | Newcomer | None) -> list[str]:
    who = sender.display_name if sender else "Un usager"
    address = (sender.address_lines or "").splitlines() if sender else []
    town = f"{sender.postal_code or ''} {sender.city or ''}".strip() if sender else ""
    day = _received(item.days_ago + 2).astimezone(PARIS).strftime("%d/%m/%Y")
    lines = [who, *address, town, "", f"{town.split(' ', 1)[-1] or 'Nantes'}, le {day}", ""]
    lines += ["Monsieur le Président du Conseil départemental", "Hôtel du Département"]
    lines += ["3 quai Ceineray — 44041 Nantes Cedex 1", "", f"Objet : {item.subject}", ""]
    lines += ["Monsieur le Président,", ""]
    words, line = item.body.split(), ""
    for word in words:
        if len(line) + len(word) > 62:
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip()
    lines += [line, "", "Je vous prie d'agréer, Monsieur le Président, mes salutations."]
    return [*lines, "", who]


def typed_letter(item: DemoCase, sender: Contact | Newcomer | None) -> bytes:
    """A clean one-page PDF letter (what an application or a candidate sends)."""
    return _page_pdf(_letter_lines(item, sender), scanned=False)


def scanned_letter(item: DemoCase, sender: Contact | Newcomer | None) -> bytes:
    """A one-page letter that looks scanned: grey paper, a slight tilt, speckles."""
    return _page_pdf(_letter_lines(item, sender), scanned=True)


def _page_pdf(lines: list[str], *, scanned: bool) -> bytes:
    import img2pdf
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    width, height = 1240, 1754  # A4 at 150 dpi
    page = Image.new("L", (width, height), 244 if scanned else 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=30)
    y = 140
    for text in lines:
        draw.text((130, y), text, fill=35, font=font)
        y += 44
    if scanned:
        rng = random.Random(sum(map(len, lines)))  # noqa: S311 (speckles)
        for _ in range(900):
            x, y = rng.randrange(width), rng.randrange(height)
            draw.point((x, y), fill=rng.randrange(120, 200))
        page = page.rotate(rng.uniform(-0.8, 0.8), fillcolor=236, resample=Image.BICUBIC)
        page = page.filter(ImageFilter.GaussianBlur(0.6))
    out = io.BytesIO()
    page.save(out, format="PNG")
    layout = img2pdf.get_layout_fun((img2pdf.mm_to_pt(210), img2pdf.mm_to_pt(297)))
    return img2pdf.convert(out.getvalue(), layout_fun=layout)
