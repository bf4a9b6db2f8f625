"""Tables of the ticket room: departments, staff, tickets and their append-only history."""
from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.ext.hybrid import hybrid_method, hybrid_property
from sqlmodel import Field, SQLModel

from .db import UTCDateTime, utcnow
from .privacy.crypto import Encrypted, EncryptedBytes, indexed


class Role(str, enum.Enum):
    admin = "admin"
    office = "office"
    department = "department"
    supervisor = "supervisor"
    leader = "leader"


# Who may do what, by role: each set named once here and read by the views and checks.
ALL_ROLES = frozenset(Role)                                  # every member of staff
ADMIN_ROLES = frozenset({Role.admin})                        # accounts, API tokens, SMS wording
OFFICE_ROLES = frozenset({Role.admin, Role.office})          # runs the office: management, deadline policies and
                                                             # calendar, SMS log, CSV export, whole phone numbers,
                                                             # keeping monthly reports
SUPERVISING_ROLES = OFFICE_ROLES | {Role.supervisor}         # also reads a case's texts
OFFICE_WIDE_ROLES = ALL_ROLES - {Role.department}            # sees the whole office, not one department: the
                                                             # office's queues, surveys, monthly reports


class Status(str, enum.Enum):
    submitted = "submitted"
    accepted = "accepted"
    rejected = "rejected"
    transferred = "transferred"
    returned = "returned"
    replied = "replied"
    closed = "closed"
    rectifying = "rectifying"
    withdrawn = "withdrawn"  # 撤回: the citizen took the case back before it was accepted
    merged = "merged"  # 并单: joined to another case (`merged_into_id`) that handles the one problem for both


FINAL_STATUSES = frozenset({Status.rejected, Status.closed, Status.withdrawn, Status.merged})
OPEN_STATUSES = frozenset(Status) - FINAL_STATUSES
OPEN_STATUS_VALUES = tuple(sorted(s.value for s in OPEN_STATUSES))  # for SQL: the column holds the values
OPEN_CONDITION = "status IN (%s)" % ", ".join(f"'{value}'" for value in OPEN_STATUS_VALUES)  # a partial index's


# 差评: a rating of 4 (不满意) or 5 (非常不满意) reopens the case for rectification, texts the department's
# supervisor and asks for a return visit; 1 to 3 count as satisfied. Survey.bad_rating is the same rule in SQL;
# templates say `score is bad_rating`.
BAD_RATING = 4


def is_bad_rating(score: int | None) -> bool:
    return score is not None and score >= BAD_RATING


class OfficeLevel(str, enum.Enum):
    city = "city"
    county = "county"
    township = "township"


# Where a case came in (网上 / 窗口 / 电话 / 12345): the citizen's own form or the API, or staff filing for a caller.
class Channel(str, enum.Enum):
    web = "web"          # 网上: the public form
    api = "api"          # 网上: the API (mini-programs, portals)
    window = "window"    # 窗口: a walk-in, filed by the window's staff
    phone = "phone"      # 电话: a caller to the window
    hotline = "hotline"  # 12345: handed over by the hotline
    proactive = "proactive"  # 主动治理: the office opened it itself, from a 一类事 (tickets/clusters.py)


STAFF_CHANNELS = (Channel.window, Channel.phone, Channel.hotline, Channel.web)


class TokenScope(str, enum.Enum):
    """What an API token may do; a token without a scope may do everything its user may (tickets/access.py)."""
    file = "file"  # file cases on behalf of callers (POST /api/v1/tickets, Open311 POST)
    read = "read"  # read staff endpoints (GET: tickets, reports, clusters…)
    act = "act"    # staff actions and other staff writes


# Staff of these roles belong to one office (a window) and see its subtree; admins see every office.
OFFICE_MEMBER_ROLES = frozenset({Role.office, Role.supervisor, Role.leader})


class ProblemType(str, enum.Enum):
    cannot_handle = "cannot_handle"
    too_slow = "too_slow"
    too_hard = "too_hard"
    other = "other"


class DeadlineKind(str, enum.Enum):
    accept = "accept"        # the office accepts and dispatches (or rejects)
    handle = "handle"        # the department replies
    return_ = "return"       # window in which the department may return a misrouted case
    review = "review"        # the office reviews a reply
    rectify = "rectify"      # the department fixes what a 差评 reopened
    contact = "contact"      # 先行联系: the department first contacts the citizen (counted in working hours)


# Deadlines counted in working hours of the office (OFFICE_HOURS) rather than in working days.
HOURLY_KINDS = frozenset({DeadlineKind.contact})


class ContactMethod(str, enum.Enum):
    """How a department first contacted the citizen (`record_contact`)."""

    phone = "phone"
    visit = "visit"
    sms = "sms"
    other = "other"


def _time(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


# Table models whose rules are SQLAlchemy hybrids (one definition, read in Python and in SQL) tell Pydantic
# that these attributes are not fields.
WITH_HYBRIDS = {"ignored_types": (hybrid_method, hybrid_property)}


class Office(SQLModel, table=True):
    """A 「办不成事」window: the city's, a county's or a township's. The offices form a tree with one root.

    `path` is the ids from the root down to this office, each followed by a slash ("1/4/9/"): the offices below
    one are those whose path starts with its own (`tickets.offices.subtree`), one indexed condition in SQL.
    """

    __tablename__ = "office"

    id: Optional[int] = Field(default=None, primary_key=True)
    code: str = Field(sa_type=sa.String(32), unique=True)
    name: str = Field(sa_type=sa.String(100))
    level: OfficeLevel = Field(sa_type=sa.String(10))
    parent_id: Optional[int] = Field(default=None, foreign_key="office.id", index=True)
    area_code: Optional[str] = Field(default=None, sa_type=sa.String(12))  # 12-digit administrative area code
    path: str = Field(default="", sa_type=sa.String(255), index=True)
    active: bool = Field(default=True)
    # 默认评价: a survey of this office's cases left unanswered when it closes is recorded as 基本满意 (3), marked
    # `defaulted` (the provincial 好差评 rules); off: it stays unrated. The case's owning office decides.
    default_unanswered: bool = Field(default=True)
    # 主要问题 of this office's monthly report: the lowest rates a unit may have before the report names it, as
    # {rate key: fraction}; None: the deployment's REPORT_THRESHOLDS (reports/scores.py).
    report_thresholds: Optional[dict] = Field(default=None, sa_type=sa.JSON(none_as_null=True))
    created_at: datetime = _time(default_factory=utcnow)


class Department(SQLModel, table=True):
    __tablename__ = "department"

    id: Optional[int] = Field(default=None, primary_key=True)
    code: str = Field(sa_type=sa.String(32), unique=True)
    name: str = Field(sa_type=sa.String(100))
    office_id: int = Field(foreign_key="office.id", index=True)  # the level whose work it does
    supervisor_name: Optional[str] = Field(default=None, sa_type=sa.String(50))
    supervisor_phone: Optional[str] = Field(default=None, sa_type=sa.String(20))
    leader_name: Optional[str] = Field(default=None, sa_type=sa.String(50))
    leader_phone: Optional[str] = Field(default=None, sa_type=sa.String(20))
    active: bool = Field(default=True)
    created_at: datetime = _time(default_factory=utcnow)


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(sa_type=sa.String(64), unique=True)
    display_name: Optional[str] = Field(default=None, sa_type=sa.String(64))
    password_hash: Optional[str] = Field(default=None, sa_type=sa.String(255))
    role: Role = Field(sa_type=sa.String(16))
    department_id: Optional[int] = Field(default=None, foreign_key="department.id", index=True)
    office_id: Optional[int] = Field(default=None, foreign_key="office.id", index=True)  # office, supervisor, leader
    phone: Optional[str] = Field(default=None, sa_type=sa.String(20))
    active: bool = Field(default=True)
    created_at: datetime = _time(default_factory=utcnow)
    last_login_at: Optional[datetime] = _time(default=None)

    # Flask-Login's user protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return str(self.id)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    token_hash: str = Field(sa_type=sa.String(64), unique=True)
    label: Optional[str] = Field(default=None, sa_type=sa.String(64))
    # What the token may do (a TokenScope: `file`, `read`, `act`); None: everything its user may (tickets/access.py).
    scope: Optional[str] = Field(default=None, sa_type=sa.String(8))
    created_at: datetime = _time(default_factory=utcnow)
    last_used_at: Optional[datetime] = _time(default=None)
    revoked_at: Optional[datetime] = _time(default=None)


class IdempotencyKey(SQLModel, table=True):
    """A staff request sent with an `Idempotency-Key` header (tickets/idempotency.py): a hash of what was asked
    (method, path, body), the ticket it made or changed, and its answer sealed with SECRET_KEY (a filing's holds
    the query code). One row per user and key, written in the request's own transaction: a repeat of the request
    waits for the first and is answered the same; a failed first attempt leaves no row."""

    __tablename__ = "idempotency_key"
    __table_args__ = (sa.Index("ix_idempotency_key_user_key", "user_id", "key", unique=True),)

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id")
    key: str = Field(sa_type=sa.String(255))
    request_hash: str = Field(sa_type=sa.String(64))
    ticket_id: Optional[int] = Field(default=None, foreign_key="ticket.id")
    status_code: Optional[int] = Field(default=None)
    response: Optional[str] = Field(default=None, sa_type=sa.Text)  # the answer's JSON body, sealed
    created_at: datetime = _time(default_factory=utcnow, index=True)  # purged IDEMPOTENCY_KEY_HOURS later


class AccessKind(str, enum.Enum):
    """What a line of the personal-data access log records (PIPL Art. 51; 等保 2.0 audits: who looked at what)."""

    view_phone = "view_phone"          # a full mobile number shown to a member of staff
    view_name = "view_name"            # a full name shown where lists mask it
    export = "export"                  # an export (CSV, spreadsheet, PDF) with full numbers or names
    citizen_export = "citizen_export"  # a citizen downloaded what is held about them (tracking number + query code)
    anonymise = "anonymise"            # a case's personal data replaced by irreversible tokens
    rotate_key = "rotate_key"          # personal data re-encrypted under a new key


class AccessLog(SQLModel, table=True):
    """One showing, export or change of a citizen's personal data: who, when, which case, why.

    Written in the transaction of what it records; never updated or deleted by Banjie. `user_id` is None for the
    command line and the scheduler (`actor` then says which), `ticket_id` None for a run over many cases (`count`)."""

    __tablename__ = "access_log"
    __table_args__ = (sa.Index("ix_access_log_at", "at", "id"),
                      sa.Index("ix_access_log_ticket", "ticket_id", "at"),
                      sa.Index("ix_access_log_user", "user_id", "at"))

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = _time(default_factory=utcnow)
    user_id: Optional[int] = Field(default=None, foreign_key="user_account.id")
    actor: Optional[str] = Field(default=None, sa_type=sa.String(64))  # "cli", "scheduler", "citizen" when no user
    ticket_id: Optional[int] = Field(default=None, foreign_key="ticket.id")
    kind: str = Field(sa_type=sa.String(24))  # an AccessKind
    reason: Optional[str] = Field(default=None, sa_type=sa.String(200))
    count: Optional[int] = Field(default=None)  # cases an export or a run covered
    detail: Optional[dict] = Field(default=None, sa_type=sa.JSON)  # e.g. the export's filters; never personal data


class UserSession(SQLModel, table=True):
    """One console sign-in; the signed cookie holds its key, only the key's hash is stored (tickets/logins.py)."""

    __tablename__ = "user_session"

    id: Optional[int] = Field(default=None, primary_key=True)
    key_hash: str = Field(sa_type=sa.String(64), unique=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    created_at: datetime = _time(default_factory=utcnow)
    last_seen_at: datetime = _time(default_factory=utcnow)
    revoked_at: Optional[datetime] = _time(default=None)
    # sign_out, password, role, deactivated, idle or expired
    revoked_reason: Optional[str] = Field(default=None, sa_type=sa.String(16))


class Ticket(SQLModel, table=True):
    model_config = WITH_HYBRIDS
    __tablename__ = "ticket"
    __table_args__ = (
        sa.Index("ix_ticket_department_status", "department_id", "status"),
        sa.Index("ix_ticket_status_due", "status", "due_at"),
        sa.Index("ix_ticket_created", "created_at", "id"),  # lists newest first, 「今日新增」
        sa.Index("ix_ticket_office_created", "office_id", "created_at", "id"),  # an office's lists, newest first
        # an office's queues (one status, by deadline), their counts and the dashboard's counts by status, read from
        # the index alone (issue 13's benchmark: a county's queue counted 6,500 of 204,000 cases in 175 ms without it)
        sa.Index("ix_ticket_office_status_due", "office_id", "status", "due_at"),
        # 我的案件: a member of staff's open cases, by deadline (owner: the window's clerk; handler: the department's)
        sa.Index("ix_ticket_owner_status_due", "owner_id", "status", "due_at"),
        sa.Index("ix_ticket_handler_status_due", "handler_id", "status", "due_at"),
        # open cases by deadline across every open status (the dashboard's overdue and due-today lists, 超期与临期):
        # the index (status, due_at) cannot give six statuses in one order, and sorting a city's open cases did
        sa.Index("ix_ticket_open_due", "due_at", "id", postgresql_where=sa.text(OPEN_CONDITION)),
        # 并单 and 一类事 (tickets/duplicates.py, tickets/clusters.py): a window's recent cases about one service item
        # (the text-similarity candidates), a cluster's cases by date, the cases joined to one
        sa.Index("ix_ticket_office_item_created", "office_id", "service_item", "created_at"),
        # a citizen's cases by number (duplicates, the recover-code limit, search): the blind index, not the number
        sa.Index("ix_ticket_phone_index_created", "phone_index", "created_at"),
        sa.Index("ix_ticket_name_index", "name_index"),  # search by an exact full name
        sa.Index("ix_ticket_cluster_created", "cluster_id", "created_at"),
        sa.Index("ix_ticket_merged_into", "merged_into_id"),
        sa.Index("ix_ticket_governance", "governance_id"),
        # Integration API: one case per sending system's case number (a second filing of it is a 409, even when
        # both arrive at once), found by that number alone; a system's cases, newest first. Only the cases that
        # came from another system are in them.
        sa.Index("ix_ticket_external_ref_source", "external_ref", "source", unique=True,
                 postgresql_where=sa.text("external_ref IS NOT NULL"),
                 sqlite_where=sa.text("external_ref IS NOT NULL")),
        sa.Index("ix_ticket_source_created", "source", "created_at", "id",
                 postgresql_where=sa.text("source IS NOT NULL"), sqlite_where=sa.text("source IS NOT NULL")),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    tracking_no: str = Field(sa_type=sa.String(24), unique=True)
    query_code_hash: str = Field(sa_type=sa.String(100))
    # Encrypted at rest (tickets/privacy/crypto.py); SQL compares their blind indexes, kept in step on every write:
    # `phone_index` (the HMAC of the E.164 number, indexed with created_at) and `name_index` (of the full name).
    citizen_name: str = Field(sa_type=Encrypted("ticket.citizen_name"))
    phone: str = Field(sa_type=Encrypted("ticket.phone"))
    phone_index: Optional[str] = Field(default=None, sa_type=sa.String(64))
    name_index: Optional[str] = Field(default=None, sa_type=sa.String(64))
    problem_type: ProblemType = Field(sa_type=sa.String(20))
    service_item: Optional[str] = Field(default=None, sa_type=sa.String(100))
    description: str = Field(sa_type=sa.Text)
    channel: str = Field(default="web", sa_type=sa.String(16))  # a Channel
    office_id: int = Field(foreign_key="office.id")  # the window that owns the case (refer_up, assign_down move it)
    status: Status = Field(default=Status.submitted, sa_type=sa.String(16), index=True)
    suggested_department_id: Optional[int] = Field(default=None, foreign_key="department.id")
    department_id: Optional[int] = Field(default=None, foreign_key="department.id")
    supervision_level: int = Field(default=0)
    version: int = Field(default=1)
    # The department's latest reply (internal until the office approves it) and what the citizen was told.
    reply_content: Optional[str] = Field(default=None, sa_type=sa.Text)
    public_reply: Optional[str] = Field(default=None, sa_type=sa.Text)
    reject_reason: Optional[str] = Field(default=None, sa_type=sa.Text)
    extension_pending: bool = Field(default=False)
    # 争议件: the lead department returned the case a second time; the owning office's supervisor decides
    # (`arbitrate`), and the department decided on may not return it again.
    disputed: bool = Field(default=False)
    arbitrated_department_id: Optional[int] = Field(default=None, foreign_key="department.id")
    # The deadline now running (denormalised from `deadline` for queues and the overdue filter).
    due_at: Optional[datetime] = _time(default=None)
    due_kind: Optional[str] = Field(default=None, sa_type=sa.String(16))
    due_provisional: bool = Field(default=False)
    # 先行联系: when the department must first contact the citizen by, while it has not (a deadline of its own,
    # apart from `due_at`: it never makes the case overdue nor moves it in the queues).
    contact_due_at: Optional[datetime] = _time(default=None)
    created_at: datetime = _time(default_factory=utcnow)
    updated_at: datetime = _time(default_factory=utcnow)
    closed_at: Optional[datetime] = _time(default=None)
    # 典型案例: the office's summary of a closed case it marked typical (`mark_typical`); the monthly report of the
    # month the case was (last) closed in lists it. None: not typical.
    typical_summary: Optional[str] = Field(default=None, sa_type=sa.Text)
    typical_at: Optional[datetime] = _time(default=None)
    # 我来办: who works the case, one on each side (`assign`): the window's clerk who owns it (the one who accepted it,
    # unless someone took it over) and, while a department has it, that department's handler. None: nobody yet.
    owner_id: Optional[int] = Field(default=None, foreign_key="user_account.id")
    handler_id: Optional[int] = Field(default=None, foreign_key="user_account.id")
    # 并单 (`merge`): the case this one joined (status `merged`); None otherwise. `split` clears it.
    merged_into_id: Optional[int] = Field(default=None, foreign_key="ticket.id")
    # 一类事 (tickets/clusters.py): the id of the first case of the cluster of similar cases this one belongs to
    # (the same service item at the same window, similar text, within the moving window); set when it is filed.
    cluster_id: Optional[int] = Field(default=None)
    # The description as the similarity methods read it (tickets/duplicates.py `normalise`), kept at filing.
    match_text: Optional[str] = Field(default=None, sa_type=sa.Text)
    # 主动治理: the proactive case the office opened from this case's cluster; its answer may be sent to this citizen.
    governance_id: Optional[int] = Field(default=None, foreign_key="ticket.id")
    # Integration API (tickets/intake.py `validate_reference`): the system that handed the case over (its short code,
    # e.g. `12345`) and its own number for it; None for cases filed here. Set by a staff token's filing only.
    source: Optional[str] = Field(default=None, sa_type=sa.String(32))
    external_ref: Optional[str] = Field(default=None, sa_type=sa.String(64))
    # Retention (tickets/privacy/retention.py): when the citizen's name and number were replaced by irreversible
    # tokens and the numbers in the case's texts masked (RETENTION_DAYS after closing, or on the citizen's request).
    anonymised_at: Optional[datetime] = _time(default=None)
    # A citizen's deletion request the office recorded before the case had ended for good (its survey still open, an
    # appeal still possible, the case still open): the scheduler's `retention` job anonymises the case as soon as it
    # has (tickets/privacy/retention.py, `carry_out_requests`), whatever RETENTION_DAYS says.
    anonymise_requested_at: Optional[datetime] = _time(default=None)

    @hybrid_method
    def overdue(self, now: datetime) -> bool:
        """Overdue: an open case whose running deadline (`due_at`) has passed. `Ticket.overdue(now)` is the
        same rule as an SQL condition (the console's queues and cards, 超期与临期, the API's `overdue`)."""
        return self.status in OPEN_STATUSES and self.due_at is not None and self.due_at < now

    @overdue.inplace.expression
    @classmethod
    def _overdue_condition(cls, now: datetime):
        return sa.and_(cls.status.in_(OPEN_STATUS_VALUES), cls.due_at < now)


# Retention (tickets/privacy/retention.py): a case in a final status ended before a time when both its last status
# change (`updated_at`: a refusal, a withdrawal, a merge, a closing, a rating) and its closing (`closed_at`, which a
# merged case gets when the case it joined is answered) came before it. The selection walks the cases not yet
# anonymised by `updated_at`, in this index's order.
def ended_before(cutoff: datetime):
    return sa.and_(Ticket.updated_at < cutoff, sa.or_(Ticket.closed_at.is_(None), Ticket.closed_at < cutoff))


sa.Index("ix_ticket_retention", Ticket.__table__.c.updated_at, Ticket.__table__.c.id,
         postgresql_where=Ticket.__table__.c.anonymised_at.is_(None),
         sqlite_where=Ticket.__table__.c.anonymised_at.is_(None))
# The deletion requests still to carry out: few, found without reading the cases.
_REQUESTED = sa.and_(Ticket.__table__.c.anonymise_requested_at.isnot(None), Ticket.__table__.c.anonymised_at.is_(None))
sa.Index("ix_ticket_anonymise_requested", Ticket.__table__.c.updated_at, Ticket.__table__.c.id,
         postgresql_where=_REQUESTED, sqlite_where=_REQUESTED)


class TicketCoDepartment(SQLModel, table=True):
    """协办: departments that help the lead department; they can see the case and add notes."""

    __tablename__ = "ticket_co_department"

    ticket_id: int = Field(foreign_key="ticket.id", primary_key=True)
    department_id: int = Field(foreign_key="department.id", primary_key=True, index=True)


class Event(SQLModel, table=True):
    """One row per action on a ticket. Append-only: the history is the audit trail."""

    __tablename__ = "event"
    # a member of staff's latest actions (the case page's departments this clerk transferred to lately)
    __table_args__ = (sa.Index("ix_event_actor_action", "actor_id", "action", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    at: datetime = _time(default_factory=utcnow)
    actor_id: Optional[int] = Field(default=None, foreign_key="user_account.id")
    actor_role: Optional[str] = Field(default=None, sa_type=sa.String(16))
    action: str = Field(sa_type=sa.String(32))
    from_status: Optional[str] = Field(default=None, sa_type=sa.String(16))
    to_status: Optional[str] = Field(default=None, sa_type=sa.String(16))
    note: Optional[str] = Field(default=None, sa_type=sa.Text)
    public: bool = Field(default=False)
    public_note: Optional[str] = Field(default=None, sa_type=sa.Text)
    data: Optional[dict] = Field(default=None, sa_type=sa.JSON)


class Deadline(SQLModel, table=True):
    """A deadline is data: it starts with an action, ends with another, and an approved extension moves it."""

    model_config = WITH_HYBRIDS
    __tablename__ = "deadline"
    __table_args__ = (
        sa.UniqueConstraint("ticket_id", "kind", "round", name="uq_deadline_ticket_kind_round"),
        sa.Index("ix_deadline_open_due", "ended_at", "due_at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    kind: DeadlineKind = Field(sa_type=sa.String(16))
    round: int = Field(default=1)
    department_id: Optional[int] = Field(default=None, foreign_key="department.id")
    started_at: datetime = _time()
    working_days: int  # 0 for a deadline counted in working hours (HOURLY_KINDS)
    working_minutes: Optional[int] = Field(default=None)  # the limit of an hourly deadline, in working minutes
    due_at: datetime = _time()
    original_due_at: datetime = _time()
    extended_days: int = Field(default=0)
    provisional: bool = Field(default=False)
    ended_at: Optional[datetime] = _time(default=None)
    outcome: Optional[str] = Field(default=None, sa_type=sa.String(16))

    @hybrid_method
    def overdue(self, at: datetime) -> bool:
        """Overdue at the instant `at`: running then (started before it, not ended by it) and due before it.
        `Deadline.overdue(at)` is the same rule in SQL (the case page, the report's list at a month's end)."""
        return self.started_at < at and (self.ended_at is None or self.ended_at >= at) and self.due_at < at

    @overdue.inplace.expression
    @classmethod
    def _overdue_condition(cls, at: datetime):
        return sa.and_(cls.started_at < at, sa.or_(cls.ended_at.is_(None), cls.ended_at >= at), cls.due_at < at)


class ExtensionRequest(SQLModel, table=True):
    __tablename__ = "extension_request"

    id: Optional[int] = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    deadline_id: int = Field(foreign_key="deadline.id")
    working_days: int
    reason: str = Field(sa_type=sa.Text)
    requested_by: Optional[int] = Field(default=None, foreign_key="user_account.id")
    requested_at: datetime = _time(default_factory=utcnow)
    decided_by: Optional[int] = Field(default=None, foreign_key="user_account.id")
    decided_at: Optional[datetime] = _time(default=None)
    approved: Optional[bool] = Field(default=None)
    decision_note: Optional[str] = Field(default=None, sa_type=sa.Text)


# A survey left unanswered when it closes, at an office that defaults (`Office.default_unanswered`), is recorded
# with this score (基本满意), `defaulted`, on the channel DEFAULT_CHANNEL, rated at its closing time.
DEFAULT_SCORE = 3
DEFAULT_CHANNEL = "default"


class Survey(SQLModel, table=True):
    """One satisfaction survey round, opened when a ticket closes. Never pre-filled: only the closing sweep
    (`notify.closing`) records the default rating of one left unanswered, once it has closed."""

    model_config = WITH_HYBRIDS
    __tablename__ = "survey"
    __table_args__ = (sa.UniqueConstraint("ticket_id", "round", name="uq_survey_ticket_round"),
                      sa.Index("ix_survey_opened", "opened_at", "id"),  # the console's list, newest first
                      # the closing sweep's claim: the unanswered surveys it has not settled, by closing time
                      sa.Index("ix_survey_unsettled", "closes_at",
                               postgresql_where=sa.text("rated_at IS NULL AND swept_at IS NULL"),
                               sqlite_where=sa.text("rated_at IS NULL AND swept_at IS NULL")))

    id: Optional[int] = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    round: int = Field(default=1)
    phone: str = Field(sa_type=Encrypted("survey.phone"))  # encrypted at rest; SQL compares `phone_index`
    phone_index: Optional[str] = Field(default=None, sa_type=sa.String(64), index=True)
    opened_at: datetime = _time(default_factory=utcnow)
    closes_at: datetime = _time()
    score: Optional[int] = Field(default=None)
    comment: Optional[str] = Field(default=None, sa_type=sa.Text)
    rated_at: Optional[datetime] = _time(default=None)
    channel: Optional[str] = Field(default=None, sa_type=sa.String(16))  # web, sms, phone (record_rating), default
    # Recorded by the closing sweep, not by the citizen: score DEFAULT_SCORE, rated_at = closes_at. Reports count
    # these apart (参评率 and 满意率 read real answers only; `satisfaction_rate_with_default` adds them).
    defaulted: bool = Field(default=False)
    # When the closing sweep settled this unanswered survey (defaulted it, or left it unrated where the office does
    # not default); None while it is open or once answered.
    swept_at: Optional[datetime] = _time(default=None)

    @hybrid_property
    def answered(self) -> bool:
        """Rated by the citizen (SMS or web), not by default; in SQL, `Survey.answered`."""
        return self.score is not None and not self.defaulted

    @answered.inplace.expression
    @classmethod
    def _answered_condition(cls):
        return sa.and_(cls.score.is_not(None), cls.defaulted.is_(False))

    @hybrid_property
    def bad_rating(self) -> bool:
        """Rated 差评 (`is_bad_rating`); in SQL, `Survey.bad_rating`."""
        return is_bad_rating(self.score)

    @bad_rating.inplace.expression
    @classmethod
    def _bad_rating_condition(cls):
        return cls.score >= BAD_RATING


class ReturnVisit(SQLModel, table=True):
    """回访: the office calls back a citizen who rated a case badly, and writes down what came of it."""

    __tablename__ = "return_visit"

    id: Optional[int] = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    survey_id: int = Field(foreign_key="survey.id", unique=True)
    visited_at: datetime = _time()
    contacted: bool
    outcome: str = Field(sa_type=sa.Text)
    recorded_by: Optional[int] = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = _time(default_factory=utcnow)


class Appeal(SQLModel, table=True):
    """申诉复核: the department asks the owning office's supervisor to set aside a 差评 it did not deserve.

    One per bad-rated survey round (`survey_id` is unique), filed within `tickets.appeals.APPEAL_WORKING_DAYS` of the
    rating (`appeal`), decided once (`decide_appeal`): `upheld` stays None until then. An upheld appeal takes the
    rating out of that department's 满意率 and 差评 figures (reports/metrics.py); the rating itself stays.
    """

    __tablename__ = "appeal"
    __table_args__ = (sa.Index("ix_appeal_filed", "filed_at", "id"),)  # the console's list, newest first

    id: Optional[int] = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    survey_id: int = Field(foreign_key="survey.id", unique=True)
    department_id: int = Field(foreign_key="department.id", index=True)  # the department that appealed
    reason: str = Field(sa_type=sa.Text)
    # References to documents (attachments do not exist yet): file numbers, call records, where the papers are.
    evidence: Optional[str] = Field(default=None, sa_type=sa.Text)
    filed_at: datetime = _time()
    filed_by: Optional[int] = Field(default=None, foreign_key="user_account.id")
    decided_at: Optional[datetime] = _time(default=None, index=True)
    decided_by: Optional[int] = Field(default=None, foreign_key="user_account.id")
    upheld: Optional[bool] = Field(default=None)
    decision_reason: Optional[str] = Field(default=None, sa_type=sa.Text)
    lifted_rectification: bool = Field(default=False)

    @property
    def outcome(self) -> str:
        """`pending` until decided, then `upheld` or `rejected` (APPEAL_OUTCOMES)."""
        if self.decided_at is None:
            return "pending"
        return "upheld" if self.upheld else "rejected"


APPEAL_OUTCOMES = ("pending", "upheld", "rejected")


def appeal_outcome_condition(outcome: str):
    """`Appeal.outcome` as an SQL condition (the console's filter and the dashboard's count)."""
    return {"pending": Appeal.decided_at.is_(None), "upheld": Appeal.upheld.is_(True),
            "rejected": Appeal.upheld.is_(False)}[outcome]


class TrackingCounter(SQLModel, table=True):
    """Per-day sequence behind tracking numbers (BJ20261122-0001)."""

    __tablename__ = "tracking_counter"

    day: str = Field(sa_type=sa.String(8), primary_key=True)
    value: int = Field(default=0)


class DispatchScope(str, enum.Enum):
    service_item = "service_item"
    problem_type = "problem_type"


class DispatchRule(SQLModel, table=True):
    """派单目录: for a service item (or a problem type) filed at an office, the department responsible.

    The transfer form and the staff API suggest it (`tickets.offices.suggested_department`): the office's own
    entry, else its parent's, up to the root; a service item's entry wins over the problem type's.
    """

    __tablename__ = "dispatch_rule"
    __table_args__ = (sa.UniqueConstraint("office_id", "scope", "value", name="uq_dispatch_rule_scope"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id")
    scope: DispatchScope = Field(sa_type=sa.String(16))
    value: str = Field(sa_type=sa.String(100))  # the service item's name, or the problem type's code
    department_id: int = Field(foreign_key="department.id", index=True)
    updated_at: datetime = _time(default_factory=utcnow)


class ServiceItem(SQLModel, table=True):
    """办理事项: a service citizens can say they were trying to get done, optionally with the department doing it.

    `name` is a plain SQLModel `str` (an AutoString column), the type SQLModel gives unless told otherwise.
    """

    __tablename__ = "service_item"

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    # 事项编码: the item's code in the province's catalogue of government services, as the 好差评 export names it
    code: Optional[str] = Field(default=None, sa_type=sa.String(64), unique=True)
    department_id: Optional[int] = Field(default=None, foreign_key="department.id", index=True)
    active: bool = Field(default=True)
    created_at: datetime = _time(default_factory=utcnow)


class AttachmentSource(str, enum.Enum):
    """Who added a file to a case, and so who may see it (tickets/attachments.py)."""

    citizen = "citizen"  # with the filing or 补充材料 (also when staff file for a walk-in): the citizen sees it
    reply = "reply"      # with a department's reply: the citizen sees it once the office approved that reply
    answer = "answer"    # with the office's own answer (`resolve`): the citizen sees it at once
    evidence = "evidence"  # with a department's appeal of a 差评 (申诉复核): staff only


class Attachment(SQLModel, table=True):
    """附件: one file on a case, checked and (an image) re-encoded without its metadata when it arrived. The bytes live
    in the store (`tickets.storage`: the database by default) under `blob_key`; an image's thumbnail under `thumb_key`.

    A file the public form kept while the citizen corrected another field (`held`) has no case yet: the form's next
    submission attaches it, and the scheduler deletes it after a day if none does."""

    __tablename__ = "attachment"

    id: Optional[int] = Field(default=None, primary_key=True)
    ticket_id: Optional[int] = Field(default=None, foreign_key="ticket.id", index=True)
    event_id: Optional[int] = Field(default=None, foreign_key="event.id")  # the filing, 补充材料, reply or answer
    source: str = Field(sa_type=sa.String(10))  # an AttachmentSource
    visible_to_citizen: bool = Field(default=False)
    name: str = Field(sa_type=sa.String(120))  # what the citizen called it, cleaned, with the stored type's extension
    content_type: str = Field(sa_type=sa.String(40))
    size: int
    sha256: str = Field(sa_type=sa.String(64))
    width: Optional[int] = Field(default=None)
    height: Optional[int] = Field(default=None)
    blob_key: str = Field(sa_type=sa.String(40))
    thumb_key: Optional[str] = Field(default=None, sa_type=sa.String(40))
    uploaded_by: Optional[int] = Field(default=None, foreign_key="user_account.id")  # staff; None: the citizen
    held: Optional[str] = Field(default=None, sa_type=sa.String(40), index=True)  # the form's token while it is held
    created_at: datetime = _time(default_factory=utcnow)


class AttachmentBlob(SQLModel, table=True):
    """The bytes of files kept in the database (`tickets.storage.DatabaseStore`, the default): one backup holds all."""

    __tablename__ = "attachment_blob"

    key: str = Field(sa_type=sa.String(40), primary_key=True)
    data: bytes = Field(sa_type=EncryptedBytes("attachment_blob.data"))  # encrypted at rest (tickets/privacy/crypto.py)


class AttachmentFileKey(SQLModel, table=True):
    """The key of one file kept on the volume (`tickets.storage.DirectoryStore`, ATTACHMENT_STORAGE=directory): the
    file is encrypted with a key of its own, kept here encrypted under PRIVACY_KEYS. Rotating PRIVACY_KEYS re-encrypts
    these rows, never the files; deleting the row leaves the file unreadable, wherever a copy of the volume went."""

    __tablename__ = "attachment_file_key"

    key: str = Field(sa_type=sa.String(40), primary_key=True)  # the file's storage key (its name on the volume)
    file_key: str = Field(sa_type=Encrypted("attachment_file_key.file_key"))  # base64 of 32 random bytes, encrypted


class KnowledgeEntry(SQLModel, table=True):
    """知识库 (GB/T 44191): an answer worth reusing, with the service items it is about, its owner (a department, or the
    window itself when `department_id` is None) and the date by which it must be reviewed. Every edit raises
    `version`; a reply that used an entry keeps its id and version (tickets/knowledge.py). An entry past its review
    date is not suggested until its owner reviews it."""

    __tablename__ = "knowledge_entry"

    id: Optional[int] = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", index=True)
    department_id: Optional[int] = Field(default=None, foreign_key="department.id", index=True)
    title: str = Field(sa_type=sa.String(100))
    content: str = Field(sa_type=sa.Text)
    service_items: list = Field(default_factory=list, sa_type=sa.JSON)  # names of service items it answers
    version: int = Field(default=1)
    review_by: date = Field(sa_type=sa.Date)
    active: bool = Field(default=True)
    updated_by: Optional[int] = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = _time(default_factory=utcnow)
    updated_at: datetime = _time(default_factory=utcnow)


class Notice(SQLModel, table=True):
    """An entry of a member of staff's bell (tickets/notices.py): something happened that concerns them (their case
    changed, a 批示, an appeal to decide), written in the transaction of the event it reports; read once they mark it."""

    __tablename__ = "notice"
    __table_args__ = (sa.Index("ix_notice_user_unread", "user_id", "read_at", "id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id")
    ticket_id: Optional[int] = Field(default=None, foreign_key="ticket.id", index=True)
    event_id: Optional[int] = Field(default=None, foreign_key="event.id")
    kind: str = Field(sa_type=sa.String(16))  # a notices.KIND
    created_at: datetime = _time(default_factory=utcnow)
    read_at: Optional[datetime] = _time(default=None)


class SavedFilter(SQLModel, table=True):
    """A list's filters a member of staff saved under a name (the console's 「保存筛选」): the query string of one queue."""

    __tablename__ = "saved_filter"
    __table_args__ = (sa.UniqueConstraint("user_id", "endpoint", "name"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    endpoint: str = Field(sa_type=sa.String(40))
    name: str = Field(sa_type=sa.String(40))
    query: str = Field(sa_type=sa.String(1000))
    created_at: datetime = _time(default_factory=utcnow)


# The blind indexes follow the values they index on every write (tickets/privacy/crypto.py).
indexed(Ticket, ("phone", "phone_index", "phone"), ("citizen_name", "name_index", "name"))
indexed(Survey, ("phone", "phone_index", "phone"))
