"""Service tasks of the circuits: acknowledge, remind, escalate; and the expression helper
``working_days_after(date, n)`` for diagrams."""

from __future__ import annotations

from datetime import date, datetime

from app.core.extensions import db
from app.correspondence.models import Correspondence
from app.deadlines import services
from app.deadlines.calendar import working_calendar
from app.engine.handlers import HandlerContext, service_handler
from app.engine.sandbox import register_helper


def _case(context: HandlerContext) -> Correspondence:
    case = db.session.get(Correspondence, context.data.get("correspondence_id"))
    if case is None:
        raise LookupError(f"courrier {context.data.get('correspondence_id')} introuvable")
    return case


@service_handler("send_acknowledgement")
def send_acknowledgement(context: HandlerContext) -> dict:
    """Issue the accusé de réception of the case (e-mailed or put in the paper batch); a
    missing mention flags the case for a person instead of stopping the circuit."""
    case = _case(context)
    clock = case.clock
    if clock is None:  # an outgoing letter
        return {"ack_status": "not_required"}
    if clock.acknowledge and clock.ack_status in ("pending", "failed"):
        services.try_issue_acknowledgement(case, None)
    return {"ack_status": clock.ack_status}


@service_handler("deadline_dates")
def deadline_dates(context: HandlerContext) -> dict:
    """Copy the case's current due date and reminder date into the circuit's data (the
    timers read them; a transfer or a new type moves them)."""
    return services.timer_data(_case(context))


@service_handler("deadline_remind")
def remind(context: HandlerContext) -> dict:
    """Remind the service that the answer is due soon."""
    return {"reminded_to": ", ".join(services.remind(_case(context)))}


@service_handler("deadline_escalate")
def escalate(context: HandlerContext) -> dict:
    """The answer is overdue: the head of service gets a follow-up task (the service's
    group when nobody heads it)."""
    case = _case(context)
    head = services.escalate(case)
    return {
        "escalation_assignee": head.email if head else "",
        "escalation_group": "" if head else (case.service_group or "courrier-central"),
    }


def working_days_after(start: date | datetime | str, count: int) -> date:
    """The ``count``-th working day after ``start`` (holidays and closures skipped)."""
    if isinstance(start, str):
        start = datetime.fromisoformat(start.replace("Z", "+00:00"))
    if isinstance(start, datetime):
        from app.deadlines.calendar import local_day

        start = local_day(start) if start.tzinfo else start.date()
    return working_calendar().add_working_days(start, int(count))


register_helper("working_days_after", working_days_after)
