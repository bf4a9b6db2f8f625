"""并单: one problem handled once, however many people report it (the 12345 rule 重复诉求原则上并单处理).

`merge` joins a case B to a case A that handles the same problem: B ends `merged` (a final status), A keeps its
department, deadline and handling. B's running deadlines end (outcome `merged`) and what B was is kept in the
merge event's data, so `split`, while A is not closed and B has not heard A's answer (nor was anonymised), restores B
exactly: its status and its deadlines, due when they were due. B's citizen is texted that the report is handled
together with another (never which one: the citizen sees nothing of other people's cases), and B's lookup page shows
A's progress, public steps only. A case whose citizen was anonymised takes no case in (it is never open again).

When A is answered (an action that `closes_case`), every case joined to it hears the answer (`joined_answer`, an
event on B with the answer, the `closed` text to B's citizen) and, if the closing `starts_survey`, a survey round of
its own, rated like any (SMS or the lookup page). A joined citizen's 差评 reopens A for rectification (`joined_rating`
on A, which the reports and the SMS room read as a rating: `rates_survey`), and the report counts the rating for the
department that handled A (reports/metrics.py). `joined_cases` lists the cases joined to one.
"""
from __future__ import annotations

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import deadlines, validation
from ..access import SYSTEM, visibility
from ..errors import Forbidden, ValidationFailed
from ..models import FINAL_STATUSES, Channel, Deadline, DeadlineKind, Event, Status, Ticket, is_bad_rating
from .engine import claim, move, record, role_allows
from .registry import ACTIONS, KINDS, Input, action, event_kind
from .survey import open_survey

# B's statuses from which it may join another case: before a department answered. A reply waiting for review, or a
# rectification a 差评 asked for, is an answer owed to this citizen: review it, or answer the 差评, instead.
MERGEABLE = frozenset({Status.submitted, Status.accepted, Status.transferred, Status.returned})
# A's statuses that may take a case in: open, or closed (B's citizen then gets A's answer and a survey at once).
TAKES_IN = frozenset(Status) - FINAL_STATUSES | {Status.closed}
MERGED_OUTCOME = "merged"   # the outcome of a deadline a merge ended
MERGE, SPLIT = "merge", "split"
SNAPSHOT = ("status", "department_id", "handler_id", "due_at", "due_kind", "due_provisional", "contact_due_at")


def joined_cases(session, ticket: Ticket) -> list[Ticket]:
    """The cases merged into this one, oldest first."""
    return list(session.scalars(sa.select(Ticket).where(Ticket.merged_into_id == ticket.id).order_by(Ticket.id)))


def joined_count(session, ticket: Ticket) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(Ticket.merged_into_id == ticket.id))


def _no_cases_joined(session, ticket, now):
    if ticket.channel == Channel.proactive.value:
        return _l("A proactive task (主动治理) is the office's own: it is not merged into a citizen's case.")
    if joined_count(session, ticket):
        return _l("Other cases are joined to this one: split them first, or merge the other case into this one.")
    return None


def _parse_merge(session, ticket, payload):
    """`into` (a tracking number) and `note`; which case `into` names, as the actor may name it, is `_target`'s, which
    the handler asks first, as only it knows the actor."""
    if not isinstance(payload, dict):
        raise ValidationFailed(_l("The body must be a JSON object."))
    check = validation.Collector()
    check.field("into", validation.text, payload.get("into"), required=True, max_len=24, single_line=True)
    check.field("note", validation.text, payload.get("note"), required=False, max_len=4000)
    return check.raise_if_errors()


def _target(session, ticket, actor, into: str) -> Ticket:
    """The case to merge into: one the actor sees (any other is no case to them, whatever its state), that may take
    this one in; a field error on `into` otherwise, 403 when it is not a case the actor's window handles."""
    target = session.scalar(sa.select(Ticket).where(Ticket.tracking_no == into.strip().upper(), visibility(actor)))
    problem = None
    if target is None:
        problem = _l("No case has this tracking number.")
    elif target.id == ticket.id:
        problem = _l("A case cannot be merged into itself.")
    elif target.status == Status.merged.value:
        problem = _l("That case is itself merged into another: merge into that one instead.")
    elif target.channel == Channel.proactive.value:
        problem = _l("A proactive task (主动治理) is the office's own: link cases to it, do not merge them.")
    elif Status(target.status) not in TAKES_IN:
        problem = _l("Only an open or closed case can take another in (not a rejected or withdrawn one).")
    elif target.anonymised_at is not None:
        # the joined citizen's 差评 would reopen it: a case whose citizen was anonymised is never open again
        problem = _l("That case's personal information was anonymised: it is never reopened, so it takes no case "
                     "in. Handle this case on its own.")
    if problem is not None:
        raise ValidationFailed(fields={"into": problem})
    if not role_allows(ACTIONS["merge"], target, actor):
        raise Forbidden(_l("You may merge only into a case your window handles."))
    return target


@action("merge", roles={"office"}, statuses=MERGEABLE, parse=_parse_merge, precondition=_no_cases_joined,
        inputs=(Input("into", _l("Tracking number of the case that handles the same problem"), "case", hint=_l(
            "This case ends and is handled as that one; its citizen is told and gets that case's answer.")),
                Input("note", _l("Note (internal)"), required=False)),
        label=_l("Merged into another case (并单)"), button=_l("Merge into another case (并单)"),
        confirm=_l("Merge this case into the other one? It is then handled as that case; you can split it again "
                   "until that case is closed."),
        public=True, public_note=lambda event: _("Your report concerns a problem another case already handles: the "
                                                 "two are handled together (并单). You get its answer."),
        moves_deadlines=True)
def _merge(session, ticket, actor, data, now):
    target = _target(session, ticket, actor, data["into"])
    before = {name: getattr(ticket, name) for name in SNAPSHOT}
    before["due_at"] = before["due_at"].isoformat() if before["due_at"] else None
    before["contact_due_at"] = before["contact_due_at"].isoformat() if before["contact_due_at"] else None
    ended = deadlines.end(session, ticket, list(DeadlineKind), now, outcome=MERGED_OUTCOME)
    previous = move(ticket, Status.merged)
    ticket.merged_into_id = target.id
    deadlines.refresh_ticket_due(session, ticket)
    claim(session, target, now)  # the target's staff see the change (its version moves) and no action races it
    into = {"into": target.tracking_no, "into_id": target.id}
    record(session, target, actor, JOINED.name, now, from_status=target.status, note=data.get("note"),
           data={"joined": ticket.tracking_no, "joined_id": ticket.id})
    event = record(session, ticket, actor, "merge", now, from_status=previous, note=data.get("note"), public=True,
                   data={**into, "before": before, "deadline_ids": [d.id for d in ended]})
    if target.status == Status.closed.value:
        answer_joined(session, target, event, now, cases=[ticket], survey=True)
    return event


def _parse_split(session, ticket, payload):
    return _parse_note(payload)


def _parse_note(payload):
    if not isinstance(payload, dict):
        raise ValidationFailed(_l("The body must be a JSON object."))
    check = validation.Collector()
    check.field("note", validation.text, payload.get("note"), required=False, max_len=4000)
    return check.raise_if_errors()


def answered_since_merged(session, ticket: Ticket) -> bool:
    """Whether this merged case heard the answer of the case it joined (`joined_answer`) since it was last merged."""
    merged_at = sa.select(sa.func.max(Event.id)).where(Event.ticket_id == ticket.id, Event.action == MERGE)
    return session.scalar(sa.select(sa.exists().where(
        Event.ticket_id == ticket.id, Event.action == JOINED_ANSWER.name, Event.id > merged_at.scalar_subquery())))


def _target_open(session, ticket, now):
    """The split's precondition: the case it joined still open and this one not answered by it yet. Once answered, B
    holds that answer (`public_reply`, `closed_at`) and maybe a survey round: reopened, it would be an open case marked
    answered, rated by its citizen or by the closing sweep."""
    target = session.get(Ticket, ticket.merged_into_id) if ticket.merged_into_id else None
    if target is None:
        return _l("This case is not merged into another.")
    if ticket.anonymised_at is not None:
        return _l("This case's personal information was anonymised: it is never reopened; the merge stays.")
    if Status(target.status) in FINAL_STATUSES:
        return _l("The case it was merged into is closed: its citizen has that answer; the merge stays.")
    if answered_since_merged(session, ticket):
        return _l("This case's citizen already has the answer of the case it was merged into (and its survey), even "
                  "if that case was reopened since: the merge stays.")
    return None


@action("split", roles={"office"}, statuses={"merged"}, parse=_parse_split, precondition=_target_open,
        inputs=(Input("note", _l("Why it is handled on its own again (internal)"), required=False),),
        label=_l("Split from the merged case"), button=_l("Split (handle on its own again)"), danger=True,
        public=True, public_note=lambda event: _("Your report is handled on its own again."), moves_deadlines=True)
def _split(session, ticket, actor, data, now):
    merged = session.scalar(sa.select(Ticket.id).where(Ticket.id == ticket.merged_into_id))
    last = session.scalar(sa.select(Event).where(Event.ticket_id == ticket.id, Event.action == "merge")
                          .order_by(Event.id.desc()).limit(1))
    before = dict((last.data or {}).get("before") or {}) if last is not None else {}
    ids = (last.data or {}).get("deadline_ids") or [] if last is not None else []
    for deadline in session.scalars(sa.select(Deadline).where(Deadline.ticket_id == ticket.id, Deadline.id.in_(ids))):
        deadline.ended_at, deadline.outcome = None, None
    previous = move(ticket, Status(before.get("status") or Status.submitted.value))
    ticket.merged_into_id = None
    ticket.department_id, ticket.handler_id = before.get("department_id"), before.get("handler_id")
    deadlines.refresh_ticket_due(session, ticket)
    target = session.get(Ticket, merged)
    claim(session, target, now)
    record(session, target, actor, LEFT.name, now, from_status=target.status, note=data.get("note"),
           data={"split": ticket.tracking_no, "split_id": ticket.id})
    return record(session, ticket, actor, "split", now, from_status=previous, note=data.get("note"), public=True,
                  data={"from": target.tracking_no, "from_id": target.id})


def answer_joined(session, ticket: Ticket, cause, now, *, cases=None, survey: bool) -> int:
    """Tell every case joined to `ticket` (or `cases`) its answer: a public `joined_answer` event on each (its
    citizen is texted the answer by the SMS room) and, when `survey`, a survey round of its own. The number told."""
    told = 0
    for joined in cases if cases is not None else joined_cases(session, ticket):
        joined.public_reply = ticket.public_reply
        joined.closed_at = ticket.closed_at or now
        if survey:
            open_survey(session, joined, now)
        record(session, joined, SYSTEM, JOINED_ANSWER.name, now, from_status=joined.status, public=True,
               public_note=ticket.public_reply, data={"from": ticket.tracking_no, "from_id": ticket.id,
                                                      "cause": cause.action, "survey": survey})
        told += 1
    return told


def answered(event, *, session, ticket, **_):
    """The reaction to a closing of a case others are joined to: they all hear the answer (`answer_joined`)."""
    if ticket.status != Status.closed.value:
        return
    answer_joined(session, ticket, event, event.at, survey=KINDS[event.action].starts_survey)


def rated(event, *, session, ticket, **_):
    """The reaction to a rating (a kind that `rates_survey`) of a case joined to another: a 差评 reopens that other
    case (`reopen_for_joined_rating`). A rating of any other case is the survey's own (`survey.apply_rating`)."""
    if ticket.status == Status.merged.value and is_bad_rating(event.data["score"]):
        reopen_for_joined_rating(session, ticket, event.data["score"], event.data["round"], event.at)


def reopen_for_joined_rating(session, joined: Ticket, score: int, survey_round: int, now):
    """A joined citizen's 差评: the case that handled the problem reopens for rectification (when it is closed), with a
    `joined_rating` event on it that counts as a rating of it (the SMS room texts its department's supervisor)."""
    target = session.get(Ticket, joined.merged_into_id) if joined.merged_into_id else None
    if target is None:
        return None
    previous = target.status
    if target.status == Status.closed.value:
        claim(session, target, now)
        move(target, Status.rectifying)
        target.closed_at = None
        deadlines.start(session, target, DeadlineKind.rectify, now, department_id=target.department_id)
        deadlines.refresh_ticket_due(session, target)
    return record(session, target, SYSTEM, JOINED_RATING.name, now, from_status=previous,
                  data={"score": score, "round": survey_round, "joined": joined.tracking_no, "joined_id": joined.id})


JOINED = event_kind("merge_in", _l("Another case merged into this one"))
LEFT = event_kind("split_out", _l("A merged case split off"))
JOINED_ANSWER = event_kind("joined_answer", _l("Answer of the merged case"), public=True,
                           public_note=lambda event: event.public_note)
JOINED_RATING = event_kind("joined_rating", _l("Rating by the citizen of a merged case"), moves_deadlines=True,
                           rates_survey=True)
