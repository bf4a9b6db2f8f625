"""主动治理: a case the office opens itself from a 一类事 (tickets/clusters.py `open_governance`), and its answer sent to
the citizens of the cases it was opened for (`notify_linked`, the case page's 「答复告知关联群众」).

- The task is a case of channel `proactive` whose "citizen" is the window itself (no phone number: nobody is texted
  for it, no survey round opens for it, no first contact is owed), handled like any case: transferred to a
  department with a deadline, replied to, approved (or resolved) by the office. Its `cluster_id` is the cluster's.
- When it is opened, the cluster's cases of the moving window are linked to it (`governance_id`, an internal
  `governance_link` event on each, `link`). Cases that join the cluster while the task is open are linked when its
  answer is sent; those filed after it closed are not (they report the problem again).
- Once the task is closed, `notify_linked` records a public `governance_answer` on every linked case, with the
  answer (the citizen's lookup page shows that the problem was fixed at the root), and the SMS room texts each of
  their numbers once (the event's data says which cases text: the first case of each number). It is taken once: the
  row claim makes a second, concurrent one a 409, and afterwards its precondition refuses it.
- Linked cases stay cases of their own: open ones are handled and closed as usual.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import offices
from ..models import Channel, Event, Ticket
from .engine import record
from .registry import action, event_kind

PROACTIVE = Channel.proactive.value
NOTIFY = "notify_linked"


def is_proactive(ticket: Ticket) -> bool:
    return ticket.channel == PROACTIVE


def _of_window(governance: Ticket):
    """WHERE clause: the case is its task's window's (owned by it or a window below it). A case of the cluster that
    was referred to a window above, or elsewhere, is that window's now: the task neither links nor tells it."""
    return offices.ticket_in_subtree(governance.office_id)


def link(session, governance: Ticket, actor, now: datetime, *, start: datetime, end: datetime) -> list[Ticket]:
    """Link to the task `governance` the cases of its cluster filed from `start` to `end` that no task links yet and
    that are its window's (an internal `governance_link` event on each); the cases linked now."""
    cases = list(session.scalars(
        sa.select(Ticket).where(Ticket.cluster_id == governance.cluster_id, Ticket.channel != PROACTIVE,
                                _of_window(governance),
                                Ticket.governance_id.is_(None), Ticket.created_at >= start, Ticket.created_at <= end)
        .order_by(Ticket.id)))
    for case in cases:
        case.governance_id = governance.id
        record(session, case, actor, LINKED.name, now, from_status=case.status, note=governance.tracking_no,
               data={"governance_id": governance.id, "governance": governance.tracking_no})
    return cases


def linked_cases(session, governance: Ticket) -> list[Ticket]:
    """The cases linked to the task that are still its window's."""
    return list(session.scalars(sa.select(Ticket).where(Ticket.governance_id == governance.id, _of_window(governance))
                                .order_by(Ticket.id)))


def notified(session, governance: Ticket) -> bool:
    """Whether the task's answer was sent to the linked citizens."""
    return session.scalar(sa.select(Event.id).where(Event.ticket_id == governance.id, Event.action == NOTIFY)
                          .limit(1)) is not None


def _late_joiners(governance: Ticket):
    """The cluster's cases filed while the task was open that no task links yet (`link` takes them in)."""
    return sa.and_(Ticket.cluster_id == governance.cluster_id, Ticket.channel != PROACTIVE,
                   Ticket.governance_id.is_(None), Ticket.created_at >= governance.created_at,
                   Ticket.created_at <= (governance.closed_at or governance.created_at))


def _may_notify(session, ticket, now):
    if not is_proactive(ticket):
        return _l("Only a proactive task (主动治理) has linked cases to tell its answer.")
    if notified(session, ticket):
        return _l("The answer was already sent to the citizens of the linked cases.")
    linked = session.scalar(sa.select(Ticket.id).where(sa.or_(Ticket.governance_id == ticket.id, _late_joiners(ticket)),
                                                       _of_window(ticket)).limit(1))
    if linked is None:
        return _l("No case is linked to this proactive task.")
    return None


def _no_input(session, ticket, payload):
    return {}


def _answer_note(event: Event) -> str:
    return _("The problem you reported was also reported by others; the office had it fixed at the root (主动治理): "
             "%(answer)s", answer=event.public_note or "")


@action(NOTIFY, roles={"office"}, statuses={"closed"}, precondition=_may_notify, parse=_no_input,
        label=_l("Answer sent to the citizens of the linked cases"),
        button=_l("Send the answer to the linked citizens (答复告知关联群众)"),
        confirm=_l("Text this answer to the citizen of every linked case? Each number is texted once, and this can "
                   "be done only once."))
def _notify_linked(session, ticket, actor, data, now):
    link(session, ticket, actor, now, start=ticket.created_at, end=ticket.closed_at or now)
    numbers: set[str] = set()
    cases = linked_cases(session, ticket)
    for case in cases:
        text = bool(case.phone) and case.phone not in numbers  # one text per number, whatever it filed
        if case.phone:
            numbers.add(case.phone)
        record(session, case, actor, ANSWER.name, now, from_status=case.status, public=True,
               public_note=ticket.public_reply,
               data={"governance_id": ticket.id, "governance": ticket.tracking_no, "text": text})
    return record(session, ticket, actor, NOTIFY, now, from_status=ticket.status,
                  data={"cases": len(cases), "numbers": len(numbers)})


OPENED = event_kind("governance_open", _l("Opened as a proactive task (主动治理) from a recurring problem (一类事)"))
LINKED = event_kind("governance_link", _l("Linked to a proactive task (主动治理)"))
ANSWER = event_kind("governance_answer", _l("Fixed at the root (主动治理)"), public=True, public_note=_answer_note)
