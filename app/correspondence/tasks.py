"""Worker jobs of the registry: distribution of new items, OCR of scans."""

from __future__ import annotations

from app.core.worker import job, periodic


@job(retries=5, retry_delay=60)
def distribute_job(case_ids: list[int]) -> None:
    """Start the circuits of registered items (each at most once)."""
    from app.correspondence.services import distribute_case

    for case_id in case_ids:
        distribute_case(case_id)


@periodic("correspondence_distribute_pending", minute="*/5")
def distribute_pending() -> int:
    """Safety net: start the circuits of items registered without one."""
    from app.correspondence.services import distribute_pending as run

    return run()


@periodic("correspondence_reply_outcomes", minute="*/5")
def reply_outcomes() -> int:
    """Safety net: tell the cases whose reply folder ended while nobody delivered it."""
    from app.correspondence.replies import deliver_pending_outcomes

    return deliver_pending_outcomes()


@job(retries=3, retry_delay=120)
def ocr_job(case_id: int, document_id: int) -> None:
    """Add a searchable text layer to a scan and index its text."""
    from app.correspondence.paper import ocr_case_document

    ocr_case_document(case_id, document_id)


@job(retries=5, retry_delay=300)
def confirmation_job(case_id: int) -> None:
    """E-mail the requester of a web form the number of their request."""
    from app.core.audit import record
    from app.core.extensions import db
    from app.correspondence.models import Correspondence
    from app.correspondence.webforms import confirmation_text
    from app.mail.outgoing import send_mail

    case = db.session.get(Correspondence, case_id)
    address = (case.data or {}).get("form", {}).get("email") if case else None
    if not address:
        return
    subject, body = confirmation_text(case)
    message_id = send_mail(address, subject, body)
    record(
        "correspondence.confirmation_sent",
        object_type="correspondence",
        object_id=case.id,
        data={"to": address, "message_id": message_id},
    )
    db.session.commit()
