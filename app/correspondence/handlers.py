"""Service-task handlers of the intake circuits (they change the case, never the engine).

Each handler that changes what the inbox shows about the case (type, service,
délégation) returns the case variables again, so the next tasks carry them.
"""

from __future__ import annotations

import re
import unicodedata

from app.core.extensions import db
from app.correspondence import replies, services
from app.correspondence.models import Correspondence
from app.engine.handlers import HandlerContext, completion_hook, service_handler
from app.engine.sandbox import register_helper
from app.inbox.services import register_task_documents

# The reply drafted on a case goes into a parapheur when « Rédiger la réponse » is
# completed (from the inbox, the API or any page), in the same transaction.
completion_hook("redaction_reponse")(replies.submit_reply)
register_task_documents(replies.case_documents_of_reply_task)


def _case(context: HandlerContext) -> Correspondence:
    case = db.session.get(Correspondence, context.data.get("correspondence_id"))
    if case is None:
        raise LookupError(f"courrier {context.data.get('correspondence_id')} introuvable")
    return case


@service_handler("correspondence_qualify")
def qualify(context: HandlerContext) -> dict:
    """Write the mail office's qualification (type, subject, confidentiality) on the case."""
    case = _case(context)
    services.qualify_case(
        case,
        None,
        type_code=context.data.get("type_code") or None,
        subject=context.data.get("subject") or None,
        confidentiality=context.data.get("confidentiality") or None,
    )
    return {
        **services.case_variables(case),
        "type_code": case.case_type.code if case.case_type else "",
    }


@service_handler("correspondence_distribute")
def distribute(context: HandlerContext) -> dict:
    """Give the case to the service chosen by the routing table, with its copies."""
    case = _case(context)
    group = context.data.get("service_group") or "courrier-central"
    copies = context.data.get("copy_groups") or []
    if isinstance(copies, str):
        copies = [c.strip() for c in copies.split(",") if c.strip()]
    services.assign_service(case, group, None, copies=copies)
    return {**services.case_variables(case), "service_group": case.service_group}


@service_handler("correspondence_redirect")
def redirect(context: HandlerContext) -> dict:
    """Send the case on to the service named in the processing form, with the reason."""
    case = _case(context)
    target = context.data.get("redirect_to")
    services.redirect_case(case, target, context.data.get("reason") or "", None)
    return {
        **services.case_variables(case),
        "service_group": case.service_group,
        "action": None,
        "redirect_to": None,
    }


@service_handler("correspondence_send_answer")
def send_answer(context: HandlerContext) -> dict:
    """The reply folder is signed: record the signed letter as the case's answer and send
    it (e-mail or print queue), in one transaction; the case is answered."""
    case = _case(context)
    folder_id = context.data.get("reply_folder_id")
    if not isinstance(folder_id, int):
        raise ValueError("la variable reply_folder_id (parapheur de la réponse) est absente")
    replies.record_answer(case, folder_id)
    row = replies.send_answer(case)
    return {
        "answer_id": row.answer_id,
        "answer_chrono": row.answer.chrono,
        "answer_delivery": str(row.delivery),
    }


@service_handler("correspondence_close")
def close(context: HandlerContext) -> dict:
    """Close the case at the end of its circuit."""
    case = _case(context)
    services.close_case(case, None, outcome=context.data.get("action") or "")
    return {}


def _words(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return " " + re.sub(r"[\W_]+", " ", plain).strip() + " "


def mentions(text: str, *keywords: str) -> bool:
    """True when ``text`` contains one of the keywords (whole words, plural allowed; case,
    accents and punctuation ignored): the keyword test of routing tables, written
    ``mentions(?, "route", "appel d offres")`` in a cell."""
    folded = _words(text)
    for keyword in keywords:
        words = _words(keyword).split()
        if words and re.search(
            r" " + r" ".join(re.escape(w) for w in words) + r"(?:s|x)? ", folded
        ):
            return True
    return False


register_helper("mentions", mentions)
