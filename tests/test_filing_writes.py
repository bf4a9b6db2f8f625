"""What every filing writes, now that filing writes its rows in one statement (issue 11, item 20).

Each filing must still write its ticket, its acceptance deadline, its filing event, the receipt SMS row and
the acceptance deadline's escalation step, bump the day's counter, and enqueue the receipt only once all of
it is committed; a filing that does not commit leaves nothing and sends nothing.
"""
from __future__ import annotations

import sqlalchemy as sa

from escalation.models import EscalationStep
from notify.models import SmsMessage
from tickets import intake, workflow
from tickets.db import db
from tickets.models import Deadline, Event, Ticket, User
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

    world.app.extensions["banjie.sms_enqueue"] = enqueue
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
    world.app.extensions["banjie.sms_enqueue"] = enqueued.append
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
    """The rows written in one statement are in the session as if loaded (the demo files and acts at once)."""
    values = {"name": "张三", "phone": "+8613800138000", "problem_type": "other", "description": "营业执照变更办了一个月"}
    with world.app.app_context():
        office = Actor.of(db.session.get(User, world.users["office"]))
        ticket = intake.file_ticket(db.session, values, channel="web").ticket
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
