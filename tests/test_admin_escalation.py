"""The escalation pages of the console over HTTP: who may open them, the editors, the banners, the case's ladder."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from escalation import sweeper
from tests.helpers import page_csrf
from tickets.db import db
from tickets.models import Ticket


@pytest.mark.parametrize("who, calendar, policies, deadlines", [
    ("admin", 200, 200, 200), ("office", 200, 200, 200), ("dept_a", 403, 403, 200),
    ("supervisor", 403, 403, 200), ("leader", 403, 403, 200),
])
def test_who_may_open_what(world, who, calendar, policies, deadlines):
    console = world.console(who)
    assert console.get("/admin/calendar/").status_code == calendar
    assert console.get("/admin/calendar/2027").status_code == calendar
    assert console.get("/admin/policies/").status_code == policies
    assert console.get("/admin/deadlines/").status_code == deadlines
    assert console.get("/admin/deadlines/soon").status_code == deadlines


def test_anonymous_go_to_sign_in(client):
    for path in ("/admin/calendar/", "/admin/policies/", "/admin/deadlines/"):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_banners_scheduler_and_unpublished_year(world, clock):
    console = world.console("office")
    page = console.get("/admin/").get_data(as_text=True)
    assert 'id="scheduler-banner"' in page and "从未运行" in page
    assert 'id="calendar-banner-2027"' in page  # November 2026: next year has no published calendar yet
    with world.app.app_context():
        sweeper.sweep(db.session, clock())
    page = console.get("/admin/").get_data(as_text=True)
    assert 'id="scheduler-banner"' not in page
    clock.advance(seconds=91)
    assert 'id="scheduler-banner"' in console.get("/admin/").get_data(as_text=True)
    # a department handler sees the warning too, without the link to an editor it may not open
    page = world.console("dept_a").get("/admin/").get_data(as_text=True)
    assert 'id="calendar-banner-2027"' in page and "/admin/calendar/2027" not in page


def test_calendar_editor_publishes_a_year(world, clock):
    console = world.console("office")
    page = console.get("/admin/calendar/2027").get_data(as_text=True)
    assert "暂定" in page or "provisional" in page
    bad = console.post("/admin/calendar/2027", data={"days": "2028-01-01,0,元旦",
                                                     "csrf_token": page_csrf(console, "/admin/calendar/2027")})
    assert bad.status_code == 400 and 'id="calendar-error"' in bad.get_data(as_text=True)
    done = console.post("/admin/calendar/2027", data={
        "days": "2027-01-01,0,元旦\n2027-02-06,1,春节\n", "notice": "样例通知",
        "csrf_token": page_csrf(console, "/admin/calendar/2027")})
    assert done.status_code == 302
    page = console.get("/admin/calendar/2027").get_data(as_text=True)
    assert "2027-02-06" in page and "样例通知" in page
    assert 'id="calendar-banner-2027"' not in console.get("/admin/").get_data(as_text=True)
    assert "2027-01-01  周五  holiday              元旦" in world.app.test_cli_runner().invoke(
        args=["calendar", "show", "2027"]).output


def test_policy_override_sets_new_deadlines(world, clock):
    console = world.console("office")
    token = page_csrf(console, "/admin/policies/")
    bad = console.post("/admin/policies/set", data={"kind": "handle", "scope": "department:999999",
                                                    "working_days": "3", "csrf_token": token})
    assert bad.status_code == 400
    assert console.post("/admin/policies/set", data={"kind": "handle", "scope": f"department:{world.departments['A']}",
                                                     "working_days": "61", "csrf_token": token}).status_code == 400
    saved = console.post("/admin/policies/set", data={"kind": "handle", "scope": f"department:{world.departments['A']}",
                                                      "working_days": "10", "csrf_token": token})
    assert saved.status_code == 302
    assert 'id="policy-overrides"' in console.get("/admin/policies/").get_data(as_text=True)
    case = world.file()["tracking_no"]
    world.act("office", case, "accept")
    transfer = world.act("office", case, "transfer", department_id=world.departments["A"])
    assert transfer["due_at"].startswith("2026-11-30")  # ten working days from Monday 2026-11-16
    with world.app.app_context():
        override_id = db.session.scalar(sa.text("SELECT id FROM deadline_policy"))
    assert console.post(f"/admin/policies/{override_id}/delete", data={"csrf_token": token}).status_code == 302
    other = world.file()["tracking_no"]
    world.act("office", other, "accept")
    assert world.act("office", other, "transfer", department_id=world.departments["A"])["due_at"].startswith("2026-11-23")


def test_overdue_list_and_case_ladder(world, clock):
    case = world.file()["tracking_no"]
    world.act("office", case, "accept")
    world.act("office", case, "transfer", department_id=world.departments["A"])
    hidden = world.file()["tracking_no"]  # B's handler must not see A's case, nor this one of nobody's
    clock.set(2026, 11, 25, 10, 0)
    with world.app.app_context():
        sweeper.sweep(db.session, clock())
    console = world.console("office")
    page = console.get("/admin/deadlines/").get_data(as_text=True)
    assert case in page and hidden in page and 'id="deadline-list"' in page
    assert case not in world.console("dept_b").get("/admin/deadlines/").get_data(as_text=True)
    assert case in world.console("dept_a").get("/admin/deadlines/").get_data(as_text=True)
    page = console.get(f"/admin/case/{case}").get_data(as_text=True)
    assert 'id="escalation-history"' in page and page.count("waiting") + page.count("等待") >= 1
    assert "督办" in page and "系统" in page  # the sweeper acts as the system on the timeline
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == case))
        assert ticket.supervision_level == 2
