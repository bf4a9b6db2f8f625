"""撤回: a citizen takes back a case the office has not accepted yet; it ends `withdrawn`, its acceptance deadline and
the office's reminders with it; once accepted it cannot be withdrawn."""
from __future__ import annotations

import sqlalchemy as sa

from tests.helpers import page_csrf
from tickets.db import db
from tickets.models import Deadline, Ticket


def withdraw(world, filed, **body):
    return world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/withdraw?code={filed['query_code']}", json=body)


def test_a_case_not_yet_accepted_is_withdrawn_and_stays_so(world, clock):
    clock.set(2026, 11, 23, 9)
    filed = world.file()
    no = filed["tracking_no"]
    response = withdraw(world, filed, reason="事情已经办好了。")
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["status_label"], body["may_withdraw"]) == ("withdrawn", "已撤回", False)
    assert body["timeline"][-1]["label"] == "群众撤回" and body["timeline"][-1]["note"] == "事情已经办好了。"
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))
        (accept,) = db.session.scalars(sa.select(Deadline).where(Deadline.ticket_id == ticket.id)).all()
        assert (accept.kind, accept.outcome, ticket.due_at) == ("accept", "withdrawn", None)
    # final: the office cannot accept it, the citizen cannot withdraw it again
    assert world.act("office", no, "accept", expect=409)["error"]["code"] == "invalid_transition"
    assert withdraw(world, filed).status_code == 409
    # the office finds it among the withdrawn cases, not in the intake queue
    office = world.console("office")
    assert no in office.get("/admin/queue-withdrawn/").get_data(as_text=True)
    assert no not in office.get("/admin/queue-intake/").get_data(as_text=True)


def test_once_accepted_it_cannot_be_withdrawn_and_bad_input_is_refused(world):
    filed = world.file()
    assert withdraw(world, filed, reason="长" * 1001).status_code == 422
    assert world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/withdraw?code=WRONG", json={}).status_code == 404
    world.act("office", filed["tracking_no"], "accept")
    response = withdraw(world, filed)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "invalid_transition"


def test_the_case_page_asks_for_a_confirmation(world):
    client = world.app.test_client()
    client.post("/", data={"name": "张三", "phone": "13800138000", "problem_type": "too_slow", "privacy": "y",
                           "description": "营业执照变更办了一个月还没有结果。", "csrf_token": page_csrf(client)})
    filed = client.get("/filed").get_data(as_text=True)
    import re
    no = re.search(r'id="tracking-no">([^<]+)<', filed).group(1)
    page = client.get(f"/track/{no}").get_data(as_text=True)
    assert 'id="withdraw-form"' in page and "撤回反映" in page
    token = page_csrf(client, f"/track/{no}")
    unticked = client.post(f"/track/{no}/withdraw", data={"csrf_token": token, "reason": "办好了"})  # the box not ticked
    page = unticked.get_data(as_text=True)
    assert unticked.status_code == 422 and "请勾选确认后再撤回。" in page and "办好了" in page  # what was typed stays
    assert world.ticket("office", no)["status"] == "submitted"
    assert client.post(f"/track/{no}/withdraw", data={"confirm": "y"}).status_code == 400  # no CSRF token: nothing
    assert world.ticket("office", no)["status"] == "submitted"
    done = client.post(f"/track/{no}/withdraw", data={"csrf_token": token, "confirm": "y", "reason": "已办好"})
    assert done.status_code == 303
    page = client.get(f"/track/{no}").get_data(as_text=True)
    assert "您的反映已撤回" in page and 'id="withdraw-form"' not in page and "已撤回" in page
    assert world.ticket("office", no)["status"] == "withdrawn"


def test_the_offices_reminder_is_called_off(world, clock):
    from tests.helpers import give_phones, steps, sweep

    give_phones(world)
    clock.set(2026, 11, 23, 9)
    filed = world.file()
    planned = steps(world, filed["tracking_no"])
    assert ("accept", 1, "office_reminder") in planned and not planned[("accept", 1, "office_reminder")][2]
    assert withdraw(world, filed).status_code == 200
    assert steps(world, filed["tracking_no"])[("accept", 1, "office_reminder")][2]  # cancelled
    clock.set(2026, 11, 26, 9)
    assert sum(sweep(world).fired.values()) == 0


def test_the_monthly_report_counts_withdrawn_cases_apart(world, clock):
    from reports import metrics
    from reports.figures import monthly_figures

    clock.set(2026, 11, 23, 9)
    withdraw(world, world.file())
    kept = world.file()
    world.act("office", kept["tracking_no"], "accept")
    clock.set(2026, 12, 2, 9)
    with world.app.app_context():
        figures = monthly_figures(db.session, metrics.Month.parse("2026-11"))
    assert (figures["office"]["withdrawn"], figures["office"]["accepted"]) == (1, 1)
    assert figures["unassigned"]["withdrawn"] == 1  # no department ever had it
    assert all(row["withdrawn"] == 0 for row in figures["departments"])


# --- 补充材料 ----------------------------------------------------------------------------------------------------

def supplement(world, filed, **body):
    return world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/supplement?code={filed['query_code']}",
                             json=body)


def test_information_added_by_the_citizen_reaches_the_handler(world, clock):
    from tests.helpers import give_phones, HANDLER_PHONE, OFFICE_PHONE
    from tests.sms_support import messages

    give_phones(world)
    clock.set(2026, 11, 23, 9)
    filed = world.file()
    no = filed["tracking_no"]
    response = supplement(world, filed, content="补充：营业执照注册号是 91350100MA12345678。")
    assert response.status_code == 200
    assert response.get_json()["timeline"][-1]["note"] == "补充：营业执照注册号是 91350100MA12345678。"
    # no department yet: the office's staff are told; once transferred, the department's handlers
    assert [m.phone for m in messages(world.app, template="supplement_handler")] == [OFFICE_PHONE]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    before = world.ticket("dept_a", no)["version"]
    clock.set(2026, 11, 23, 10)
    assert supplement(world, filed, content="补充：窗口当时说缺少章程。").status_code == 200
    assert [m.phone for m in messages(world.app, template="supplement_handler")][-1] == HANDLER_PHONE
    staff = world.ticket("dept_a", no)
    assert staff["version"] == before  # the handler's open form stays valid
    assert [i["content"] for i in staff["new_information"]] == ["补充：窗口当时说缺少章程。"]
    page = world.console("dept_a").get(f"/admin/case/{no}").get_data(as_text=True)
    assert 'id="new-information"' in page and "窗口当时说缺少章程" in page
    clock.set(2026, 11, 23, 11)
    world.act("dept_a", no, "reply", content="已办结。")
    assert world.ticket("dept_a", no)["new_information"] == []  # answered since


def test_information_is_refused_once_closed_and_when_empty(world):
    filed = world.file()
    assert supplement(world, filed, content=" ").status_code == 422
    assert supplement(world, filed, content="长" * 2001).status_code == 422
    assert withdraw(world, filed).status_code == 200
    response = supplement(world, filed, content="还想补充一点。")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "invalid_transition"
