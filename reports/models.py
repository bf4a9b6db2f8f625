"""The reports room's table: one generated monthly report, kept with its figures and its PDF."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from tickets.db import UTCDateTime, utcnow
from tickets.models import Deadline, Event, ExtensionRequest, Survey, Ticket


class Report(SQLModel, table=True):
    """A month's report as generated: never recomputed silently, so the PDF a leader read stays available."""

    __tablename__ = "report"
    __table_args__ = (sa.UniqueConstraint("office_id", "month", name="uq_report_office_month"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id")  # the report covers this office's whole subtree
    month: str = Field(sa_type=sa.String(7))  # YYYY-MM, local time
    figures: dict = Field(sa_type=sa.JSON)
    pdf: bytes = Field(sa_type=sa.LargeBinary)
    formula_version: str = Field(sa_type=sa.String(16))
    trigger: str = Field(sa_type=sa.String(8))  # auto (the scheduler on the 1st) or manual (console, API, CLI)
    generated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    generated_by: Optional[int] = Field(default=None, foreign_key="user_account.id")
    # A report is a draft (草稿: regenerated freely, marked so on every page) until the office publishes it
    # (`operations.publish`): then its figures and PDF are frozen and the leaders are texted.
    status: str = Field(default="draft", sa_type=sa.String(10))
    published_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    published_by: Optional[int] = Field(default=None, foreign_key="user_account.id")
    next_steps: Optional[str] = Field(default=None, sa_type=sa.Text)  # 下步工作, the office's own words


# Indexes the monthly queries need on other rooms' tables. Declared here (bound to those tables' columns)
# so the ticket room's models stay untouched and the migration-vs-models check still sees them.
REPORT_INDEXES = (
    # Covering on PostgreSQL: the month's events of an action are read from the index alone.
    sa.Index("ix_event_action_at", Event.__table__.c.action, Event.__table__.c.at,
             postgresql_include=["ticket_id", "to_status"]),
    sa.Index("ix_deadline_kind_started", Deadline.__table__.c.kind, Deadline.__table__.c.started_at),
    sa.Index("ix_deadline_kind_due", Deadline.__table__.c.kind, Deadline.__table__.c.due_at),
    sa.Index("ix_survey_closes_at", Survey.__table__.c.closes_at,
             postgresql_include=["ticket_id", "score", "rated_at"]),
    sa.Index("ix_extension_request_decided_at", ExtensionRequest.__table__.c.decided_at),
    # 典型案例: the few cases marked typical, by closing time (a partial index: the rest are not in it).
    sa.Index("ix_ticket_typical_closed", Ticket.__table__.c.closed_at,
             postgresql_where=Ticket.__table__.c.typical_summary.is_not(None),
             sqlite_where=Ticket.__table__.c.typical_summary.is_not(None)),
)
