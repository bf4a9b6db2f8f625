"""'Why did this text go out?': every outbox row and ladder step names the event (or ladder step) that caused
it, and the case page and the SMS log say so, linking to it."""
from __future__ import annotations

import re

import sqlalchemy as sa

from escalation import sweeper
from escalation.models import EscalationStep
from notify.models import SmsMessage
from tickets import clock
from tickets.clock import CLOCK
from tickets.db import db
from tickets.models import Event, Ticket, User

HANDLER_PHONE = "+8613800000011"


def _rows(world, tracking_no):
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == tracking_no))
        events = {e.id: e for e in db.session.scalars(sa.select(Event).where(Event.ticket_id == ticket.id))}
        sms = list(db.session.scalars(sa.select(SmsMessage).where(SmsMessage.ticket_id == ticket.id)
                                      .order_by(SmsMessage.id)))
        steps = list(db.session.scalars(sa.select(EscalationStep).where(EscalationStep.ticket_id == ticket.id)))
        return events, sms, steps


def _walk(world):
    """A case through filing, transfer, a reminder, a late deadline (the ladder fires), a reply and a closure."""
    with world.app.app_context():
        db.session.get(User, world.users["dept_a"]).phone = HANDLER_PHONE
        db.session.commit()
    no = world.file()["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"], working_days=1)
    world.act("supervisor", no, "remind")
    CLOCK.get(world.app).advance(days=10)
    with world.app.app_context():
        sweeper.sweep(db.session, clock.now())
        db.session.commit()
    world.act("dept_a", no, "reply", content="已办结，证照已寄出。")
    world.act("office", no, "approve")
    return no


def test_every_text_and_step_names_its_cause(world):
    no = _walk(world)
    events, sms, steps = _rows(world, no)
    assert sms and steps
    by_template = {}
    for message in sms:
        assert (message.event_id is None) != (message.step_id is None), (message.template, message.event_id,
                                                                          message.step_id)
        if message.event_id is not None:
            by_template.setdefault(message.template, set()).add(events[message.event_id].action)
        else:
            assert message.step_id in {s.id for s in steps}
            by_template.setdefault(message.template, set()).add("ladder")
    assert by_template["receipt"] == {"file"}
    assert by_template["transferred"] == {"transfer"}
    assert by_template["remind_handler"] == {"remind"}
    assert by_template["closed"] == by_template["survey"] == {"approve"}
    assert "ladder" in set().union(*by_template.values())
    for step in steps:
        assert events[step.event_id].action in {"file", "accept", "transfer", "reply", "approve"}, step
    fired = [s for s in steps if s.fired_at is not None]
    assert fired and all(events[s.event_id].action == "transfer" for s in fired if s.kind == "handle")


def test_the_case_page_and_the_sms_log_say_why(world):
    no = _walk(world)
    events, sms, steps = _rows(world, no)
    office = world.console("office")
    page = office.get(f"/admin/case/{no}").get_data(as_text=True)
    anchors = set(re.findall(r'id="((?:event|step)-\d+)"', page))
    causes = re.findall(r'class="text-muted sms-cause">.*?<a href="#((?:event|step)-\d+)">([^<]+)</a>', page, re.S)
    assert len(causes) == len(sms)
    assert {anchor for anchor, _text in causes} <= anchors  # every cause points at a line of this page
    transfer = next(e for e in events.values() if e.action == "transfer")
    assert (f"event-{transfer.id}", ) == tuple({a for a, text in causes if text.startswith("已转办")})
    assert any(text.startswith("督办阶梯") for _a, text in causes)
    planned = re.findall(r'class="small step-cause"><a href="#(event-\d+)">', page)
    assert len(planned) == len(steps) and set(planned) <= anchors
    ladder_text = next(m for m in sms if m.step_id is not None)
    detail = office.get(f"/admin/sms/message/{ladder_text.id}").get_data(as_text=True)
    assert re.search(rf'id="sms-cause"><a href="/admin/case/{no}#step-{ladder_text.step_id}">督办阶梯', detail)
