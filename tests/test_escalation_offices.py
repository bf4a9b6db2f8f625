"""The ladder in a network of windows: 挂牌督办 (level 3) tells the parent office's supervisors too, and deadline
policies per office (a department's figure still wins)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from escalation import store
from escalation.models import EscalationStep
from notify.models import SmsMessage
from tests.helpers import sweep
from tests.network import build_network
from tickets.accounts import create_user
from tickets.db import db
from tickets.models import Deadline, Event, Ticket, User

# window -> (the department its office transfers to, the parent office, the parent's supervisors with a number)
WINDOWS = {
    "root": ("A", None, []),
    "c1": ("C1", "root", ["+8613800000101"]),
    "t11": ("C1", "c1", ["+8613800000111", "+8613800000112"]),
    "t12": ("A", "c1", ["+8613800000111", "+8613800000112"]),
    "t21": ("C2", "c2", []),  # c2's supervisor has no number on record: nobody above to text
}
OFFICE_OF_WINDOW = {"root": "office", "c1": "office_c1", "t11": "office_t11", "t12": "office_t12",
                    "t21": "office_t21"}


@pytest.fixture
def phoned(world):
    """The network with supervisors' numbers: root's and c1's (and a second c1 supervisor, a c1 supervisor who
    left, and c1's leader, who are no supervisors on duty); t11's supervisor has one too (it has no children)."""
    network = build_network(world)
    with world.app.app_context():
        session = db.session
        phones = {"supervisor": "+8613800000101", "supervisor_c1": "+8613800000111",
                  "supervisor_t11": "+8613800000199", "leader_c1": "+8613800000198"}
        for username, phone in phones.items():
            session.get(User, world.users[username]).phone = phone
        create_user(session, "supervisor_c1b", "supervisor", office_code="c1", phone="+8613800000112")
        create_user(session, "supervisor_c1_gone", "supervisor", office_code="c1", phone="+8613800000197",
                    active=False)
        session.commit()
    return network


def overdue_at(world, network, window: str) -> str:
    """A case at `window`, transferred by its office on Monday 11-16 (due Monday 11-23)."""
    no = network.file(window)
    office = OFFICE_OF_WINDOW[window]
    department = WINDOWS[window][0]
    world.act(office, no, "accept")
    world.act(office, no, "transfer", department_id=network.departments[department])
    return no


def test_level_3_tells_the_parent_offices_supervisors(world, phoned, clock):
    cases = {window: overdue_at(world, phoned, window) for window in WINDOWS}
    clock.set(2026, 11, 24, 10, 0)  # 督办 (level 2) only: nobody above is told
    sweep(world)
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SmsMessage)
                                 .where(SmsMessage.audience == "parent_office")) == 0
    clock.set(2026, 11, 26, 10, 0)  # 挂牌督办 (level 3)
    result = sweep(world)
    assert result.fired["leader"] == len(WINDOWS)

    with world.app.app_context():
        session = db.session
        for window, (_department, parent, above) in WINDOWS.items():
            ticket = session.scalar(sa.select(Ticket).where(Ticket.tracking_no == cases[window]))
            assert ticket.supervision_level == 3
            step = session.scalar(sa.select(EscalationStep).where(EscalationStep.ticket_id == ticket.id,
                                                                  EscalationStep.step == "leader"))
            texts = session.execute(sa.select(SmsMessage.audience, SmsMessage.phone, SmsMessage.template)
                                    .where(SmsMessage.step_id == step.id).order_by(SmsMessage.id)).all()
            # the department's leader, as before, then the parent's supervisors on duty with a number
            assert texts[0][0] == "leader" and [t[1] for t in texts[1:]] == above, window
            assert {t[0] for t in texts[1:]} <= {"parent_office"}
            assert {t[2] for t in texts} == {"escalation_leader"}
            assert step.sms_count == len(texts) == step.recipients
            assert step.audience == ("leader" if parent is None else "leader+parent"), window
            event = session.scalar(sa.select(Event).where(Event.ticket_id == ticket.id, Event.action == "escalate")
                                   .order_by(Event.id.desc()).limit(1))
            entry = next(s for s in event.data["steps"] if s["step"] == "leader")
            if parent is None:
                assert "parent_office" not in entry and "parent_office" not in event.data["notified"]
            else:
                assert entry["parent_office"] == {"office_id": phoned.offices[parent], "recipients": len(above),
                                                  "sms": len(above)}
                assert event.data["notified"] == {"leader": 1, "parent_office": len(above)}

    # the case page says who was told, and that nobody above could be for t21; the SMS log names the audience
    office = world.console("office")
    response = office.get(f"/admin/case/{cases['t11']}?lang=en")
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page[-3000:]
    assert "Parent office&#39;s supervisors told: 2 SMS" in page or "Parent office's supervisors told: 2 SMS" in page
    page = office.get(f"/admin/case/{cases['t21']}?lang=en").get_data(as_text=True)
    assert "the parent office has no supervisor with a mobile number on record" in page
    page = office.get(f"/admin/case/{cases['root']}?lang=en").get_data(as_text=True)
    assert "Parent office" not in page
    log = office.get("/admin/sms/?lang=en").get_data(as_text=True)
    assert "Parent office&#39;s supervisor" in log or "Parent office's supervisor" in log


def test_deadline_policies_per_office(world, network, clock):
    """An office's figure applies to the cases it owns (not to its children's); a department's still wins."""
    with world.app.app_context():
        session = db.session
        store.set_override(session, "handle", f"office:{network.offices['c1']}", "10", by=None, now=clock())
        store.set_override(session, "handle", "problem_type:too_slow", "7", by=None, now=clock())
        store.set_override(session, "handle", f"department:{network.departments['C2']}", "2", by=None, now=clock())
        store.set_override(session, "handle", f"office:{network.offices['c2']}", "12", by=None, now=clock())
        session.commit()
        store.invalidate()
    expected = {("c1", "C1"): 10, ("c1", "A"): 10, ("t11", "C1"): 7, ("c2", "C2"): 2, ("c2", "A"): 12,
                ("root", "A"): 7}
    got = {}
    for (window, department), days in expected.items():
        no = network.file(window, problem_type="too_slow")
        office = OFFICE_OF_WINDOW.get(window, f"office_{window}")
        world.act(office, no, "accept")
        world.act(office, no, "transfer", department_id=network.departments[department])
        with world.app.app_context():
            got[(window, department)] = db.session.scalar(
                sa.select(Deadline.working_days).join(Ticket, Ticket.id == Deadline.ticket_id)
                .where(Ticket.tracking_no == no, Deadline.kind == "handle"))
    assert got == expected


def test_an_office_reminder_goes_to_the_owning_windows_staff_only(network, clock):
    """The accept deadline's reminder (audience office) texts the staff of the window that has the case, not every
    window's staff in the city."""
    from escalation.models import EscalationStep
    from notify.models import SmsMessage
    from tickets.models import User

    world = network.world
    with world.app.app_context():
        for i, who in enumerate(("office", "office_c1", "office_t11", "office_c2")):
            db.session.get(User, world.users[who]).phone = f"+861390000{i:04d}"
        db.session.commit()
    case = network.file("t11")
    clock.advance(days=10)
    sweep(world)
    with world.app.app_context():
        step = db.session.scalar(sa.select(EscalationStep).where(EscalationStep.step == "office_reminder"))
        assert step is not None and step.fired_at is not None, "the accept reminder fired"
        sent = set(db.session.scalars(sa.select(SmsMessage.phone).where(SmsMessage.audience == "office")))
    assert sent == {"+8613900000002"}, (case, sent)


def test_a_window_sets_deadline_policies_for_its_own_subtree_only(network):
    """The policy page: a county's staff set a figure for their county, a township below it and their county's
    departments; never for a sibling county, a city department, or the city-wide problem types (403, nothing kept)."""
    from escalation.models import PolicyOverride
    from tests.helpers import page_csrf

    world = network.world
    county = world.console("office_c1")
    page = county.get("/admin/policies/").get_data(as_text=True)
    assert f'value="office:{network.offices["t11"]}"' in page and f'value="office:{network.offices["c2"]}"' not in page
    assert f'value="department:{world.departments["C1"]}"' in page
    assert f'value="department:{world.departments["A"]}"' not in page and 'value="problem_type:' not in page
    token = page_csrf(county, "/admin/policies/")
    for scope in (f"office:{network.offices['c2']}", f"department:{world.departments['A']}", "problem_type:other",
                  f"department:{world.departments['C2']}"):
        refused = county.post("/admin/policies/set", data={"kind": "handle", "scope": scope, "working_days": "9",
                                                          "csrf_token": token})
        assert refused.status_code == 403, scope
    for scope in (f"office:{network.offices['t11']}", f"department:{world.departments['C1']}"):
        saved = county.post("/admin/policies/set", data={"kind": "handle", "scope": scope, "working_days": "9",
                                                        "csrf_token": token})
        assert saved.status_code == 302, scope
    city = world.console("office")
    city_token = page_csrf(city, "/admin/policies/")
    assert city.post("/admin/policies/set", data={"kind": "handle", "scope": f"office:{network.offices['c2']}",
                                                  "working_days": "7", "csrf_token": city_token}).status_code == 302
    with world.app.app_context():
        rows = db.session.scalars(sa.select(PolicyOverride)).all()
        assert {(r.office_id, r.department_id, r.working_days) for r in rows} == {
            (network.offices["t11"], None, 9), (None, world.departments["C1"], 9), (network.offices["c2"], None, 7)}
        sibling = next(r.id for r in rows if r.office_id == network.offices["c2"])
    # the sibling county's figure is not the county's to see or remove
    assert "西山县" not in county.get("/admin/policies/").get_data(as_text=True).split('id="policy-overrides"')[-1] \
        .split("</table>")[0]
    assert county.post(f"/admin/policies/{sibling}/delete", data={"csrf_token": token}).status_code == 404
