"""申诉复核, the workflow's side: which 差评 a department may appeal, until when, and the appeal waiting for a decision.

The actions themselves (`appeal`, `decide_appeal`) are defined in `actions.py` with the others; the report reads the
`Appeal` rows (reports/metrics.py). "Within 5 working days of a 差评" is written once, here: `appeal_window_ends`.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from .. import deadlines
from ..models import Appeal, Survey, Ticket

# 国办发〔2019〕51号: a unit may ask for a review of a rating it thinks unfair within 5 working days of it.
APPEAL_WORKING_DAYS = 5


def appeal_window_ends(rated_at: datetime) -> datetime:
    """Until when a 差评 given at `rated_at` may be appealed: the end of the 5th working day after the rating's day,
    counted as every deadline is (the office's calendar, `tickets.deadlines.policy`; a rating on a day off counts
    from the next working day)."""
    return deadlines.policy().due(rated_at, APPEAL_WORKING_DAYS).at


def latest_bad_rating(session, ticket: Ticket) -> Survey | None:
    """The newest survey round of the case that was rated 差评 (only that one may be appealed)."""
    return session.scalar(
        sa.select(Survey).where(Survey.ticket_id == ticket.id, Survey.bad_rating)
        .order_by(Survey.round.desc()).limit(1)
    )


def appeal_of(session, survey: Survey) -> Appeal | None:
    return session.scalar(sa.select(Appeal).where(Appeal.survey_id == survey.id))


def pending_appeal(session, ticket: Ticket) -> Appeal | None:
    """The case's appeal that waits longest for the supervisor's decision (two wait only when a second round was
    rated 差评 and appealed before the first appeal was decided: they are decided in the order they came)."""
    return session.scalar(
        sa.select(Appeal).where(Appeal.ticket_id == ticket.id, Appeal.decided_at.is_(None))
        .order_by(Appeal.id).limit(1)
    )


def appealable_rating(session, ticket: Ticket, now: datetime) -> tuple[Survey | None, object]:
    """(the 差评 the lead department may appeal now, None) or (None, why it may not)."""
    if ticket.department_id is None:
        return None, _l("The office settled this case itself: there is no department to appeal for.")
    survey = latest_bad_rating(session, ticket)
    if survey is None:
        return None, _l("This case has no bad rating to appeal.")
    if appeal_of(session, survey) is not None:
        return None, _l("This bad rating has already been appealed.")
    if now > appeal_window_ends(survey.rated_at):
        return None, _l("The period for appealing this bad rating (%(days)d working days) has ended.",
                        days=APPEAL_WORKING_DAYS)
    return survey, None
