"""The console's lists: every dashboard card opens the list it counts, each queue holds what its name says,
and lists shown newest first are in time order even when rows were written out of id order."""
from __future__ import annotations

import html
import re

import sqlalchemy as sa

from tests.helpers import an_office_in_every_state, at, replied, transferred
from tickets.db import db
from tickets.models import Survey, Ticket

ROLES = ("admin", "office", "dept_a", "dept_b", "supervisor", "leader")
CASE_LINK = re.compile(r'href="/admin/case/(BJ[0-9-]+)(?:\?queue=\w+)?"')
CARD = re.compile(r'<a class="stat-card[^"]*" href="([^"]+)"[^>]*>.*?<div class="text-muted">([^<]+)</div>\s*'
                  r'<div class="stat-number">(\d+)</div>', re.S)


def listed_cases(client, url: str) -> list[str]:
    page = client.get(html.unescape(url))
    assert page.status_code == 200, url
    return CASE_LINK.findall(page.get_data(as_text=True))


def statuses(world, numbers) -> dict[str, str]:
    with world.app.app_context():
        return dict(db.session.execute(sa.select(Ticket.tracking_no, Ticket.status)
                                       .where(Ticket.tracking_no.in_(numbers))).all())


def test_every_dashboard_card_counts_the_list_it_opens(world, clock):
    an_office_in_every_state(world, clock)
    checked = 0
    for who in ROLES:
        client = world.console(who)
        dashboard = client.get("/admin/").get_data(as_text=True)
        cards = CARD.findall(dashboard)
        assert len(cards) >= 6, (who, cards)  # new today, due today, overdue, and the role's queues
        for url, name, number in cards:
            rows = listed_cases(client, url)
            assert len(rows) == len(set(rows)) == int(number), (who, name.strip(), url, rows)
            checked += int(number)
    assert checked > 30  # the lists are not all empty: the comparison means something


def test_the_day_cards_for_a_department(world, clock):
    cases = an_office_in_every_state(world, clock)
    client = world.console("dept_b")
    cards = {name.strip(): (url, int(number)) for url, name, number in CARD.findall(client.get("/admin/").get_data(as_text=True))}
    # B leads 'due_today', 'replied' and 'returned' and helps with 'shared'; none of them was filed today
    # except 'replied' and 'returned'.
    assert set(listed_cases(client, cards["今日新增"][0])) == {cases["replied"], cases["returned"]}
    assert listed_cases(client, cards["今日到期"][0]) == [cases["due_today"]]
    assert listed_cases(client, cards["已超期"][0]) == []


def test_each_queue_holds_what_its_name_says(world, clock):
    cases = an_office_in_every_state(world, clock)
    office = world.console("office")
    queues = {"/admin/queue-intake/": ("submitted", "待受理"), "/admin/queue-accepted/": ("accepted", "待转办"),
              "/admin/queue-in-progress/": ("transferred", "办理中"), "/admin/queue-review/": ("replied", "待审核"),
              "/admin/queue-returned/": ("returned", "已退回"), "/admin/queue-closed/": ("closed", "已办结"),
              "/admin/queue-rejected/": ("rejected", "不予受理")}
    for url, (status, name) in queues.items():
        page = office.get(url).get_data(as_text=True)
        assert f"<title>{name} · " in page
        rows = CASE_LINK.findall(page)
        assert rows and set(statuses(world, rows).values()) == {status}, (url, rows)
    assert cases["accepted"] not in listed_cases(office, "/admin/queue-intake/")
    assert cases["rejected"] not in listed_cases(office, "/admin/queue-closed/")
    # department handlers: their own work, the finished cases they led, and the whole list; nothing of the office's
    menu = world.console("dept_a").get("/admin/").get_data(as_text=True)
    for url in ("/admin/queue-in-progress/", "/admin/queue-review/", "/admin/queue-rectifying/", "/admin/queue-closed/",
                "/admin/cases/"):
        assert f'href="{url}"' in menu
    for url in ("/admin/queue-intake/", "/admin/queue-accepted/", "/admin/queue-returned/", "/admin/queue-rejected/"):
        assert f'href="{url}"' not in menu
        assert world.console("dept_a").get(url).status_code == 403


def test_newest_first_lists_are_in_time_order(world, clock):
    """Rows written with earlier times after later ones (as the demo's back-dated history does), and ties."""
    at(clock, 2026, 11, 16, 10)
    later = [replied(world, "A") for _ in range(2)]  # filed, and their SMS written, at the same moment
    at(clock, 2026, 11, 16, 9)
    earlier = [replied(world, "A") for _ in range(2)]
    at(clock, 2026, 11, 16, 16)
    for no in earlier:  # closed (survey opened) at 16:00 ...
        world.act("office", no, "approve")
    at(clock, 2026, 11, 16, 15)
    for no in later:  # ... and these, written after them, at 15:00
        world.act("office", no, "approve")
    office = world.console("office")
    with world.app.app_context():
        def newest_first(model, column):
            rows = db.session.execute(sa.select(model.id, column)).all()
            return [i for i, _t in sorted(rows, key=lambda r: (r[1], r[0]), reverse=True)]

        tickets = dict(db.session.execute(sa.select(Ticket.id, Ticket.tracking_no)).all())
        filed = [tickets[i] for i in newest_first(Ticket, Ticket.created_at)]
        survey_cases = dict(db.session.execute(sa.select(Survey.id, Survey.ticket_id)).all())
        surveyed = [tickets[survey_cases[i]] for i in newest_first(Survey, Survey.opened_at)]
        from notify.models import SmsMessage
        texts = newest_first(SmsMessage, SmsMessage.created_at)
    assert filed == later[::-1] + earlier[::-1]  # the setting is what the test means: ids out of time order
    assert listed_cases(office, "/admin/cases/") == filed
    assert listed_cases(office, "/admin/queue-closed/") == filed
    assert listed_cases(office, "/admin/surveys/") == surveyed == earlier[::-1] + later[::-1]
    sms_page = office.get("/admin/sms/").get_data(as_text=True)
    assert [int(i) for i in re.findall(r'href="/admin/sms/message/(\d+)"', sms_page)] == texts
    assert len(texts) > 10


def test_lists_sorted_by_deadline_break_ties_by_id(world, clock):
    """Five cases due at the same 23:59 are listed in one order, which follows the sort's direction."""
    numbers = [transferred(world, "A", working_days=3) for _ in range(5)]
    office = world.console("office")
    assert listed_cases(office, "/admin/queue-in-progress/") == numbers
    # sorted by a column in the other direction, the tie-break follows it
    assert listed_cases(office, "/admin/queue-in-progress/?sort=8&desc=1") == numbers[::-1]


def test_history_lists_page_through_every_case_without_counting_them(world, clock):
    """The history lists (closed, rejected, all cases) page with previous/next instead of counting every case in
    the viewer's scope: following "next" from the first page lists every case once, newest first; a queue of open
    work keeps its numbered pager."""
    filed = []
    for minute in range(43):
        at(clock, 2026, 11, 16, 9, minute)
        filed.append(world.file()["tracking_no"])
    office = world.console("office")
    seen, page, pages = [], 0, 0
    while True:
        body = office.get(f"/admin/cases/?page={page}").get_data(as_text=True)
        rows = CASE_LINK.findall(body)
        seen += rows
        pages += 1
        has_next = f'href="/admin/cases/?page={page + 1}&amp;' in body
        assert has_next == (len(rows) == 20), (page, len(rows))
        if not has_next:
            break
        page += 1
    assert pages == 3 and seen == filed[::-1]
    intake = office.get("/admin/queue-intake/").get_data(as_text=True)
    assert 'href="/admin/queue-intake/?page=2&amp;' in intake  # page numbers: 43 cases, 3 pages of 20
