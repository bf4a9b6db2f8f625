"""The satisfaction survey's side of the workflow: opening a round when a case closes, the citizen's rating
(`rate`, the one status change that is not a staff action: a 差评 reopens the case for rectification), and the
default rating of a round left unanswered when it closes (`default_rating`, which the closing sweep calls)."""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import lazy_gettext as _l

from .. import clock, deadlines, validation
from ..access import CITIZEN, SYSTEM
from ..errors import InvalidTransition
from ..models import (
    DEFAULT_CHANNEL, DEFAULT_SCORE, Channel, DeadlineKind, Event, ReturnVisit, Status, Survey, Ticket, is_bad_rating,
)
from .engine import claim, move, record

ANSWERED = (Status.closed.value, Status.merged.value)  # statuses in which a survey round may be rated
RATE_DEFAULT = "rate_default"  # the kind of event a default rating records (declared in actions.py)


def open_survey(session, ticket: Ticket, now: datetime) -> Survey | None:
    if ticket.channel == Channel.proactive.value:
        return None  # 主动治理: the office's own task has no citizen to ask (tickets/workflow/governance.py)
    last_round = session.scalar(sa.select(sa.func.max(Survey.round)).where(Survey.ticket_id == ticket.id))
    days = current_app.config["SURVEY_OPEN_DAYS"]
    survey = Survey(ticket_id=ticket.id, round=(last_round or 0) + 1, phone=ticket.phone, opened_at=now,
                    closes_at=now + timedelta(days=days))
    session.add(survey)
    return survey


def open_survey_for(session, ticket: Ticket, now: datetime) -> Survey | None:
    return session.scalar(
        sa.select(Survey)
        .where(Survey.ticket_id == ticket.id, Survey.rated_at.is_(None), Survey.closes_at > now)
        .order_by(Survey.round.desc())
        .limit(1)
    )


def unvisited_bad_rating(session, ticket):
    """The latest 差评 round of this ticket that has no return visit yet."""
    visited = sa.select(ReturnVisit.survey_id)
    return session.scalar(
        sa.select(Survey).where(Survey.ticket_id == ticket.id, Survey.bad_rating, Survey.id.not_in(visited))
        .order_by(Survey.round.desc()).limit(1)
    )


COMMENT_MAX = 1000
PHONE_CHANNEL = "phone"  # a rating the office took on the phone (`record_rating`), e.g. from a citizen with a landline
NO_OPEN_SURVEY = _l("There is no open satisfaction survey for this case.")


def rating_fields(check: validation.Collector, score, comment) -> None:
    """A rating's input, whoever gives it: `score` 1..5 (required) and `comment` (optional)."""
    check.field("score", validation.integer, score, required=True, minimum=1, maximum=5)
    check.field("comment", validation.text, comment, required=False, max_len=COMMENT_MAX)


def rate(session, ticket: Ticket, score, comment=None, *, channel: str = "web") -> Event:
    """The citizen rates the open survey round (`apply_rating`: 4 or 5, 差评, reopens the ticket for rectification)."""
    check = validation.Collector()
    rating_fields(check, score, comment)
    values = check.raise_if_errors()
    now = clock.now()
    survey = take_open_round(session, ticket, now)
    claim(session, ticket, now)
    return apply_rating(session, ticket, survey, CITIZEN, "rate", values, channel, now)


def take_open_round(session, ticket: Ticket, now: datetime) -> Survey:
    """The ticket's open survey round, claimed for a rating (`_take`); InvalidTransition when there is none (the case
    is not closed, nobody opened a round, it was rated or it closed)."""
    # a merged case's citizen rates the answer of the case it joined (tickets/workflow/merging.py)
    survey = open_survey_for(session, ticket, now) if ticket.status in ANSWERED else None
    if survey is None or not _take(session, survey, now):
        raise InvalidTransition(NO_OPEN_SURVEY)
    return survey


def apply_rating(session, ticket: Ticket, survey: Survey, actor, kind: str, values: dict, channel: str,
                 now: datetime) -> Event:
    """Record a rating of the round `survey` (taken by `take_open_round`, the ticket's row claimed): the one rule of
    every rating, the citizen's on the web or by SMS (`rate`) and the one the office took by phone (`record_rating`).
    4 or 5 (差评) reopens the ticket for rectification by the same department; a public event of `kind`."""
    survey.score, survey.comment, survey.rated_at, survey.channel = values["score"], values["comment"], now, channel
    previous = ticket.status
    if ticket.status == Status.merged.value:
        # the answer rated is the case's this one joined: a 差评 reopens that one, whose department rectifies
        # (`merging.rated`, a reaction to this event)
        return record(session, ticket, actor, kind, now, from_status=previous, note=values["comment"], public=True,
                      data={"score": values["score"], "round": survey.round, "channel": channel})
    if is_bad_rating(values["score"]):
        move(ticket, Status.rectifying)
        ticket.closed_at = None
        deadlines.start(session, ticket, DeadlineKind.rectify, now, department_id=ticket.department_id)
        deadlines.refresh_ticket_due(session, ticket)
    return record(session, ticket, actor, kind, now, from_status=previous, note=values["comment"], public=True,
                  data={"score": values["score"], "round": survey.round, "channel": channel})


def _take(session, survey: Survey, now: datetime) -> bool:
    """Claim the round for this rating: only while nobody rated it and it is open (a conditional UPDATE, so a
    rating racing the closing sweep, or another rating, finds it taken and is refused instead of overwriting)."""
    result = session.execute(
        sa.update(Survey).where(Survey.id == survey.id, Survey.rated_at.is_(None), Survey.swept_at.is_(None),
                                Survey.closes_at > now)
        .values(rated_at=now).execution_options(synchronize_session=False))
    return result.rowcount == 1


def default_rating(session, survey: Survey, ticket: Ticket, swept_at: datetime) -> Event:
    """Record the default rating of a round that closed unanswered: 基本满意 (3), `defaulted`, on the channel
    `default`, rated at its closing time; one public event by the system, dated then too (a sweep that runs late
    tells when the survey closed, and says in the event's data when it ran).

    The caller (the closing sweep) has claimed the round. 3 is not a 差评: the case stays closed, nobody is texted,
    no deadline moves; and the ticket's `version` stays, so no staff member's open form turns stale.
    """
    survey.score, survey.comment, survey.channel = DEFAULT_SCORE, None, DEFAULT_CHANNEL
    survey.rated_at, survey.defaulted, survey.swept_at = survey.closes_at, True, swept_at
    return record(session, ticket, SYSTEM, RATE_DEFAULT, survey.closes_at, from_status=ticket.status, public=True,
                  data={"score": DEFAULT_SCORE, "round": survey.round, "channel": DEFAULT_CHANNEL, "defaulted": True,
                        "swept_at": swept_at.isoformat()})
