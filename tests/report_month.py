"""A hand-built November 2026 walked through the real workflow, whose figures were worked out by hand.

No holidays fall in Oct 28 – Dec 3 2026, so working days are Monday to Friday. Handling deadlines are
5 working days, return windows 2, surveys stay open 7 days (no sweep runs here: nothing is defaulted). Departments: A 市场监督管理局, B 人社局.

  T1  filed, accepted, sent to A on Oct 28 (not in November's cohort); reminded Oct 30 (October's);
      replied and approved Nov 3 (handle due Nov 4: on time). Survey Nov 3 – Nov 10, never answered.
  T2  Nov 2 accepted, A; replied and approved Nov 6 (due Nov 9). Rated 1 on Nov 7.
  T3  Nov 2 accepted, B; extension of 3 working days approved Nov 5 (due Nov 9 → Nov 12); replied and
      approved Nov 11: on time thanks to the extension. Rated 3 on Nov 12.
  T4  Nov 3 accepted, A (due Nov 10); escalated to level 2 on Nov 11; replied and approved Nov 12
      (late). Rated 5 on Nov 13 (差评) → rectifying; return visit Nov 14; replied again and approved
      Nov 16. Second survey Nov 16 – Nov 23, never answered.
  T5  Nov 4 rejected: counted nowhere.
  T6  Nov 4 accepted, A; A returns it Nov 5; the office sends it to B Nov 5 (due Nov 12); escalated to
      level 3 Nov 17; reminded Nov 20; still open at the month's end.
  T7  Nov 5 accepted and resolved by the office itself (no department). Rated 4 on Nov 6 (差评);
      explained Nov 9 (closed again, no new survey).
  T8  filed Nov 25, accepted and sent to A Nov 26; closed Dec 2 (after the month).
  T9  Nov 27 accepted, B; replied and approved Nov 30. Survey closes Dec 7 (December's); rated 2 Dec 1.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from tests.helpers import TZ
from tickets.db import db
from tickets.models import Department, Event, ReturnVisit, Survey, Ticket

MONTH = "2026-11"
A_NAME, B_NAME = "市场监督管理局", "人力资源和社会保障局"

# Office, worked out by hand (see the module docstring):
OFFICE = {
    "accepted": 7,            # T2 T3 T4 T6 T7 T8 T9 (T1 accepted in October, T5 rejected)
    "closed": 5,              # T2 T3 T4 T7 T9 closed at Nov 30 24:00 (T6 open, T8 closed in December)
    "closure_rate": 0.7143,   # 5 / 7
    "closed_in_month": 6,     # T1 T2 T3 T4 T7 T9 (T4 closed twice, counted once)
    "closed_on_time": 5,      # all but T4 (handle due Nov 10, replied Nov 12)
    "on_time_rate": 0.8333,   # 5 / 6
    "avg_handling_days": 4.5,  # (T1 4 + T2 4 + T3 7 + T4 9 + T7 2 + T9 1) / 6 = 27 / 6
    "overdue": 2,             # T4 (due Nov 10, replied Nov 12), T6 (due Nov 12, still open)
    "returned": 1,            # T6 by A
    "extended": 1,            # T3
    "supervised_1": 1,        # T6 reminded (T1's reminder was in October)
    "supervised_2": 1,        # T4
    "supervised_3": 1,        # T6
    "surveys": 6,             # closing in November: T1, T2, T3, T4 (two rounds), T7; T9's closes Dec 7
    "rated": 4,               # T2 1, T3 3, T4 5, T7 4
    "participation_rate": 0.6667,  # 4 / 6
    "satisfied": 2,           # scores 1 and 3
    "satisfaction_rate": 0.5,  # 2 / 4
    "good": 1,
    "good_rate": 0.25,        # 1 / 4
    "bad": 2,                 # T4 (5), T7 (4)
    "bad_rectified": 2,       # T4 approved again Nov 16, T7 explained Nov 9
    "bad_rectified_rate": 1.0,
    "bad_visited": 1,         # T4
    "return_visit_rate": 0.5,
}
DEPARTMENT_A = {
    "accepted": 3, "closed": 2, "closure_rate": 0.6667,               # T2 T4 T8; T2 T4 closed
    "closed_in_month": 3, "closed_on_time": 2, "on_time_rate": 0.6667,  # T1 T2 T4; T4 late
    "avg_handling_days": 5.7,                                          # (4 + 4 + 9) / 3 = 5.67
    "overdue": 1, "returned": 1, "extended": 0, "supervised_2": 1,
    "surveys": 4, "rated": 2, "satisfaction_rate": 0.5, "good_rate": 0.5, "bad": 1, "return_visit_rate": 1.0,
}
DEPARTMENT_B = {
    "accepted": 3, "closed": 2, "closure_rate": 0.6667,               # T3 T6 T9; T3 T9 closed
    "closed_in_month": 2, "closed_on_time": 2, "on_time_rate": 1.0,
    "avg_handling_days": 4.0,                                          # (7 + 1) / 2
    "overdue": 1, "returned": 0, "extended": 1, "supervised_1": 1, "supervised_3": 1,
    "surveys": 1, "rated": 1, "satisfaction_rate": 1.0, "good_rate": 0.0, "bad": 0, "bad_rectified_rate": None,
}


def at(clock, month, day, hour=9, minute=0):
    return clock.set(2026, month, day, hour, minute)


def _escalate(app, tracking_no, level, when):
    with app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == tracking_no))
        db.session.add(Event(ticket_id=ticket.id, at=when, action="escalate", actor_role="system",
                             data={"level": level, "kind": "handle", "round": 1, "step": f"level{level}"}))
        db.session.commit()


def _return_visit(app, tracking_no, when):
    with app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == tracking_no))
        survey = db.session.scalar(sa.select(Survey).where(Survey.ticket_id == ticket.id, Survey.round == 1))
        db.session.add(ReturnVisit(ticket_id=ticket.id, survey_id=survey.id, visited_at=when, contacted=True,
                                   outcome="已电话回访，群众表示理解"))
        db.session.commit()


def build_month(world, clock) -> dict:
    """Walk T1..T9 at the times above (filed and rated through the API as citizens do, the staff's steps through the
    workflow: `World.step`); returns {"T1": filed, ...}."""
    A, B = world.departments["A"], world.departments["B"]
    t = {}

    def file(name, **extra):
        t[name] = world.file(**extra)
        return t[name]["tracking_no"]

    def act(who, name, action, **body):
        world.step(who, t[name]["tracking_no"], action, **body)

    def rate(name, score):
        no, code = t[name]["tracking_no"], t[name]["query_code"]
        response = world.client.post(f"/api/v1/tickets/{no}/rating?code={code}", json={"score": score})
        assert response.status_code == 200, response.get_json()

    def accept_and_send(name, department):
        act("office", name, "accept")
        act("office", name, "transfer", department_id=department)

    def reply_and_approve(name, who):
        act(who, name, "reply", content="已办理完毕。")
        act("office", name, "approve")

    at(clock, 10, 28)
    file("T1", service_item="营业执照变更")
    accept_and_send("T1", A)
    at(clock, 10, 30)
    act("office", "T1", "remind")
    at(clock, 11, 2)
    file("T2", service_item="营业执照变更")
    accept_and_send("T2", A)
    file("T3", problem_type="cannot_handle", service_item="社保转移")
    accept_and_send("T3", B)
    at(clock, 11, 3)
    reply_and_approve("T1", "dept_a")
    file("T4", service_item="营业执照变更")
    accept_and_send("T4", A)
    at(clock, 11, 4)
    file("T5")
    act("office", "T5", "reject", reason="涉法涉诉信访，请依法向法院起诉。")
    file("T6", problem_type="too_hard")
    accept_and_send("T6", A)
    at(clock, 11, 5)
    act("dept_b", "T3", "request_extension", working_days=3, reason="需现场核查。")
    act("office", "T3", "decide_extension", approve=True)
    act("dept_a", "T6", "return", reason="不属于本部门职责。")
    act("office", "T6", "transfer", department_id=B)
    file("T7")
    act("office", "T7", "accept")
    act("office", "T7", "resolve", content="已当场答复。")
    at(clock, 11, 6)
    reply_and_approve("T2", "dept_a")
    rate("T7", 4)
    at(clock, 11, 7)
    rate("T2", 1)
    at(clock, 11, 9)
    act("office", "T7", "explain", content="政策规定如此，已向群众说明。")
    at(clock, 11, 11)
    reply_and_approve("T3", "dept_b")
    _escalate(world.app, t["T4"]["tracking_no"], 2, clock.now)
    at(clock, 11, 12)
    reply_and_approve("T4", "dept_a")
    rate("T3", 3)
    at(clock, 11, 13)
    rate("T4", 5)
    at(clock, 11, 14)
    _return_visit(world.app, t["T4"]["tracking_no"], clock.now)
    at(clock, 11, 16)
    reply_and_approve("T4", "dept_a")
    at(clock, 11, 17)
    _escalate(world.app, t["T6"]["tracking_no"], 3, clock.now)
    at(clock, 11, 20)
    act("office", "T6", "remind")
    at(clock, 11, 25)
    file("T8", service_item="营业执照变更")
    at(clock, 11, 26)
    accept_and_send("T8", A)
    at(clock, 11, 27)
    file("T9", service_item="营业执照变更")
    accept_and_send("T9", B)
    at(clock, 11, 30)
    reply_and_approve("T9", "dept_b")
    at(clock, 12, 1)
    rate("T9", 2)
    at(clock, 12, 2)
    reply_and_approve("T8", "dept_a")
    at(clock, 12, 3, 10)
    return t


def when(month, day, hour=9):
    return datetime(2026, month, day, hour, tzinfo=TZ)


def small_month(world, clock, items=("营业执照变更",), names=None, to="A") -> list[str]:
    """November 2026: one case per service item, accepted and sent on Nov 2 to the departments `to` in turn
    (each still open, so overdue, at the month's end)."""
    if names:
        with world.app.app_context():
            for code, name in names.items():
                db.session.get(Department, world.departments[code]).name = name
            db.session.commit()
    clock.set(2026, 11, 2, 9)
    numbers = []
    for index, item in enumerate(items):
        no = world.file(service_item=item)["tracking_no"]
        world.step("office", no, "accept")
        world.step("office", no, "transfer", department_id=world.departments[to[index % len(to)]])
        numbers.append(no)
    clock.set(2026, 12, 3, 10)
    return numbers
