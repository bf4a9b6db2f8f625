"""交办单: a case on paper for a department that signs it (/admin/case/<no>/slip.pdf and the staff API's), read
back with pypdf: its facts, the masked phone, the deadline, the instructions, any text printed as typed, and who
may print it."""
from __future__ import annotations

from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask_babel import force_locale, gettext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports import fonts, slip
from tests.helpers import examples
from tests.report_figures import drawable, left_to_right, pdf_pages, pdf_text, squash
from tickets import clock
from tickets.db import db
from tickets.models import Event, Ticket, User
from tickets.workflow import Actor

HOSTILE = "<b>&amp;</font>"
DESCRIPTION = f"办理居住证要求提供房东证明，{HOSTILE} 房东在外地无法到场。\n<img src=\"/etc/passwd\"/> 来回跑了四次。"
INSTRUCTIONS = "请与房东电子签核实，三日内答复 <i>&lt;急&gt;"


SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the same SQL on both: drawing is what is tested


def said(app, msgid: str, lang: str = "zh_CN", **values) -> str:
    """What the slip prints for `msgid` in `lang` (whatever the catalog holds now), squashed as read back."""
    with app.test_request_context(), force_locale(lang):
        return squash(gettext(msgid, **values))


def transferred_case(world, **filing) -> str:
    no = world.file(name="李梅", phone="139 1234 5678", service_item="居住证 & 房屋租赁", description=DESCRIPTION,
                    **filing)["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"], working_days=3,
              co_department_ids=[world.departments["B"]], instructions=INSTRUCTIONS)
    return no


def slip_of(client, no, expect=200):
    response = client.get(f"/admin/case/{no}/slip.pdf")
    assert response.status_code == expect, response.get_data(as_text=True)[:500]
    return response


@SQLITE_ONLY
def test_the_slip_of_a_transferred_case(world):
    """Monday 2026-11-16 09:00, three working days: due Thursday at the end of the day."""
    no = transferred_case(world)
    response = slip_of(world.console("office"), no)
    assert response.mimetype == "application/pdf"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("inline;") and f"filename*=UTF-8''{quote(f'交办单-{no}.pdf')}" in disposition
    assert f'filename="slip-{no}.pdf"' in disposition
    assert response.headers["Cache-Control"] == "no-store"  # a citizen's name and words: never kept by a cache
    text = squash(pdf_text(response.data))
    for expected in (no, "市场监督管理局", "人力资源和社会保障局", "李梅", "居住证&房屋租赁", "2026-11-1923:59",
                     squash(INSTRUCTIONS), squash(DESCRIPTION), "139****5678", "office"):
        assert expected in text, expected
    assert said(world.app, "%(n)s working days", n=3) in text
    # the whole number is on the case page for the office, never on paper that travels
    assert "1391234" not in text and "13912345678" not in text and "+86" not in text


@SQLITE_ONLY
def test_markup_in_what_people_type_prints_literally(world):
    """The description, the name and the instructions reach ReportLab escaped: nothing is read as markup."""
    no = transferred_case(world)
    text = pdf_text(slip_of(world.console("office"), no).data)
    assert HOSTILE in text and '<img src="/etc/passwd"/>' in text and "<i>&lt;急&gt;" in text
    assert "root:" not in text


@SQLITE_ONLY
def test_a_case_not_transferred_yet_still_prints(world):
    no = world.file()["tracking_no"]
    world.act("office", no, "accept")
    text = squash(pdf_text(slip_of(world.console("office"), no).data))
    assert no in text and said(world.app, "Not transferred yet") in text


@SQLITE_ONLY
def test_leaders_instructions_and_a_provisional_deadline(world, clock):
    """批示 are the case's `instruct` events, each with its author; a deadline in an unpublished year says so."""
    clock.set(2026, 12, 28, 9, 0)  # five working days from here end in 2027, whose calendar is not published
    no = world.file()["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))
        db.session.add(Event(ticket_id=ticket.id, at=clock.now, actor_id=world.users["leader"], actor_role="leader",
                             action="instruct", from_status=ticket.status, to_status=ticket.status,
                             note="请市场监管局本周内办结 <u>并回复</u>"))
        db.session.commit()
    text = squash(pdf_text(slip_of(world.console("office"), no).data))
    assert squash("请市场监管局本周内办结 <u>并回复</u>") in text and "leader" in text
    assert said(world.app, "%(due)s; provisional: the working-day calendar of that year is not published yet",
                due="").lstrip(";；,，") in text


@SQLITE_ONLY
def test_the_slip_follows_the_console_language(world, console):
    no = transferred_case(world)
    text = squash(pdf_text(slip_of(console("office", lang="en"), no).data))
    for expected in ("Transferslip", "Leaddepartment", "Handler'ssignature", "Reviewer'ssignature", "Datereceived",
                     "Transferinstructions", "3workingdays"):
        assert expected in text, expected


@SQLITE_ONLY
def test_the_slip_speaks_chinese_with_the_signature_lines(world):
    """The wording on paper (this test waits for the catalog to translate the slip's messages)."""
    no = transferred_case(world)
    text = squash(pdf_text(slip_of(world.console("office"), no).data))
    for expected in ("交办单", "承办单位（盖章）", "承办人签字", "签收日期", "办理结果", "审核人签字", "转办要求", "领导批示",
                     "办理时限"):
        assert expected in text, expected


def test_who_may_print_it(world):
    """Whoever sees the case: the office, the lead and co-departments; another department gets the same 404 as for
    a case that does not exist; the anonymous are sent to sign in."""
    no = transferred_case(world)  # lead A, co-department B
    for who in ("office", "dept_a", "dept_b", "supervisor", "leader"):
        assert slip_of(world.console(who), no).mimetype == "application/pdf", who
    other = world.file()["tracking_no"]
    world.act("office", other, "accept")
    world.act("office", other, "transfer", department_id=world.departments["C"])
    slip_of(world.console("dept_a"), other, expect=404)
    slip_of(world.console("dept_a"), "BJ20000101-0001", expect=404)
    response = world.app.test_client().get(f"/admin/case/{no}/slip.pdf")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_the_staff_api_serves_the_same_slip(world):
    no = transferred_case(world)
    response = world.get("office", f"/api/v1/staff/tickets/{no}/slip.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert no in pdf_text(response.data) and "139****5678" in pdf_text(response.data)
    english = world.client.get(f"/api/v1/staff/tickets/{no}/slip.pdf",
                               headers={**world.headers("dept_a"), "Accept-Language": "en"})
    assert "Transfer slip" in pdf_text(english.data)
    assert world.get("dept_b", f"/api/v1/staff/tickets/{world.file()['tracking_no']}/slip.pdf").status_code == 404
    answer = world.get(None, f"/api/v1/staff/tickets/{no}/slip.pdf")
    assert answer.status_code == 401 and answer.get_json()["error"]


# --- any text ---------------------------------------------------------------------------------------------

MARKUP = st.sampled_from([HOSTILE, "<b>", "</para>", '<img src="/etc/passwd"/>', "<br/>", "&", "&#0;", "&nbsp;", "<",
                          ">", "]]>", "<!--", '<font face="/etc/passwd">', "%s", "%(x)s", "\\", "\n", "\r\n", "\t"])
CHINESE = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=1, max_size=30)
# any character but right-to-left letters, which pypdf reads back reordered (`report_figures.left_to_right`)
ANYTHING = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                   max_size=10).map(left_to_right)
TEXT = st.lists(st.one_of(MARKUP, CHINESE, ANYTHING), max_size=12).map("".join)


@pytest.fixture
def base_facts(world):
    no = transferred_case(world)
    with world.app.test_request_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))
        actor = Actor.of(db.session.get(User, world.users["office"]))
        return slip.facts(db.session, ticket, actor, clock.now(), clock.local_tz())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # drawing needs no second database
@settings(max_examples=examples(40), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(description=st.one_of(TEXT, st.text(min_size=3000, max_size=6000).map(left_to_right)), instructions=TEXT,
       leader=st.lists(TEXT, max_size=2))
def test_any_description_and_instructions_render(world, base_facts, description, instructions, leader):
    """Whatever people type, the slip renders (a long text on more pages) and reads back what was typed."""
    facts = {**base_facts, "description": description,
             "transfer": {**base_facts["transfer"], "note": instructions},
             "instructions": [{"note": note, "at": "2026-11-16 10:00", "by": "leader<b>"} for note in leader]}
    with world.app.test_request_context():
        data = slip.render(facts, font=fonts.register())
        footers = [squash(f"{gettext('Transfer slip')} {facts['tracking_no']}{gettext('Page %(page)d', page=n)}")
                   for n in range(1, 100)]
    text = ""
    for page, footer in zip(pdf_pages(data), footers):  # each page begins with its footer: the text runs on past it
        assert squash(page).startswith(footer), (footer, page[:80])
        text += squash(page)[len(footer):]
    assert facts["tracking_no"] in text and "139****5678" in text
    for value in (description, instructions, *leader):
        assert drawable(value) in text, value
