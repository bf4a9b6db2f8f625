"""What every filing writes, now that filing writes its rows in one statement (issue 11, item 20).

Each filing must still write its ticket, its acceptance deadline, its filing event, the receipt SMS row and
the acceptance deadline's escalation step, bump the day's counter, and enqueue the receipt only once all of
it is committed; a filing that does not commit leaves nothing and sends nothing.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from escalation.models import EscalationStep
from notify.models import SmsMessage
from notify.state import ENQUEUE
from tickets import intake, offices, workflow
from tickets.db import UTCDateTime, db, driver_row, new_row
from tickets.models import Deadline, Event, Ticket, TrackingCounter, User
from tickets.workflow import Actor


def _rows_of(number: str) -> dict:
    ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == number))
    of = lambda model: db.session.scalars(sa.select(model).where(model.ticket_id == ticket.id)).all()  # noqa: E731
    return {"ticket": ticket, "deadlines": of(Deadline), "events": of(Event), "sms": of(SmsMessage),
            "steps": of(EscalationStep)}


def test_each_filing_writes_its_rows_and_enqueues_its_receipt_after_the_commit(world, database_url, clock):
    committed = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    enqueued = []

    def enqueue(message_id):
        # Seen from another connection: the row is committed by the time it is enqueued.
        with committed.connect() as other:
            enqueued.append((message_id, other.scalar(sa.select(SmsMessage.status).where(SmsMessage.id == message_id))))

    ENQUEUE.set(world.app, enqueue)
    filed = [world.file(), world.file(department_id=world.departments["B"], service_item="社保转移"), world.file()]
    committed.dispose()

    with world.app.app_context():
        receipts = []
        for n, answer in enumerate(filed, start=1):
            assert answer["tracking_no"] == f"BJ20261116-{n:04d}"
            rows = _rows_of(answer["tracking_no"])
            ticket = rows["ticket"]
            [deadline], [event], [sms], [step] = rows["deadlines"], rows["events"], rows["sms"], rows["steps"]
            assert (deadline.kind, deadline.round, deadline.due_at) == ("accept", 1, ticket.due_at)
            assert (event.action, event.to_status, event.public, event.data) == ("file", "submitted", True,
                                                                                  {"channel": "api"})
            assert (sms.template, sms.status, sms.phone) == ("receipt", "pending", ticket.phone)
            assert answer["tracking_no"] in sms.body and answer["query_code"] in sms.body
            assert (step.kind, step.round, step.step, step.due_at, step.fired_at) == (
                "accept", 1, "office_reminder", deadline.due_at, None)
            receipts.append(sms.id)
    assert enqueued == [(message_id, "pending") for message_id in receipts]


def test_a_filing_that_is_not_committed_leaves_nothing_and_sends_nothing(world):
    enqueued = []
    ENQUEUE.set(world.app, enqueued.append)
    values = {"name": "张三", "phone": "+8613800138000", "problem_type": "other", "description": "营业执照变更办了一个月"}
    with world.app.app_context():
        intake.file_ticket(db.session, values, channel="api")
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 0
        for model in (Deadline, Event, SmsMessage, EscalationStep):
            assert db.session.scalar(sa.select(sa.func.count()).select_from(model)) == 0
        db.session.commit()
    assert enqueued == []
    assert world.file()["tracking_no"].startswith("BJ20261116-")  # the next filing works (a number may skip)


def test_a_filed_ticket_can_be_acted_on_in_the_same_transaction(world):
    """The ticket written in one statement is in the session as if loaded, and queries find its other rows (the
    demo files and acts at once)."""
    values = {"name": "张三", "phone": "+8613800138000", "problem_type": "other", "description": "营业执照变更办了一个月"}
    with world.app.app_context():
        office = Actor.of(db.session.get(User, world.users["office"]))
        ticket = intake.file_ticket(db.session, values, channel="web").ticket
        assert sa.inspect(ticket).persistent and ticket in db.session and not db.session.new
        [deadline] = db.session.scalars(sa.select(Deadline).where(Deadline.ticket_id == ticket.id)).all()
        assert (deadline.kind, deadline.due_at, deadline.ended_at) == ("accept", ticket.due_at, None)
        workflow.perform(db.session, ticket, office, "accept")
        db.session.commit()
        number = ticket.tracking_no
    detail = world.ticket("office", number)
    assert detail["status"] == "accepted" and [e["action"] for e in detail["events"]] == ["file", "accept"]


def test_only_the_counters_own_transaction_skips_the_wait_for_the_disk(world, database_url):
    """On PostgreSQL the day's counter is bumped in a transaction of its own that does not wait for its commit to
    be flushed (a later crash can lose only bumps no committed ticket carries); the filing's own transaction,
    which answers the citizen, still waits. Elsewhere nothing of the kind is asked."""
    seen = []

    def statement(conn, cursor, sql, parameters, context, executemany):
        seen.append((sql, conn.connection.dbapi_connection.autocommit if hasattr(
            conn.connection.dbapi_connection, "autocommit") else None))

    values = {"name": "张三", "phone": "+8613800138000", "problem_type": "other", "description": "营业执照变更办了一个月"}
    with world.app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", statement)
        try:
            intake.file_ticket(db.session, values, channel="api")
            filing_setting = db.session.execute(sa.text(
                "SHOW synchronous_commit" if database_url.startswith("postgresql") else "SELECT 'on'")).scalar()
            db.session.commit()
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", statement)
    asks = [autocommit for sql, autocommit in seen if "synchronous_commit" in sql and "set_config" in sql]
    if database_url.startswith("postgresql"):
        assert asks == [True]  # once, in the counter's autocommit statement
        assert "tracking_counter" in next(sql for sql, _ in seen if "set_config" in sql)
    else:
        assert asks == []
    assert filing_setting == "on"


def _transaction_after_each_statement(engine, seen: list):
    """An `after_cursor_execute` listener noting, for each statement, its first six words and whether a transaction was
    open on the server after it (psycopg sends BEGIN before a statement only outside autocommit, and COMMIT only
    inside a transaction: a statement after which none is open was a transaction of its own)."""
    from psycopg.pq import TransactionStatus

    def listener(conn, cursor, sql, parameters, context, executemany):
        raw = conn.connection.dbapi_connection
        seen.append((" ".join(sql.split()[:6]), raw.info.transaction_status != TransactionStatus.IDLE))

    sa.event.listen(engine, "after_cursor_execute", listener)
    return lambda: sa.event.remove(engine, "after_cursor_execute", listener)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_citizens_api_filing_is_two_statements_each_its_own_transaction(world, database_url):
    """A citizen's filing through the API writes nothing but its rows: on PostgreSQL the number's statement and the
    rows' statement each commit by themselves, so no BEGIN and no COMMIT go to the server (four round trips become
    two); the rows are still all written, and the receipt is enqueued once they are committed. (The public form
    reads its choices first, so its filing is one transaction as before.)"""
    committed = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    enqueued = []

    def enqueue(message_id):
        with committed.connect() as other:
            enqueued.append(other.scalar(sa.select(SmsMessage.status).where(SmsMessage.id == message_id)))

    ENQUEUE.set(world.app, enqueue)
    world.file()  # caches warm
    enqueued.clear()
    seen = []
    with world.app.app_context():
        stop = _transaction_after_each_statement(db.engine, seen)
    try:
        number = world.file()["tracking_no"]
    finally:
        stop()
        committed.dispose()
    assert seen == [("WITH bumped AS (INSERT INTO tracking_counter", False),
                    ("WITH row_0 AS (INSERT INTO ticket", False)]
    assert enqueued == ["pending"]
    with world.app.app_context():
        rows = _rows_of(number)
        assert [len(rows[kind]) for kind in ("deadlines", "events", "sms", "steps")] == [1, 1, 1, 1]
        raw = db.session.connection().connection.dbapi_connection
        assert raw.autocommit is False  # the connection went back to the pool as it came


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_filing_committed_with_other_writes_is_one_transaction_with_them(world):
    """When the session has more to write than the filing's rows (here a changed case with no transaction open on the
    server; also a filing with files, or one in a transaction begun before it), `commit=True` commits it all
    together, the rows inside the transaction: a failure of the commit takes back the filing too."""
    other = world.file()["tracking_no"]
    values = {"name": "张三", "phone": "+8613800138000", "problem_type": "other", "description": "营业执照变更办了一个月"}
    seen = []
    with world.app.app_context():
        before = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket))
        loaded = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == other))
        db.session.commit()  # nothing open on the server, but a change to write (objects do not expire at a commit)
        loaded.description = "改过的描述"
        stop = _transaction_after_each_statement(db.engine, seen)
        try:
            intake.file_ticket(db.session, values, channel="api", commit=True)
        finally:
            stop()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == before + 1
        assert db.session.get(Ticket, loaded.id).description == "改过的描述"
    writes = [open_after for words, open_after in seen if words.startswith("WITH row_")]
    assert writes == [True]  # inside the transaction, committed with the change
    assert all(open_after for words, open_after in seen if words.startswith("UPDATE"))


@pytest.mark.parametrize("office_code", [None, "", "root"])
def test_a_filing_that_names_no_window_reads_the_root_office_with_its_number(world, database_url, office_code):
    """Filing resolves its office (issue 13). When the filing names none, the root office's id comes back with the
    tracking number in the counter's statement: on PostgreSQL nothing runs before that statement, and the filing
    uses one connection (a query before it would begin the session's transaction, sending the counter to a second
    pool checkout with its own ping)."""
    seen = []

    def statement(conn, cursor, sql, parameters, context, executemany):
        seen.append((sql, id(conn.connection.dbapi_connection)))

    values = {"name": "张三", "phone": "+8613800138000", "problem_type": "other", "description": "营业执照变更办了一个月"}
    if office_code is not None:
        values["office_code"] = office_code
    with world.app.app_context():
        root_id = offices.root_id(db.session)
        intake.file_ticket(db.session, intake.validate_intake(db.session, values), channel="api")  # caches warm
        db.session.commit()
        sa.event.listen(db.engine, "before_cursor_execute", statement)
        try:
            filed = intake.file_ticket(db.session, intake.validate_intake(db.session, values), channel="api")
            db.session.commit()
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", statement)
        assert db.session.get(Ticket, filed.ticket.id).office_id == root_id
    if database_url.startswith("postgresql"):
        if not office_code:
            assert "tracking_counter" in seen[0][0]  # no statement of its own for the office
        assert len({connection for _, connection in seen}) == (1 if not office_code else 2)


_AT = datetime(2026, 11, 16, 2, 0, tzinfo=timezone.utc)
ROWS = [
    (Ticket, {"id": 7, "tracking_no": "BJ20261116-0001", "query_code_hash": "h", "citizen_name": "张三",
              "phone": "+8613800138000", "problem_type": "other", "service_item": None, "description": "营业执照变更",
              "channel": "api", "suggested_department_id": None, "created_at": _AT, "updated_at": _AT}),
    (Deadline, {"kind": "accept", "department_id": None, "started_at": _AT, "working_days": 1, "due_at": _AT,
                "original_due_at": _AT, "provisional": False}),
    (Event, {"ticket_id": 7, "at": _AT, "actor_role": "citizen", "action": "file", "to_status": "submitted",
             "public": True, "data": {"channel": "api"}}),
    (SmsMessage, {"ticket_id": 7, "phone": "+8613800138000", "audience": "citizen", "template": "receipt",
                  "body": "【办】受理", "created_at": _AT, "not_before": _AT}),
    (EscalationStep, {"ticket_id": 7, "kind": "accept", "round": 1, "step": "office_reminder", "level": 0,
                      "due_at": _AT}),
]


@pytest.mark.parametrize("model, values", ROWS, ids=[model.__name__ for model, _ in ROWS])
def test_new_row_makes_what_the_constructor_makes(model, values):
    made, built = model(**values), new_row(model, **values)
    fields = lambda obj: {name: getattr(obj, name) for name in model.model_fields  # noqa: E731
                          if name in values or name not in ("created_at", "at")}  # those two default to the time
    assert fields(built) == fields(made)
    assert built.__pydantic_fields_set__ == made.__pydantic_fields_set__ == set(values)
    assert sa.inspect(built).transient
    with pytest.raises(TypeError):
        new_row(model, **values, nonsense=1)


def test_new_row_calls_default_factories_per_object():
    first, second = new_row(EscalationStep, **ROWS[4][1]), new_row(EscalationStep, **ROWS[4][1])
    assert first.created_at is not None and first.created_at <= second.created_at
    assert (first.fired_at, first.sms_count, first.cancel_reason) == (None, 0, None)


def test_new_rows_are_written_by_a_flush_and_later_changes_are_tracked(world):
    """Outside filing's one statement (a transfer's deadline, a text a workflow action sends) they go through the
    unit of work like any object."""
    number = world.file()["tracking_no"]
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == number))
        text = new_row(SmsMessage, **{**ROWS[3][1], "ticket_id": ticket.id})
        db.session.add(text)
        db.session.flush()
        text.body = "【办】改过"
        db.session.commit()
        text_id = text.id
    with world.app.app_context():
        stored = db.session.get(SmsMessage, text_id)
        assert (stored.body, stored.status, stored.attempts, stored.created_at) == ("【办】改过", "pending", 0, _AT)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_driver_path_answers_as_sqlalchemy_does_and_raises_its_errors(world):
    """Filing's two statements run on the driver's cursor (`tickets.db.driver_row`): the same row as SQLAlchemy's own
    execution (the statement's literal values, each parameter through its type's conversion), and a driver error
    is SQLAlchemy's (a broken unique key an IntegrityError, which `intake._insert_once` catches), after which the
    session rolls back and goes on."""
    at = datetime(2026, 11, 16, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    statement = sa.select(sa.literal(7), sa.bindparam("at", type_=UTCDateTime), sa.bindparam("n", type_=sa.Integer) + 1,
                          sa.func.json_build_array(sa.bindparam("n", type_=sa.Integer), "二"))
    bump = sa.insert(TrackingCounter).values(day=sa.bindparam("day"), value=1).returning(TrackingCounter.value)
    with world.app.app_context():
        connection = db.session.connection()
        ours = driver_row(connection, statement, {"at": at, "n": 1})
        assert tuple(ours) == tuple(connection.execute(statement, {"at": at, "n": 1}).one()) == (7, at, 2, [1, "二"])
        assert tuple(driver_row(connection, bump, {"day": "20990101"})) == (1,)
        with pytest.raises(sa.exc.IntegrityError):
            driver_row(connection, bump, {"day": "20990101"})
        db.session.rollback()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(TrackingCounter)
                                 .where(TrackingCounter.day == "20990101")) == 0


def test_a_savepoint_rolled_back_takes_back_only_its_own_texts(world):
    """A refused step inside a savepoint (a rating by SMS that met a staff action, one survey of the closing sweep)
    sends none of the texts it wrote; the texts the transaction wrote before it still go at the commit."""
    from notify.operations import send_sms

    enqueued = []
    ENQUEUE.set(world.app, enqueued.append)
    with world.app.app_context():
        before = send_sms("+8613800138000", "opted_out", {}, session=db.session)
        with pytest.raises(RuntimeError):
            with db.session.begin_nested():
                send_sms("+8613900139000", "opted_out", {}, session=db.session)
                raise RuntimeError("refused")
        db.session.commit()
        assert enqueued == [before.id]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SmsMessage)) == 1
        enqueued.clear()
        send_sms("+8613800138000", "opted_out", {}, session=db.session)
        db.session.rollback()
    assert enqueued == []
