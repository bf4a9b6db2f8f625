"""Retention: anonymising ended cases (tickets/privacy/retention.py) keeps every figure and takes the citizen away.

A month of cases anonymised leaves the kept report and a regenerated one with the same figures; the dry run counts
what the real run then changes; an interrupted run resumes; numbers in any spelling are masked in free text and the
rest kept; open, rectifying and appealable cases are left alone; the office's deletion action (who, when, the log);
an anonymised case's pages, lists, exports, slip and API views render. SQLite and PostgreSQL.
"""
from __future__ import annotations

import io
import re
from unittest.mock import ANY
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from notify.models import SmsMessage
from reports.models import Report
from tests.helpers import examples, page_csrf
from tests.report_month import MONTH, build_month
from tickets import personal
from tickets.db import db
from tickets.models import AccessLog, Attachment, AttachmentBlob, Event, Survey, Ticket
from tickets.privacy import retention

NUMBER = "13912345678"
ID_NUMBER = "110101199003071234"
SURVEY_OVER = {"days": 8}  # SURVEY_OPEN_DAYS (7) and more: nobody can rate the case any more, it has ended


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 20), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def cli(world, *args):
    return world.app.test_cli_runner().invoke(args=["privacy", "anonymise", *args])


def tickets_by_no(world) -> dict[str, Ticket]:
    with world.app.app_context():
        rows = db.session.scalars(sa.select(Ticket)).all()
        db.session.expunge_all()
    return {t.tracking_no: t for t in rows}


def access_lines(world, *, begun: bool = True) -> list[AccessLog]:
    """The anonymisation lines of the access log, oldest first (`begun=False`: without the lines runs write as they
    begin, `access.record_run_start`)."""
    with world.app.app_context():
        rows = [line for line in db.session.scalars(sa.select(AccessLog).where(AccessLog.kind == "anonymise")
                                                    .order_by(AccessLog.id))
                if begun or not line.detail.get("started")]
        db.session.expunge_all()
    return rows


def closed_case(world, *, description="营业执照变更办了一个月还没结果。", files=(), department=None):
    """A case filed (with `files`), accepted and answered by the office itself (or by `department`, its reply approved);
    (tracking number, query code)."""
    if files:
        response = world.client.post("/api/v1/tickets", data={
            "name": "李四", "phone": "13800138000", "problem_type": "too_slow", "description": description,
            "privacy": "y", "files[]": [(io.BytesIO(data), name, "image/png") for name, data in files]},
            content_type="multipart/form-data")
        assert response.status_code == 201, response.get_json()
        filed = response.get_json()
    else:
        filed = world.file(description=description)
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    if department:
        world.act("office", no, "transfer", department_id=world.departments[department])
        world.act(f"dept_{department.lower()}", no, "reply", content=f"已办结，有疑问请致电{NUMBER}。")
        world.act("office", no, "approve")
    else:
        world.act("office", no, "resolve", content=f"已办结，有疑问请致电{NUMBER}。")
    return no, filed["query_code"]


def answered_by_a(world) -> tuple[str, str]:
    """A case department A answered and the office approved (closed, its survey open): (tracking number, query code)."""
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    world.act("dept_a", no, "reply", content="已办理。")
    world.act("office", no, "approve")
    return no, filed["query_code"]


def appealable_case(world) -> str:
    """A case rated 差评 and explained by the office: closed again, its bad rating still open to appeal."""
    no, code = answered_by_a(world)
    assert world.client.post(f"/api/v1/tickets/{no}/rating?code={code}", json={"score": 4}).status_code == 200
    world.act("office", no, "explain", content="已说明政策。")
    return no


# --- a month of cases: every figure stays ----------------------------------------------------------------------------

def test_anonymising_a_month_keeps_every_figure_of_the_kept_and_a_regenerated_report(world, clock):
    november = build_month(world, clock)
    for name in ("T2", "T5", "T7"):  # numbers in the free text too: notes, masked by the anonymisation
        world.act("office", november[name]["tracking_no"], "note", content=f"群众电话{NUMBER}，身份证{ID_NUMBER}")
    kept = world.get("office", f"/api/v1/reports/monthly/{MONTH}").get_json()
    assert kept["kept"] is True
    kept_pdf = world.get("office", f"/api/v1/reports/monthly/{MONTH}.pdf").data
    with world.app.app_context():
        stored = db.session.scalar(sa.select(Report.figures))

    clock.advance(days=7)  # the last surveys have closed: a case whose citizen may still rate it has not ended
    dry = cli(world, "--closed-before", "2026-12-03", "--dry-run")
    assert dry.exit_code == 0, dry.output
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(Ticket.anonymised_at.is_not(None))) == 0
    real = cli(world, "--closed-before", "2026-12-03", "--batch", "3")
    assert real.exit_code == 0, real.output
    assert re.findall(r"\d+", dry.output.splitlines()[-1]) == re.findall(r"\d+", real.output.splitlines()[-1])

    tickets = tickets_by_no(world)
    open_ones = {november["T6"]["tracking_no"]}  # still being handled at the month's end and now
    for no, ticket in tickets.items():
        assert (ticket.anonymised_at is None) == (no in open_ones), no
        if no not in open_ones:
            assert personal.is_token(ticket.citizen_name) and personal.is_token(ticket.phone)
            assert ticket.citizen_name != ticket.phone
    counts = re.findall(r"\d+", real.output.splitlines()[-1])
    assert int(counts[0]) == len(tickets) - 1 and int(counts[-1]) == 3  # the three notes
    with world.app.app_context():
        notes = db.session.scalars(sa.select(Event.note).where(Event.action == "note")).all()
        assert notes == ["群众电话***，身份证***"] * 3
        assert db.session.scalar(sa.select(Report.figures)) == stored  # the kept report is the record, untouched
    # the kept report reads the same, figures and PDF
    assert world.get("office", f"/api/v1/reports/monthly/{MONTH}").get_json() == kept
    assert world.get("office", f"/api/v1/reports/monthly/{MONTH}.pdf").data == kept_pdf
    # and generated again from the anonymised history: every figure the same
    clock.advance(minutes=5)
    result = world.app.test_cli_runner().invoke(args=["report", "monthly", MONTH, "-o", "/dev/null"])
    assert result.exit_code == 0, result.output
    again = world.get("office", f"/api/v1/reports/monthly/{MONTH}").get_json()
    assert again["generated_at"] != kept["generated_at"]
    assert {k: v for k, v in again.items() if k != "generated_at"} == {k: v for k, v in kept.items()
                                                                       if k != "generated_at"}
    lines = access_lines(world, begun=False)
    assert [(line.actor, line.count, line.detail["closed_before"]) for line in lines] == [
        ("cli", len(tickets) - 1, "2026-12-03")]


# --- the dry run, the real run, an interruption -----------------------------------------------------------------------

def test_the_dry_run_counts_what_the_real_run_changes_and_an_interrupted_run_resumes(world, clock, monkeypatch):
    numbers = [closed_case(world, description=f"窗口电话0755-8888 8888，我的手机{NUMBER}。",
                           files=[("照片.png", png())] if i % 3 == 0 else ())[0] for i in range(7)]
    clock.advance(days=40)
    dry = cli(world, "--closed-before", clock.now.date().isoformat(), "--dry-run")
    assert dry.exit_code == 0, dry.output
    with world.app.app_context():
        files = db.session.scalar(sa.select(sa.func.count()).select_from(Attachment))
        size = db.session.scalar(sa.select(sa.func.sum(Attachment.size)))
        blobs = db.session.scalar(sa.select(sa.func.count()).select_from(AttachmentBlob))
        surveys = db.session.scalar(sa.select(sa.func.count()).select_from(Survey))
        texts = db.session.scalar(sa.select(sa.func.count()).where(SmsMessage.audience == "citizen"))
    assert files == 3 and blobs == 6 and surveys == 7  # each picture and its thumbnail and texts > 7
    found = re.findall(r"\d+", dry.output.splitlines()[-1])
    assert [int(n) for n in found[:5]] == [7, 7, texts, 3, size], dry.output
    # per case: the description (and the text the similarity reads of it), the answer (the case's, its event's, the
    # closing text's), nothing else
    fields = int(found[-1])
    assert fields == 7 * 5, dry.output
    assert not access_lines(world)  # a dry run changes nothing and logs nothing

    # interrupted after its first batch: what it did stays done, and the log says how far it came
    real_anonymise, calls, seen_at_first_batch = retention.anonymise, [], []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the run's first line is committed before its first batch: a kill -9 here leaves it
            with db.engine.connect() as other:
                seen_at_first_batch.extend(other.execute(sa.select(AccessLog.actor, AccessLog.count, AccessLog.detail)
                                                         .where(AccessLog.kind == "anonymise")).all())
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_anonymise(*args, **kwargs)

    monkeypatch.setattr(retention, "anonymise", interrupted)
    stopped = cli(world, "--closed-before", clock.now.date().isoformat(), "--batch", "3")
    assert stopped.exit_code == 130  # as a shell reports a command ended by Ctrl-C
    said = stopped.stderr.splitlines()[-3:]  # after the progress bar: what the committed batch did, how to go on
    assert said[0].startswith("已中断") and int(re.findall(r"\d+", said[1])[0]) == 3 and "再次运行" in said[2], said
    monkeypatch.setattr(retention, "anonymise", real_anonymise)
    tickets = tickets_by_no(world)
    assert sum(tickets[no].anonymised_at is not None for no in numbers) == 3
    day = clock.now.date().isoformat()
    began = {"closed_before": day, "eligible": 7, "started": True}
    assert seen_at_first_batch == [("cli", None, began)]
    assert [(line.count, line.detail) for line in access_lines(world)] == [(None, began), (3, {
        "closed_before": day, "finished": False, "cases": 3, "surveys": 3, "texts": ANY, "attachments": ANY,
        "attachment_bytes": ANY, "fields": 15})]

    resumed = cli(world, "--closed-before", clock.now.date().isoformat(), "--batch", "3")
    assert resumed.exit_code == 0, resumed.output
    assert int(re.findall(r"\d+", resumed.output.splitlines()[-1])[0]) == 4
    assert [(line.count, line.detail.get("started"), line.detail.get("finished"))
            for line in access_lines(world)] == [(None, True, None), (3, None, False), (None, True, None), (4, None, True)]
    assert sum(line.detail.get("attachments", 0) for line in access_lines(world)) == 3
    assert sum(line.detail.get("fields", 0) for line in access_lines(world)) == fields
    # the administrators' log says, in words, which cases each line is of and how far each run came (newest first)
    page = world.console("admin").get("/admin/access-log/", query_string={"kind": "anonymise"})
    said = re.findall(r'<td class="access-detail small text-muted">([^<]*)</td>', page.get_data(as_text=True))
    assert re.findall(r'<td class="access-who">([^<]*)</td>', page.get_data(as_text=True)) == ["命令行"] * 4
    ended = f"于 {day} 前结束的案件"
    assert said == [f"{ended} · 已完成", f"{ended} · 开始运行，至多 4 件",
                    f"{ended} · 未运行完即停止，再次运行可处理其余部分", f"{ended} · 开始运行，至多 7 件"], said
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Attachment)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AttachmentBlob)) == 0
        assert all(personal.is_token(p) for p in db.session.scalars(sa.select(Survey.phone)))
        assert all(personal.is_token(p) for p in db.session.scalars(
            sa.select(SmsMessage.phone).where(SmsMessage.audience == "citizen")))
        bodies = " ".join(db.session.scalars(sa.select(SmsMessage.body)))
        descriptions = set(db.session.scalars(sa.select(Ticket.description)))
    assert NUMBER not in bodies and descriptions == {"窗口电话***，我的手机***。"}
    again = cli(world, "--closed-before", clock.now.date().isoformat())
    assert int(re.findall(r"\d+", again.output.splitlines()[-1])[0]) == 0  # nothing left: never anonymised twice
    assert cli(world, "--closed-before", "2026-02-30").exit_code == 2
    future = cli(world, "--closed-before", (clock.now.date() + timedelta(days=1)).isoformat())
    assert future.exit_code == 2 and "--closed-before" in future.output


def test_keeping_files_masks_their_names_only(make_app, clock):
    from tests.helpers import seed_world

    app = make_app(RETENTION_ATTACHMENTS="keep")
    world = seed_world(app, app.test_client())
    no, _code = closed_case(world, files=[(f"{NUMBER}.png", png())])
    clock.advance(**SURVEY_OVER)
    result = cli(world, "--closed-before", clock.now.date().isoformat())
    assert result.exit_code == 0, result.output
    with app.app_context():
        names = db.session.scalars(sa.select(Attachment.name)).all()
        assert names == ["***.png"] and db.session.scalar(sa.select(sa.func.count()).select_from(AttachmentBlob)) == 2


# --- free text --------------------------------------------------------------------------------------------------------

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
TEXT = st.text(alphabet=st.sampled_from("办事窗口反映电话身份证号码请联系我谢谢abcXYZ ，。：；、\n"), max_size=12)


def _spaced(digits: str, groups: tuple[int, ...], sep: str) -> str:
    out, start = [], 0
    for size in groups:
        out.append(digits[start:start + size])
        start += size
    return sep.join(out)


@st.composite
def spelled_numbers(draw) -> str:
    kind = draw(st.sampled_from(("mobile", "id", "landline")))
    sep = draw(st.sampled_from(("", *personal.SEPARATORS.replace("\t", ""))))  # any a keyboard types between groups
    if kind == "mobile":
        digits = "1" + draw(st.sampled_from("3456789")) + draw(st.text("0123456789", min_size=9, max_size=9))
        spelled = _spaced(digits, (3, 4, 4), sep)
        spelled = draw(st.sampled_from(("", "+86", "+86 ", "0086-", "86", "＋86"))) + spelled
    elif kind == "id":
        digits = draw(st.sampled_from("123456789")) + draw(st.text("0123456789", min_size=16, max_size=16))
        spelled = _spaced(digits + draw(st.sampled_from("0123456789Xx")), (6, 8, 4), sep)
    else:
        area = draw(st.sampled_from(("010", "021", "0755", "0571")))
        local = draw(st.sampled_from("2345678")) + draw(st.text("0123456789", min_size=7, max_size=7))
        spelled = draw(st.sampled_from((f"{area}-{local}", f"({area}){local[:4]}{sep}{local[4:]}",
                                        f"{area}{sep}{local}", f"（{area}）{local}")))
    return spelled.translate(FULL_WIDTH) if draw(st.booleans()) else spelled


def test_a_number_the_form_takes_in_any_spelling_is_masked_when_written_so_in_text():
    """A number written as a citizen may write it on the form (`phones.normalise_phone` reads it, whatever mark stands
    between the digit groups: the parser's punctuation, brackets aside) is masked when written the same way in a
    description, a note or a log line (`personal.SEPARATORS`). Full-width digits too."""
    from phonenumbers import phonenumberutil

    from tickets.phones import normalise_phone

    marks = sorted(mark for mark in set(phonenumberutil._VALID_PUNCTUATION) - set("()（）[]［］\\x")
                   if normalise_phone(_spaced("13912345678", (3, 4, 4), mark)) == "+8613912345678")
    assert set(marks) <= set(personal.SEPARATORS), [hex(ord(c)) for c in set(marks) - set(personal.SEPARATORS)]
    for sep in (*marks, *personal.SEPARATORS.replace("\t", ""), "%20"):
        for digits in ("13912345678", "13912345678".translate(FULL_WIDTH)):
            spelled = _spaced(digits, (3, 4, 4), sep)
            assert personal.mask_text(f"电话{spelled}。") == f"电话{personal.MASK}。", repr(spelled)


@settings(max_examples=examples(300), deadline=None)
@given(before=TEXT, number=spelled_numbers(), after=TEXT, other=TEXT)
def test_any_number_in_any_spelling_is_masked_and_the_rest_of_the_text_kept(before, number, after, other):
    text = before + number + after
    assert personal.mask_text(text) == before + personal.MASK + after
    assert personal.mask_text(other) == other  # text without a number stays as it is
    data = {"note": text, "level": 2, "due_at": "2026-11-12T15:59:00.123456+08:00", "list": [text, 3]}
    assert personal.mask_value(data) == {"note": before + personal.MASK + after, "level": 2,
                                         "due_at": "2026-11-12T15:59:00.123456+08:00",
                                         "list": [before + personal.MASK + after, 3]}


def test_tokens_are_random_and_shown_as_anonymised():
    tokens = {personal.new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(personal.is_token(t) and personal.mask_text(t) == t for t in tokens)
    from tickets import phones

    token = tokens.pop()
    assert phones.mask(token) == phones.national(token) == personal.shown(token) == "Anonymised"
    assert not phones.is_mobile(token) and phones.phone_type(token) is None and phones.normalise_phone(token) is None


# --- what is never anonymised -----------------------------------------------------------------------------------------

def test_open_rectifying_and_appealable_cases_are_left_alone(world, clock):
    A = world.departments["A"]
    plain, _ = closed_case(world)
    clock.advance(**SURVEY_OVER)  # its survey closed: it has ended (the others' surveys open after)
    open_no = world.file()["tracking_no"]
    world.act("office", open_no, "accept")
    world.act("office", open_no, "transfer", department_id=A)

    rectifying, code = answered_by_a(world)
    assert world.client.post(f"/api/v1/tickets/{rectifying}/rating?code={code}", json={"score": 5}).status_code == 200
    appealable = appealable_case(world)
    clock.advance(days=1)
    today = clock.now.date().isoformat()
    dry = cli(world, "--closed-before", today, "--dry-run")
    assert re.findall(r"\d+", dry.output.splitlines()[-1])[0] == "1", dry.output
    assert cli(world, "--closed-before", today).exit_code == 0
    tickets = tickets_by_no(world)
    assert [no for no, t in tickets.items() if t.anonymised_at is not None] == [plain]
    for no in (open_no, rectifying, appealable):
        assert tickets[no].citizen_name == "张三"
    # nor on request: an open case is to be closed or withdrawn first, an appealable one waits for the appeal
    refused = world.act("office", open_no, "anonymise", expect=409, reason="反映人申请删除个人信息")
    assert refused["error"]["message"] == str(retention.STILL_OPEN) or "撤回" in refused["error"]["message"]
    world.act("office", rectifying, "anonymise", expect=409, reason="反映人申请删除个人信息")
    world.act("office", appealable, "anonymise", expect=409, reason="反映人申请删除个人信息")
    # once the appeal window has passed (5 working days) and its survey closed, the scheduler's job takes it
    clock.advance(days=12)
    with world.app.app_context():
        world.app.config["RETENTION_DAYS"] = 1
        retention.anonymise_expired.fn()
    tickets = tickets_by_no(world)
    assert tickets[appealable].anonymised_at is not None and tickets[open_no].anonymised_at is None
    assert [(line.actor, line.count) for line in access_lines(world)] == [("cli", None), ("cli", 1), ("scheduler", 1)]
    with world.app.app_context():
        retention.anonymise_expired.fn()  # nothing left: no line
    assert len(access_lines(world)) == 3


def test_a_case_is_anonymised_only_once_nothing_can_reopen_it(world, clock):
    """A case merged into one still open (a split reopens it), or whose survey round, or a merged case's, its citizen
    may still rate (a 差评 reopens it), has not ended: neither a deletion request nor the retention anonymises it. Once
    anonymised, nothing opens it again: no rating, no split, no case merged into it."""
    from tests.helpers import transferred

    reason = "反映人申请删除个人信息"
    handled = transferred(world, "A")
    joined = world.file(phone=NUMBER)
    world.act("office", joined["tracking_no"], "merge", into=handled)
    refused = world.act("office", joined["tracking_no"], "anonymise", expect=409, reason=reason)
    assert refused["error"]["code"] == "invalid_transition"
    assert "split" in world.ticket("office", joined["tracking_no"])["allowed_actions"]
    world.act("dept_a", handled, "reply", content="已办理。")
    world.act("office", handled, "approve")  # both citizens get the answer and a survey round
    closed_no, closed_code = answered_by_a(world)
    for no in (handled, joined["tracking_no"], closed_no):
        world.act("office", no, "anonymise", expect=409, reason=reason)
    clock.advance(days=1)
    dry = cli(world, "--closed-before", clock.now.date().isoformat(), "--dry-run")
    assert re.findall(r"\d+", dry.output.splitlines()[-1])[0] == "0", dry.output  # the retention waits too

    clock.advance(**SURVEY_OVER)
    for no in (handled, joined["tracking_no"], closed_no):
        assert world.act("office", no, "anonymise", reason=reason)["status"] in ("closed", "merged")
    assert world.client.post(f"/api/v1/tickets/{closed_no}/rating?code={closed_code}",
                             json={"score": 5}).status_code == 409
    world.act("office", joined["tracking_no"], "split", expect=409)
    other = world.file()["tracking_no"]
    assert "into" in world.act("office", other, "merge", expect=422, into=handled)["error"]["fields"]
    assert [world.ticket("office", no)["status"] for no in (handled, joined["tracking_no"], closed_no)] == \
        ["closed", "merged", "closed"]


def test_a_merged_case_s_open_survey_keeps_the_case_it_joined(world, clock):
    """The case a citizen's merged report joined waits for that citizen's rating too: their 差评 would reopen it."""
    from tests.helpers import transferred

    handled = transferred(world, "A")
    world.act("dept_a", handled, "reply", content="已办理。")
    world.act("office", handled, "approve")
    clock.advance(**SURVEY_OVER)  # its own citizen's survey closed
    joined = world.file(phone=NUMBER)
    world.act("office", joined["tracking_no"], "merge", into=handled)  # answered at once, with a survey round
    refused = world.act("office", handled, "anonymise", expect=409, reason="反映人申请删除个人信息")
    assert refused["error"]["code"] == "invalid_transition"
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == handled))
        assert retention.refusal(db.session, ticket, clock.now) == retention.SURVEY_OPEN
        assert retention.count(db.session, clock.now + timedelta(days=1), clock.now) == 0
    clock.advance(**SURVEY_OVER)
    world.act("office", handled, "anonymise", reason="反映人申请删除个人信息")


def test_the_scheduler_passes_over_a_batch_that_may_still_be_appealed(world, clock):
    """The oldest ended case may still be appealed (left for later); with a batch of one, a tick still reaches the
    case after it, where `next(batches(...))` alone took the empty first batch for the end of the work."""
    world.app.config["SURVEY_OPEN_DAYS"] = 1  # the surveys close before the 差评's appeal window does
    appealable = appealable_case(world)
    clock.advance(minutes=5)
    plain, _ = closed_case(world)
    clock.advance(days=2)
    with world.app.app_context():
        world.app.config.update(RETENTION_DAYS=1, RETENTION_BATCH_SIZE=1)
        retention.anonymise_expired.fn()
    tickets = tickets_by_no(world)
    assert tickets[plain].anonymised_at is not None and tickets[appealable].anonymised_at is None
    assert [(line.actor, line.count) for line in access_lines(world)] == [("scheduler", 1)]


def test_the_schedulers_line_says_its_cut_off_to_the_minute_in_local_time(world, clock):
    """The scheduler's cut-off is an instant (RETENTION_DAYS before the tick), not a local date: the log page reads it
    in local time to the minute. (Its UTC date, shown before, was a day early from midnight to 08:00 local.)"""
    closed_case(world)
    clock.now = datetime(2026, 11, 23, 23, 0, tzinfo=timezone.utc)  # as production's clock reads: 07:00 in Shanghai
    with world.app.app_context():
        world.app.config["RETENTION_DAYS"] = 7  # the case's survey closed in between
        retention.anonymise_expired.fn()
    (line,) = access_lines(world)
    assert line.detail["closed_before"] == "2026-11-16T23:00:00+00:00"
    page = world.console("admin").get("/admin/access-log/", query_string={"kind": "anonymise"}).get_data(as_text=True)
    assert "于 2026-11-17 07:00 前结束的案件" in page and "2026-11-16" not in page


def test_ctrl_c_as_a_batch_commits_leaves_the_batch_in_the_end_line(world, clock):
    """A real SIGINT that arrives as a batch's commit ends (sent from the session's after-commit hook, the worst
    moment): the batch is committed, so the run's end line and its words count it (`tickets.db.commit_counted`).
    Before, the Ctrl-C came out of the commit before the tally, and the log said one batch fewer than was done."""
    import os
    import signal
    import threading

    from sqlmodel import Session

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    for _ in range(5):
        closed_case(world)
    clock.advance(**SURVEY_OVER)
    commits = []

    def after_commit(session):
        commits.append(1)
        if len(commits) == 2:  # the run's first line, then its first batch
            os.kill(os.getpid(), signal.SIGINT)

    sa.event.listen(Session, "after_commit", after_commit)
    # as in a terminal: a process started in the background by a shell (as CI may be) inherits SIGINT ignored
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        clock.advance(days=1)
        stopped = cli(world, "--closed-before", clock.now.date().isoformat(), "--batch", "2")
    finally:
        sa.event.remove(Session, "after_commit", after_commit)
        signal.signal(signal.SIGINT, outer)
    assert stopped.exit_code == 130, stopped.output
    done = sum(t.anonymised_at is not None for t in tickets_by_no(world).values())
    end = access_lines(world)[-1]
    assert done == 2 and (end.count, end.detail["finished"]) == (2, False)
    assert int(re.findall(r"\d+", stopped.stderr.splitlines()[-2])[0]) == 2


def test_the_command_refuses_a_date_it_cannot_use_in_one_line(world):
    closed_case(world)
    for day in ("0001-01-01", "1999-12-31"):
        for dry in ((), ("--dry-run",)):
            done = cli(world, "--closed-before", day, *dry)
            assert done.exit_code == 2 and "2000-01-01" in done.output and "Traceback" not in done.output, done.output
    assert all(t.anonymised_at is None for t in tickets_by_no(world).values()) and access_lines(world) == []


# --- a citizen's deletion request ------------------------------------------------------------------------------------

def test_the_office_anonymises_a_case_on_request_and_nobody_texts_the_citizen_after(world, clock):
    no, code = closed_case(world, description=f"我的电话是{NUMBER}", files=[("证明.png", png())], department="A")
    clock.advance(**SURVEY_OVER)
    reason = "反映人申请删除个人信息"
    assert world.act("dept_a", no, "anonymise", expect=403, reason=reason)["error"]["code"] == "forbidden"
    world.act("supervisor", no, "anonymise", expect=403, reason=reason)
    assert "reason" in world.act("office", no, "anonymise", expect=422)["error"]["fields"]
    done = world.act("office", no, "anonymise", reason=reason)
    assert done["citizen_name"] in ("Anonymised", "已匿名化") and done["anonymised_at"] is not None
    view = world.ticket("office", no)
    event = view["events"][-1]
    assert (event["action"], event["note"]) == ("anonymise", reason)
    assert view["phone"] == view["citizen_name"] != "李四" and view["description"] == "我的电话是***"
    assert view["attachments"] == [] and "anonymise" not in view["allowed_actions"]
    [line] = access_lines(world)
    assert (line.user_id, line.ticket_id, line.reason, line.count) == (world.users["office"], line.ticket_id, reason, 1)
    assert line.detail["attachments"] == 1 and line.detail["surveys"] == 1
    assert world.act("office", no, "anonymise", expect=409, reason=reason)["error"]["code"] == "invalid_transition"
    # the citizen still follows the case with the tracking number and query code, and is told
    public = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()
    assert public["anonymised"] is True and public["timeline"][-1]["status"] == "closed"
    # it has ended for good: no rating reopens it, and nobody is texted
    with world.app.app_context():
        before = db.session.scalar(sa.select(sa.func.count()).select_from(SmsMessage).where(
            SmsMessage.audience == "citizen"))
    assert world.client.post(f"/api/v1/tickets/{no}/rating?code={code}", json={"score": 5}).status_code == 409
    world.act("office", no, "record_rating", expect=409, score="5")
    with world.app.app_context():
        after = db.session.scalar(sa.select(sa.func.count()).select_from(SmsMessage).where(
            SmsMessage.audience == "citizen"))
        rounds = db.session.scalars(sa.select(Survey.phone).order_by(Survey.id)).all()
    assert after == before and len(rounds) == 1 and all(personal.is_token(p) for p in rounds)
    assert world.ticket("office", no)["status"] == "closed"


def test_the_console_offers_the_action_on_an_ended_case_only(world, clock):
    no, _ = closed_case(world)
    clock.advance(**SURVEY_OVER)
    open_no = world.file()["tracking_no"]
    client = world.console("office")
    assert "/anonymise" in client.get(f"/admin/case/{no}").get_data(as_text=True)
    assert f"/admin/case/{open_no}/anonymise" not in client.get(f"/admin/case/{open_no}").get_data(as_text=True)
    token = page_csrf(client, f"/admin/case/{no}")
    response = client.post(f"/admin/case/{no}/anonymise", data={"reason": "反映人申请删除个人信息", "csrf_token": token})
    assert response.status_code in (200, 302, 303)
    assert tickets_by_no(world)[no].anonymised_at is not None
    page = client.get(f"/admin/case/{no}").get_data(as_text=True)
    assert "anonymised-badge" in page and "李四" not in page


# --- a deletion request recorded before the case has ended, carried out by the scheduler ------------------------------

REASON = "反映人申请删除个人信息"


def run_job(world, **config) -> None:
    with world.app.app_context():
        world.app.config.update(config)
        retention.anonymise_expired.fn()


def test_a_deletion_request_while_the_survey_is_open_is_recorded_and_carried_out_once_it_closed(world, clock):
    """The office need not come back: a request it could not carry out at once is remembered, and the scheduler's
    job anonymises the case as soon as nothing can open it again, also with RETENTION_DAYS 0 (retention off)."""
    no, code = closed_case(world, description=f"我的电话是{NUMBER}", department="A")
    refused = world.act("office", no, "anonymise", expect=409, reason=REASON)["error"]["message"]
    assert refused == str(retention.SURVEY_OPEN) or "登记删除申请" in refused
    assert "request_anonymise" in world.ticket("office", no)["allowed_actions"]
    world.act("dept_a", no, "request_anonymise", expect=403, reason=REASON)
    world.act("supervisor", no, "request_anonymise", expect=403, reason=REASON)
    assert "reason" in world.act("office", no, "request_anonymise", expect=422)["error"]["fields"]
    (status, version, events), updated = world.state(no), world.case(no).updated_at
    done = world.act("office", no, "request_anonymise", reason=f"{REASON}，回拨{NUMBER}")
    assert done["anonymise_requested_at"] is not None and done["anonymised_at"] is None
    # not a step of the case: a handler's open form stays current, and the case's last change stays its closing
    assert world.state(no) == (status, version, events + 1) and world.case(no).updated_at == updated
    assert done["events"][-1]["note"] == f"{REASON}，回拨***"  # no number in the case's history
    assert not {"anonymise", "request_anonymise"} & set(done["allowed_actions"])
    assert world.act("office", no, "request_anonymise", expect=409, reason=REASON)["error"]["code"] == \
        "invalid_transition"
    public = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()
    assert "申请已登记" in public["timeline"][-1]["note"] and public["anonymised"] is False
    run_job(world, RETENTION_DAYS=0)  # the survey is still open: nothing yet
    assert world.case(no).anonymised_at is None and access_lines(world) == []
    clock.advance(**SURVEY_OVER)
    run_job(world, RETENTION_DAYS=0)
    view = world.ticket("office", no)
    assert view["anonymised_at"] is not None and view["description"] == "我的电话是***"
    event = view["events"][-1]
    assert (event["action"], event["actor"], event["note"], event["public"]) == (
        "anonymise", None, f"{REASON}，回拨***", True)
    [line] = access_lines(world)
    assert (line.actor, line.user_id, line.ticket_id, line.count) == ("scheduler", None, world.case(no).id, 1)
    assert line.reason == f"{REASON}，回拨***" and line.detail["request"] is True
    assert line.detail["requested_by"] == world.users["office"] and line.detail["surveys"] == 1
    page = world.console("admin").get("/admin/access-log/", query_string={"kind": "anonymise"}).get_data(as_text=True)
    assert "依反映人申请" in page and "申请登记于" in page and "回拨***" in page
    run_job(world, RETENTION_DAYS=0)  # carried out once
    assert len(access_lines(world)) == 1 and world.ticket("office", no)["events"][-1]["action"] == "anonymise"
    assert world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()["anonymised"] is True


def test_a_deletion_request_on_an_open_case_waits_through_a_bad_rating_and_its_appeal_window(world, clock):
    """Recorded while the case is open, the request waits for the answer, the 差评 that reopens it, the new answer and
    the 差评's appeal window: the case is anonymised only when nothing can open it again."""
    world.app.config["SURVEY_OPEN_DAYS"] = 1  # the surveys close before the 差评's appeal window does
    no, code = answered_by_a(world)
    world.act("office", no, "request_anonymise", reason=REASON)
    assert world.client.post(f"/api/v1/tickets/{no}/rating?code={code}", json={"score": 4}).status_code == 200
    run_job(world, RETENTION_DAYS=0)
    assert world.case(no).status != "closed" and world.case(no).anonymised_at is None  # reopened by the 差评
    world.act("office", no, "explain", content="已说明政策。")
    clock.advance(days=2)
    run_job(world, RETENTION_DAYS=0)
    assert world.case(no).anonymised_at is None  # the 差评 may still be appealed
    clock.advance(days=retention.APPEAL_NATURAL_DAYS_AT_MOST)
    run_job(world, RETENTION_DAYS=0)
    assert world.case(no).anonymised_at is not None and [line.actor for line in access_lines(world)] == ["scheduler"]


def test_a_deletion_request_is_refused_where_the_case_can_be_anonymised_at_once(world, clock):
    no, _ = closed_case(world)
    clock.advance(**SURVEY_OVER)
    refused = world.act("office", no, "request_anonymise", expect=409, reason=REASON)["error"]["message"]
    assert refused == str(retention.NOW) or "匿名化个人信息" in refused
    world.act("office", no, "anonymise", reason=REASON)
    assert world.act("office", no, "request_anonymise", expect=409, reason=REASON)["error"]["code"] == \
        "invalid_transition"


def test_the_scheduler_enqueues_the_job_with_retention_off_only_when_a_request_waits(world, clock):
    from tickets.privacy.retention import schedule_anonymise

    no, _ = closed_case(world)
    sent = []
    original = retention.anonymise_expired.send
    retention.anonymise_expired.send = lambda *a, **k: sent.append(1)
    try:
        with world.app.app_context():
            world.app.config["RETENTION_DAYS"] = 0
            schedule_anonymise(clock.now)
            assert sent == []
        world.act("office", no, "request_anonymise", reason=REASON)
        with world.app.app_context():
            schedule_anonymise(clock.now)
            assert sent == [1]
    finally:
        retention.anonymise_expired.send = original


def test_the_console_offers_the_request_and_shows_it_on_the_case(world, clock):
    no, _ = closed_case(world)  # its survey still open
    client = world.console("office")
    page = client.get(f"/admin/case/{no}").get_data(as_text=True)
    assert f"/admin/case/{no}/request_anonymise" in page and f"/admin/case/{no}/anonymise\"" not in page
    token = page_csrf(client, f"/admin/case/{no}")
    response = client.post(f"/admin/case/{no}/request_anonymise", data={"reason": REASON, "csrf_token": token})
    assert response.status_code in (200, 302, 303)
    page = client.get(f"/admin/case/{no}").get_data(as_text=True)
    assert "deletion-requested-badge" in page and "登记删除申请" in page
    assert f"/admin/case/{no}/request_anonymise" not in page
    clock.advance(**SURVEY_OVER)
    run_job(world, RETENTION_DAYS=0)
    page = world.console("office").get(f"/admin/case/{no}").get_data(as_text=True)  # a new day, a new sign-in
    assert "anonymised-badge" in page and "deletion-requested-badge" not in page


# --- the citizen's own deletion request (PIPL Art. 47 and 50), from the case page or the API -------------------------

def follow(world, no: str, code: str):
    """A browser that proved the case's query code, and the CSRF token of its case page."""
    client = world.app.test_client()
    assert client.post("/track", data={"tracking_no": no, "code": code,
                                       "csrf_token": page_csrf(client, "/track")}).status_code == 303
    return client, page_csrf(client, f"/track/{no}")


def test_the_citizen_asks_on_the_case_page_and_the_case_is_anonymised_once_it_has_ended(world, clock):
    """An open case: the request is recorded (no step of the case), the office sees it, the case goes on, and the
    scheduler anonymises it once it has ended for good; the access log says the citizen asked online."""
    filed = world.file(description=f"营业执照变更办了一个月，请回电{NUMBER}")
    no = filed["tracking_no"]
    client, token = follow(world, no, filed["query_code"])
    page = client.get(f"/track/{no}").get_data(as_text=True)
    assert 'id="deletion-form"' in page and "删除我的个人信息" in page and 'id="deletion-requested"' not in page
    unticked = client.post(f"/track/{no}/deletion-request", data={"csrf_token": token, "delete_reason": "不想留存"})
    page = unticked.get_data(as_text=True)
    assert unticked.status_code == 422 and "请勾选确认后再提交删除申请。" in page and "不想留存" in page
    assert client.post(f"/track/{no}/deletion-request", data={"delete_confirm": "y"}).status_code == 400  # no CSRF
    too_long = client.post(f"/track/{no}/deletion-request",
                           data={"csrf_token": token, "delete_confirm": "y", "delete_reason": "长" * 1001})
    assert too_long.status_code == 422 and 'id="delete_reason-error"' in too_long.get_data(as_text=True)
    assert world.case(no).anonymise_requested_at is None
    (status, version, events), updated = world.state(no), world.case(no).updated_at
    done = client.post(f"/track/{no}/deletion-request",
                       data={"csrf_token": token, "delete_confirm": "y", "delete_reason": f"换号了，旧号{NUMBER}"})
    assert done.status_code == 303
    page = client.get(f"/track/{no}").get_data(as_text=True)
    assert "您的申请已登记" in page and 'id="deletion-requested"' in page and 'id="deletion-form"' not in page
    # no step of the case: the office's open form stays current, its last change stays the filing
    assert world.state(no) == (status, version, events + 1) and world.case(no).updated_at == updated
    view = world.ticket("office", no)
    event = view["events"][-1]
    assert (event["action"], event["actor"], event["note"]) == ("request_anonymise", None, "换号了，旧号***")
    assert "deletion-requested-badge" in world.console("office").get(f"/admin/case/{no}").get_data(as_text=True)
    assert not {"anonymise", "request_anonymise"} & set(view["allowed_actions"])
    again = client.post(f"/track/{no}/deletion-request", data={"csrf_token": token, "delete_confirm": "y"})
    assert again.status_code == 409 and "已登记删除申请" in again.get_data(as_text=True)
    run_job(world, RETENTION_DAYS=0)  # still open: it waits
    assert world.case(no).anonymised_at is None
    world.act("office", no, "accept")  # the case goes on as before
    world.act("office", no, "resolve", content="已办结。")
    run_job(world, RETENTION_DAYS=0)  # its survey is open: it waits
    assert world.case(no).anonymised_at is None
    clock.advance(**SURVEY_OVER)
    run_job(world, RETENTION_DAYS=0)
    view = world.ticket("office", no)
    assert view["anonymised_at"] is not None and view["description"] == "营业执照变更办了一个月，请回电***"
    [line] = access_lines(world)
    assert (line.actor, line.reason, line.detail["by_citizen"], line.detail["requested_by"]) == (
        "scheduler", "换号了，旧号***", True, None)
    log = world.console("admin").get("/admin/access-log/", query_string={"kind": "anonymise"}).get_data(as_text=True)
    assert "反映人在线申请" in log and "申请登记于" in log
    page = client.get(f"/track/{no}").get_data(as_text=True)
    assert 'id="anonymised-note"' in page and 'id="deletion-form"' not in page and 'id="deletion-requested"' not in page


def test_the_api_takes_the_request_once_and_an_ended_case_goes_at_the_next_tick(world, clock):
    no, code = closed_case(world)
    clock.advance(**SURVEY_OVER)  # ended for good: the office could anonymise it at once, the citizen asks
    path = f"/api/v1/tickets/{no}/deletion-request"
    assert world.client.post(f"{path}?code=WRONG", json={}).status_code == 404
    unknown = f"/api/v1/tickets/BJ20000101-0001/deletion-request?code={code}"
    assert world.client.post(unknown, json={}).status_code == 404
    refused = world.client.post(f"{path}?code={code}", json={"reason": "长" * 1001})
    assert refused.status_code == 422 and "reason" in refused.get_json()["error"]["fields"]
    assert world.client.post(f"{path}?code={code}", data="{", content_type="application/json").status_code == 400
    assert world.case(no).anonymise_requested_at is None
    taken = world.client.post(f"{path}?code={code}", json={})
    body = taken.get_json()
    assert taken.status_code == 202 and body["deletion_requested_at"] is not None
    assert (body["may_request_deletion"], body["anonymised"]) == (False, False)
    assert "申请已登记" in body["timeline"][-1]["note"]
    twice = world.client.post(f"{path}?code={code}", json={})
    assert twice.status_code == 409 and twice.get_json()["error"]["code"] == "invalid_transition"
    run_job(world, RETENTION_DAYS=0)
    [line] = access_lines(world)
    assert line.reason is None and line.detail["by_citizen"] is True
    after = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()
    assert (after["anonymised"], after["deletion_requested_at"], after["may_request_deletion"]) == (True, None, False)
    assert world.client.post(f"{path}?code={code}", json={}).get_json()["error"]["message"] == "该案件的个人信息已匿名化。"


def test_the_office_sees_the_requests_waiting_on_its_home_page_and_lists_them(world, clock):
    import html

    waiting, code = closed_case(world)  # its survey open: the request waits
    other = world.file()["tracking_no"]
    home = world.console("office").get("/admin/").get_data(as_text=True)
    assert 'id="stat-deletion_requested"' not in home  # none waits: no card
    assert world.client.post(f"/api/v1/tickets/{waiting}/deletion-request?code={code}", json={}).status_code == 202
    for who in ("office", "admin"):
        home = world.console(who).get("/admin/").get_data(as_text=True)
        card = re.search(r'<a class="stat-card[^"]*" href="([^"]+)" id="stat-deletion_requested">.*?'
                         r'<div class="stat-number">(\d+)</div>', home, re.S)
        assert card and card.group(2) == "1", who
        listed = world.console(who).get(html.unescape(card.group(1))).get_data(as_text=True)
        assert waiting in listed and other not in listed, who
    for who in ("dept_a", "supervisor"):
        assert 'id="stat-deletion_requested"' not in world.console(who).get("/admin/").get_data(as_text=True), who
    clock.advance(**SURVEY_OVER)
    run_job(world, RETENTION_DAYS=0)  # carried out: nothing waits any more
    assert 'id="stat-deletion_requested"' not in world.console("office").get("/admin/").get_data(as_text=True)


def test_the_citizen_takes_the_request_back_and_may_ask_again(world, clock):
    """Taken back from the case page or the API before it is carried out: nothing waits, the case is not anonymised
    when it ends; the citizen may ask again. 409 when none waits, and once the case is anonymised."""
    no, code = closed_case(world)  # its survey open: a request waits
    client, token = follow(world, no, code)
    assert client.post(f"/track/{no}/deletion-request",
                       data={"csrf_token": token, "delete_confirm": "y"}).status_code == 303
    page = client.get(f"/track/{no}").get_data(as_text=True)
    assert 'id="deletion-withdraw-form"' in page
    version = world.state(no)[1]
    assert client.post(f"/track/{no}/deletion-request/withdraw").status_code == 400  # no CSRF token: nothing
    assert world.case(no).anonymise_requested_at is not None
    taken = client.post(f"/track/{no}/deletion-request/withdraw", data={"csrf_token": token})
    assert taken.status_code == 303
    page = client.get(f"/track/{no}").get_data(as_text=True)
    assert "您的删除申请已撤回" in page and 'id="deletion-form"' in page and 'id="deletion-requested"' not in page
    assert world.case(no).anonymise_requested_at is None and world.state(no)[1] == version  # no step of the case
    event = world.ticket("office", no)["events"][-1]
    assert (event["action"], event["actor"]) == ("cancel_anonymise_request", None)
    again = client.post(f"/track/{no}/deletion-request/withdraw", data={"csrf_token": token})
    assert again.status_code == 409 and "本件没有待执行的删除申请" in again.get_data(as_text=True)
    path = f"/api/v1/tickets/{no}/deletion-request?code={code}"
    assert world.client.delete(path).get_json()["error"]["code"] == "invalid_transition"
    assert world.client.post(path, json={}).status_code == 202  # asked again, taken back through the API
    assert world.client.delete(f"/api/v1/tickets/{no}/deletion-request?code=WRONG").status_code == 404
    body = world.client.delete(path).get_json()
    assert (body["deletion_requested_at"], body["may_request_deletion"]) == (None, True)
    clock.advance(**SURVEY_OVER)
    run_job(world, RETENTION_DAYS=0)  # nothing waits: the case keeps its name and number
    assert world.case(no).anonymised_at is None and access_lines(world) == []
    assert world.client.post(path, json={}).status_code == 202
    run_job(world, RETENTION_DAYS=0)
    assert world.client.delete(path).get_json()["error"]["message"] == "该案件的个人信息已匿名化。"


def test_the_office_withdraws_a_request_for_the_citizen(world, clock):
    no, code = closed_case(world)
    assert "cancel_anonymise_request" not in world.ticket("office", no)["allowed_actions"]
    world.act("office", no, "cancel_anonymise_request", expect=409, reason="反映人来电撤回")
    assert world.client.post(f"/api/v1/tickets/{no}/deletion-request?code={code}", json={}).status_code == 202
    assert "cancel_anonymise_request" in world.ticket("office", no)["allowed_actions"]
    assert "reason" in world.act("office", no, "cancel_anonymise_request", expect=422)["error"]["fields"]
    world.act("supervisor", no, "cancel_anonymise_request", expect=403, reason="反映人来电撤回")
    done = world.act("office", no, "cancel_anonymise_request", reason=f"反映人来电撤回，回拨{NUMBER}")
    assert done["anonymise_requested_at"] is None and done["events"][-1]["note"] == "反映人来电撤回，回拨***"
    public = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()
    assert "申请已撤回" in public["timeline"][-1]["note"] and public["may_request_deletion"] is True
    clock.advance(**SURVEY_OVER)
    run_job(world, RETENTION_DAYS=0)
    assert world.case(no).anonymised_at is None


def test_a_request_carried_out_meanwhile_is_not_taken_back(world, clock):
    """The scheduler anonymised the case after the citizen's request was read: taking it back reads the row as
    committed (locked on PostgreSQL) and answers that the case is anonymised, never that the request was withdrawn."""
    from tickets.errors import InvalidTransition
    from tickets.workflow import withdraw_deletion_request

    no, code = closed_case(world)
    assert world.client.post(f"/api/v1/tickets/{no}/deletion-request?code={code}", json={}).status_code == 202
    clock.advance(**SURVEY_OVER)
    with world.app.app_context():
        stale = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))
        assert stale.anonymise_requested_at is not None and stale.anonymised_at is None
        db.session.commit()  # the page's reading is done; the scheduler runs before the citizen's step
        run_job(world, RETENTION_DAYS=0)
        with pytest.raises(InvalidTransition) as refused:
            withdraw_deletion_request(db.session, stale)
        assert refused.value.message == retention.ALREADY
        db.session.rollback()
    assert world.case(no).anonymised_at is not None
    assert world.ticket("office", no)["events"][-1]["action"] == "anonymise"


def test_a_request_recorded_meanwhile_is_not_recorded_twice(world, clock):
    """The office recorded the request after the citizen's page was read: the citizen's own request reads the row as
    committed and answers that one is recorded already, with no second event."""
    from tickets.errors import InvalidTransition
    from tickets.workflow import request_deletion

    no, _code = closed_case(world)
    with world.app.app_context():
        stale = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == no))
        db.session.commit()
        world.act("office", no, "request_anonymise", reason=REASON)
        events = world.state(no)[2]
        with pytest.raises(InvalidTransition) as refused:
            request_deletion(db.session, stale)
        assert refused.value.message == retention.REQUESTED
        db.session.rollback()
    assert world.state(no)[2] == events


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                      st.lists(st.integers(), max_size=3),
                      st.dictionaries(st.sampled_from(["reason", "code", "x"]),
                                      st.one_of(st.none(), st.integers(), st.text(max_size=1200),
                                                st.lists(st.text(max_size=3), max_size=2)), max_size=3)))
def test_any_body_of_the_request_is_taken_or_refused_in_the_error_shape(world, body):
    filed = world.file()
    response = world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/deletion-request?code={filed['query_code']}",
                                 json=body)
    assert response.status_code in (202, 400, 422), (body, response.status_code)
    requested = world.case(filed["tracking_no"]).anonymise_requested_at is not None
    assert requested == (response.status_code == 202)
    if response.status_code != 202:
        assert set(response.get_json()["error"]) >= {"code", "message"}


# --- an anonymised case still renders everywhere ---------------------------------------------------------------------

def test_an_anonymised_case_renders_on_every_page_export_slip_and_api(world, clock):
    no, code = closed_case(world, files=[("证明.png", png())])
    clock.advance(**SURVEY_OVER)
    world.act("office", no, "anonymise", reason="反映人申请删除个人信息")
    for who in ("office", "admin", "leader"):
        assert world.get(who, f"/api/v1/staff/tickets/{no}").status_code == 200
        assert world.get(who, "/api/v1/staff/tickets").status_code == 200
    assert world.get("office", f"/api/v1/staff/tickets/{no}/slip.pdf").status_code == 200
    assert world.client.get(f"/api/v1/tickets/{no}?code={code}").status_code == 200
    client = world.console("office")
    for path in (f"/admin/case/{no}", "/admin/cases/", f"/admin/case/{no}/slip.pdf", "/admin/cases/export/csv/",
                 "/admin/cases/export/csv/?full=1", "/admin/sms/"):
        response = client.get(path)
        assert response.status_code < 400, path
        if path.startswith("/admin/case/") and not path.endswith(".pdf"):
            assert "李四" not in response.get_data(as_text=True)
    citizen = world.app.test_client()
    token = page_csrf(citizen, "/track")
    assert citizen.post("/track", data={"tracking_no": no, "code": code, "csrf_token": token}).status_code == 303
    page = citizen.get(f"/track/{no}").get_data(as_text=True)
    assert "anonymised-note" in page
    clock.advance(days=40)
    assert world.get("office", "/api/v1/reports/monthly/2026-11").status_code == 200
