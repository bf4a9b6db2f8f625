"""The office × role × view matrix: who sees which window's cases, over the API and in every console view.

A city (root) with two counties and three townships (tests/network.py), one case filed at each window, some of them
transferred to a county's or the city's department by different windows. Every staff user of every window is then
walked through every case-bearing view: the API's list and case, and in the console every work queue (taken from
the console's own registry), the search box, the CSV export, the case page, the SMS log and each text's page, the
survey list, the appeals (申诉复核), the overdue list and the dashboard. Each must show exactly the cases the user's
window sees: a county its own and its townships', never a sibling county's (404 on a case or a text); a township
only its own; the city everything; a department handler its department's, whichever window transferred the case.

The console routes are enumerated from the URL map: a new console view must be named here, as checked or as
showing no case, or `test_every_console_route_is_classified` fails.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from admin import console
from admin.queues import QueueView, queue_filters
from admin.scope import OfficeFilter
from notify.models import SmsMessage
from tests.helpers import page_csrf
from tickets.db import db
from tickets.models import OFFICE_ROLES, OFFICE_WIDE_ROLES, SUPERVISING_ROLES, Appeal, Role, Survey, Ticket, User

CASE_LINK = re.compile(r'href="/admin/case/(BJ\d{8}-\d{4,})(?:\?queue=\w+)?"')  # a row's link (a searched number is echoed too)
WINDOWS = ("root", "c1", "t11", "t12", "c2", "t21")
# Who sees which windows' cases (office members: their window's subtree).
SUBTREE = {"root": set(WINDOWS), "c1": {"c1", "t11", "t12"}, "t11": {"t11"}, "t12": {"t12"}, "c2": {"c2", "t21"},
           "t21": {"t21"}}
MEMBERS = {  # username -> window
    "office": "root", "supervisor": "root", "leader": "root",
    "office_c1": "c1", "supervisor_c1": "c1", "leader_c1": "c1", "office_t11": "t11", "supervisor_t11": "t11",
    "leader_t11": "t11", "office_t12": "t12", "office_c2": "c2", "supervisor_c2": "c2", "leader_c2": "c2",
    "office_t21": "t21",
}
# Department handlers: the windows whose case went to their department (see `cases`).
HANDLERS = {"dept_a": {"root"}, "dept_b": set(), "dept_c1": {"c1", "t11"}, "dept_c2": {"c2"}}
EVERYONE = ("admin", *MEMBERS, *HANDLERS)

# Console endpoints (the first part of the endpoint name) that show cases or their rows, each checked below;
# and those that show none. Reports are the reports' own (per office, tests/test_reports*.py).
CASE_BEARING = {"case", "cases", "queue_intake", "queue_accepted", "queue_in_progress", "queue_review",
                "queue_returned", "queue_rectifying", "queue_closed", "queue_rejected", "queue_withdrawn", "sms_log",
                "surveys", "deadlines", "admin", "disputed", "appeals", "queue_mine", "notices", "queue_merged",
                "clusters",  # clusters: 一类事 of the cases one sees, tests/test_clusters.py
                "webhook_deliveries",  # administrators only, who see every case: tests/test_webhooks.py
                "access_log"}  # administrators only: tests/test_privacy_access.py
NO_CASES = {"auth", "api_tokens", "departments", "dispatch", "policies", "problem_types", "service_items", "sms_templates",
            "users", "work_calendar", "reports", "offices", "intake", "static", "knowledge", "webhooks"}


def cases(network) -> dict[str, str]:
    """window -> tracking number of the case filed there; some transferred by different windows."""
    world = network.world
    filed = {window: network.file(window) for window in WINDOWS}
    for who, window, department in (("office", "root", "A"), ("office_t11", "t11", "C1"),
                                    ("office_c1", "c1", "C1"), ("office_c2", "c2", "C2")):
        world.act(who, filed[window], "accept")
        world.act(who, filed[window], "transfer", department_id=world.departments[department])
    with world.app.app_context():  # a survey and an appeal row for every case (the lists show rows, whatever state)
        for no in filed.values():
            ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))
            survey = Survey(ticket_id=ticket.id, phone=ticket.phone, closes_at=ticket.created_at + timedelta(days=7),
                            score=5, rated_at=ticket.created_at)
            db.session.add(survey)
            db.session.flush()
            db.session.add(Appeal(ticket_id=ticket.id, survey_id=survey.id, filed_at=ticket.created_at, reason="申诉",
                                  department_id=ticket.department_id or world.departments["B"]))
        db.session.commit()
    return filed


def expected(who: str, filed: dict[str, str]) -> set[str]:
    windows = set(WINDOWS) if who == "admin" else SUBTREE[MEMBERS[who]] if who in MEMBERS else HANDLERS[who]
    return {filed[w] for w in windows}


def role_of(world, who: str) -> Role:
    with world.app.app_context():
        return Role(db.session.get(User, world.users[who]).role)


def shown(response) -> set[str]:
    assert response.status_code == 200, response.status_code
    return set(CASE_LINK.findall(response.get_data(as_text=True)))


def office_filter_arg(queue) -> str:
    index = next(i for i, f in enumerate(queue_filters(queue)) if isinstance(f, OfficeFilter))
    return f"flt0_{index}"


def test_the_api_shows_each_window_its_subtree(network):
    world = network.world
    filed = cases(network)
    for who in EVERYONE:
        visible = expected(who, filed)
        listed = world.get(who, "/api/v1/staff/tickets?per_page=100").get_json()
        assert {i["tracking_no"] for i in listed["items"]} == visible and listed["total"] == len(visible), who
        for no in filed.values():
            status = world.get(who, f"/api/v1/staff/tickets/{no}").status_code
            assert status == (200 if no in visible else 404), (who, no, status)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # the queries are the API's, which runs on both
def test_every_console_view_shows_each_window_its_subtree(network, clock):
    """Every user × every case-bearing console view (a loop, not a parametrization: one network, many users)."""
    world = network.world
    filed = cases(network)
    with world.app.app_context():
        messages = dict(db.session.execute(sa.select(SmsMessage.id, Ticket.tracking_no)
                                           .join(Ticket, Ticket.id == SmsMessage.ticket_id)).all())
        # every case on the 争议件 list (which lists those still to arbitrate: 退回)
        db.session.execute(sa.update(Ticket).values(disputed=True, status="returned"))
        db.session.commit()
    assert set(messages.values()) == set(filed.values())  # every case has its receipt text
    queues = [v for v in console(world.app)._views if isinstance(v, QueueView)]
    clock.advance(days=60)  # every open case is overdue now
    problems = []

    def check(who, what, got, want):
        if got != want:
            problems.append(f"{who} {what}: extra {sorted(got - want)}, missing {sorted(want - got)}")

    for who in EVERYONE:
        role, visible = role_of(world, who), expected(who, filed)
        client = world.console(who)
        for view in queues:
            if role not in view.roles:
                continue
            page = client.get(f"{view.url}/?page_size=100")
            in_queue = {no for no in visible if _status_of(world, no) in {s.value for s in view.queue.statuses}} \
                if view.queue.statuses else visible
            if view.endpoint == "queue_mine":  # 我的案件: of those, the ones this user works
                in_queue = {no for no in in_queue if _worked_by(world, no, who)}
            check(who, view.endpoint, shown(page), in_queue)
        for no in filed.values():
            check(who, f"search {no}", shown(client.get(f"/admin/cases/?search={no}")), {no} & visible)
            status = client.get(f"/admin/case/{no}").status_code
            if status != (200 if no in visible else 404):
                problems.append(f"{who} case page {no}: {status}")
        if role in OFFICE_ROLES:
            token = page_csrf(client, f"/admin/case/{sorted(visible)[0]}")
            export = client.get("/admin/cases/export/csv/")
            rows = list(csv.reader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))[1:]
            check(who, "CSV export", {row[0] for row in rows}, visible)
            check(who, "SMS log", shown(client.get("/admin/sms/?page_size=100")), visible)
            for message_id, no in messages.items():
                status = client.get(f"/admin/sms/message/{message_id}").status_code
                if status != (200 if no in visible else 404):
                    problems.append(f"{who} SMS {message_id} of {no}: {status}")
                resend = client.post(f"/admin/sms/message/{message_id}/resend",
                                     data={"csrf_token": token}).status_code
                if no not in visible and resend != 404:
                    problems.append(f"{who} resend SMS {message_id} of {no}: {resend}")
        if role in SUPERVISING_ROLES:
            check(who, "争议件", shown(client.get("/admin/disputed/")), visible)
        if role in OFFICE_WIDE_ROLES:
            check(who, "surveys", shown(client.get("/admin/surveys/?page_size=100")), visible)
        check(who, "appeals", shown(client.get("/admin/appeals/?page_size=100")), visible)  # a department: its own
        check(who, "overdue list", shown(client.get("/admin/deadlines/")), {no for no in visible
                                                                             if _open(world, no)})
        check(who, "dashboard", shown(client.get("/admin/")), {no for no in visible if _open(world, no)})
        all_cases = next(v for v in queues if v.endpoint == "cases")
        for window in WINDOWS:  # the window filter: that window's subtree, within what the user sees
            page = client.get(f"/admin/cases/?{office_filter_arg(all_cases.queue)}={network.offices[window]}")
            check(who, f"window filter {window}", shown(page), visible & {filed[w] for w in SUBTREE[window]})
    assert not problems, "\n".join(problems)


def _status_of(world, no) -> str:
    with world.app.app_context():
        return db.session.scalar(sa.select(Ticket.status).where(Ticket.tracking_no == no))


def _worked_by(world, no, who) -> bool:
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))
        return world.users[who] in (ticket.owner_id, ticket.handler_id)


def _open(world, no) -> bool:
    return _status_of(world, no) not in ("closed", "rejected")


def test_the_window_filter_is_offered_to_those_who_see_several_windows(network):
    world = network.world
    cases(network)
    for who, several in (("office", True), ("office_c1", True), ("office_t11", False), ("admin", True),
                         ("dept_c1", True)):
        page = world.console(who).get("/admin/cases/").get_data(as_text=True)
        offered = 'class="dropdown-item filter" onclick="return false;">受理窗口</a>' in page
        assert offered == several, (who, offered)


def test_every_console_route_is_classified(app):
    endpoints = {rule.endpoint.split(".")[0] for rule in app.url_map.iter_rules() if rule.rule.startswith("/admin")}
    unknown = endpoints - CASE_BEARING - NO_CASES
    assert not unknown, f"console views not in the visibility matrix: {sorted(unknown)}"
