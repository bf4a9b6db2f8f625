"""Tables of the escalation room: the working-day calendar, policy overrides, ladder steps and the sweeper's heartbeat."""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Optional

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tickets.db import UTCDateTime, utcnow


def _time(**kwargs):
    return Field(sa_type=UTCDateTime, **kwargs)


class DayKind(str, enum.Enum):
    weekday = "weekday"   # Monday to Friday, working
    weekend = "weekend"   # Saturday or Sunday, off
    holiday = "holiday"   # a weekday off by the State Council notice
    makeup = "makeup"     # 调休: a weekend day that is a working day


class CalendarYear(SQLModel, table=True):
    """A year of the working-day calendar. Unpublished (or absent) years are provisional: weekdays only."""

    __tablename__ = "calendar_year"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    published: bool = Field(default=False)
    source: str = Field(default="admin", sa_type=sa.String(16))  # chinese_calendar | admin | import
    notice: Optional[str] = Field(default=None, sa_type=sa.String(200))  # e.g. 国办发明电〔2025〕7号
    updated_at: datetime = _time(default_factory=utcnow)


class CalendarDay(SQLModel, table=True):
    """One day of a published year: working or not, and why."""

    __tablename__ = "calendar_day"

    day: date = Field(primary_key=True)
    workday: bool
    kind: DayKind = Field(sa_type=sa.String(8))
    name: Optional[str] = Field(default=None, sa_type=sa.String(50))
    source: str = Field(default="admin", sa_type=sa.String(16))


class PolicyOverride(SQLModel, table=True):
    """Working days of one deadline kind (working hours for the first contact, `contact`) for one problem type, one
    department or one office.

    The department's figure wins, then the owning office's, then the problem type's (DeadlinePolicy)."""

    __tablename__ = "deadline_policy"
    __table_args__ = (
        sa.UniqueConstraint("kind", "problem_type", "department_id", "office_id", name="uq_deadline_policy_scope"),
        sa.CheckConstraint(
            "(CASE WHEN problem_type IS NULL THEN 0 ELSE 1 END) + (CASE WHEN department_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN office_id IS NULL THEN 0 ELSE 1 END) = 1", name="one_scope"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=sa.String(16))
    problem_type: Optional[str] = Field(default=None, sa_type=sa.String(20))
    department_id: Optional[int] = Field(default=None, foreign_key="department.id")
    office_id: Optional[int] = Field(default=None, foreign_key="office.id")
    working_days: int  # working hours for a kind counted in hours (policies.DEFAULT_WORKING_HOURS)
    updated_at: datetime = _time(default_factory=utcnow)
    updated_by: Optional[int] = Field(default=None, foreign_key="user_account.id")


class CancelReason(str, enum.Enum):
    """Why a step was called off instead of fired; shown on the case page and in `flask escalation sweep`."""

    deadline_ended = "deadline_ended"  # the deadline ended first: a reply, a return, an approved closure
    case_closed = "case_closed"        # the case was closed or refused
    moment_passed = "moment_passed"    # a step before the deadline, reached only when the deadline was over
    not_planned = "not_planned"        # the ladder (ESCALATION_LADDER) or the deadline changed: no longer wanted


class EscalationStep(SQLModel, table=True):
    """One rung of the ladder for one deadline round: fires once (fired_at), or is cancelled (cancelled_at, with
    its cancel_reason) when it no longer has a purpose.

    The unique key (ticket, deadline kind, round, step) is what makes each step happen exactly once; the
    partial index on pending steps keeps a sweep with nothing due as cheap at a million open cases as at ten.
    """

    __tablename__ = "escalation_step"
    __table_args__ = (
        sa.UniqueConstraint("ticket_id", "kind", "round", "step", name="uq_escalation_step_once"),
        sa.Index("ix_escalation_step_pending", "due_at",
                 postgresql_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL"),
                 sqlite_where=sa.text("fired_at IS NULL AND cancelled_at IS NULL")),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    kind: str = Field(sa_type=sa.String(16))      # the deadline's kind: handle, rectify, accept, review, contact
    round: int
    step: str = Field(sa_type=sa.String(24))      # warning, supervisor, leader, office_reminder, contact_warning, ...
    level: int = Field(default=0)                 # supervision level it raises the case to; 0 raises none
    due_at: datetime = _time()                    # when it should fire
    created_at: datetime = _time(default_factory=utcnow)
    fired_at: Optional[datetime] = _time(default=None)
    cancelled_at: Optional[datetime] = _time(default=None)
    cancel_reason: Optional[str] = Field(default=None, sa_type=sa.String(24))  # a CancelReason
    sms_count: int = Field(default=0)             # texts written to the outbox when it fired
    audience: Optional[str] = Field(default=None, sa_type=sa.String(16))  # who it was for, recorded when it fired
    recipients: Optional[int] = Field(default=None)  # numbers on record for that audience when it fired; 0: nobody
    event_id: Optional[int] = Field(default=None, foreign_key="event.id")  # the event that planned it (or last moved it)


class Heartbeat(SQLModel, table=True):
    """Small named markers: the sweeper's last run, and when the calendar or the policies last changed."""

    __tablename__ = "escalation_heartbeat"

    name: str = Field(sa_type=sa.String(32), primary_key=True)
    at: datetime = _time()
    data: Optional[dict] = Field(default=None, sa_type=sa.JSON)
