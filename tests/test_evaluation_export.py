"""The 好差评 export (`flask evaluation export <YYYY-MM>`): every line of a month with every kind of rating is valid
against the schema kept in the repository, identity leaves only when configured, text survives any character."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import jsonschema
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify import closing
from notify.survey import handle_inbound
from reports import evaluation
from tests.helpers import examples
from tickets import offices
from tickets.db import db
from tickets.models import ServiceItem, Survey, Ticket

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

SCHEMA = json.loads(evaluation.SCHEMA_PATH.read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
CITIZEN = "+8613800138000"


def month_of_every_kind(network, clock) -> dict:
    """November 2026 with a rating of every kind, at windows with and without area codes; {name: tracking no}."""
    world = network.world
    with world.app.app_context():
        offices.by_code(db.session, "c1").area_code = "330101000000"  # t11 below it has none: it inherits c1's
        offices.by_code(db.session, "c2").default_unanswered = False
        db.session.add(ServiceItem(name="营业执照变更", code="11330100MB0000000X4000110001"))
        db.session.add(ServiceItem(name="社保转移"))  # in the catalogue, without a code
        db.session.commit()
    cases = {}

    def close(name, day, department="A", window="root", resolve=False, **filing):
        clock.set(2026, 11, day, 9)
        office = "office" if window == "root" else f"office_{window}"
        filed = world.file(**({} if window == "root" else {"office_code": window}), **filing)
        no = filed["tracking_no"]
        world.act(office, no, "accept")
        if resolve:
            world.act(office, no, "resolve", content="已当场答复。")
        else:
            world.act(office, no, "transfer", department_id=network.departments[department])
            world.act(f"dept_{department.lower()}", no, "reply", content="已办理。")
            world.act(office, no, "approve")
        cases[name] = filed
        return no

    def rate(name, score, comment=None):
        filed = cases[name]
        body = {"score": score, **({"comment": comment} if comment else {})}
        response = world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/rating?code={filed['query_code']}",
                                     json=body)
        assert response.status_code == 200, response.get_json()

    close("web", 2, service_item="营业执照变更")
    rate("web", 1, comment="办得很快，谢谢！")
    close("sms", 2, department="B", service_item="社保转移", phone="13900139000")
    clock.set(2026, 11, 3, 10)
    with world.app.app_context():
        assert handle_inbound(db.session, sid="SM-1", phone="+8613900139000", body="2").outcome == "rated"
        db.session.commit()
    close("default", 3, window="t11", service_item="没有的事项")
    close("resolved_bad", 4, window="c1", resolve=True)
    rate("resolved_bad", 4)                                     # rectifying: the window answered it itself
    close("rectified", 4)
    rate("rectified", 5)
    clock.set(2026, 11, 9, 9)
    world.act("office", cases["rectified"]["tracking_no"], "explain", content="政策如此，已说明。")
    close("visited", 5, department="B")
    rate("visited", 4)
    clock.set(2026, 11, 9, 10)
    world.act("office", cases["visited"]["tracking_no"], "record_visit", visited_on="2026-11-09", contacted=True,
              outcome="已回访。")
    world.act("dept_b", cases["visited"]["tracking_no"], "reply", content="已重新办理。")
    world.act("office", cases["visited"]["tracking_no"], "approve")  # round 2 opens: unanswered, default on Nov 16
    close("unrated", 6, window="c2", department="C2")            # c2 does not default: no rating, no line
    close("december", 27)                                        # its default falls on Dec 4: December's
    clock.set(2026, 12, 10, 9)
    with world.app.app_context():
        assert closing.close_surveys(db.session, clock()).defaulted == 3  # default, visited round 2, december
    return {name: filed["tracking_no"] for name, filed in cases.items()}


def export(app, *args) -> tuple[object, list[dict]]:
    """Run the export to standard output: (the result, the lines read back)."""
    result = app.test_cli_runner().invoke(args=["evaluation", "export", *args])
    return result, [json.loads(line) for line in result.stdout.split("\n") if line.startswith("{")]


@SQLITE
def test_every_line_of_every_kind_is_valid_and_right(network, clock, tmp_path):
    numbers = month_of_every_kind(network, clock)
    app = network.world.app
    target = tmp_path / "2026-11.jsonl"
    result = app.test_cli_runner().invoke(args=["evaluation", "export", "2026-11", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "7 rating(s) of 2026-11 for root (2 by default)" in result.output and "identity left out" in result.output
    lines = target.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and all(lines[:-1])
    rows = [json.loads(line) for line in lines[:-1]]
    for row in rows:
        assert list(VALIDATOR.iter_errors(row)) == [], row
        assert "citizen_name" not in row and "phone" not in row
    by = {(row["case_no"], row["round"]): row for row in rows}
    assert set(by) == {(numbers[name], 1) for name in ("web", "sms", "default", "resolved_bad", "rectified",
                                                       "visited")} | {(numbers["visited"], 2)}
    assert [row["rated_at"] for row in rows] == sorted(row["rated_at"] for row in rows)
    web = by[(numbers["web"], 1)]
    assert web == {"case_no": numbers["web"], "round": 1, "service_item_code": "11330100MB0000000X4000110001",
                   "department_code": "A", "area_code": None, "channel": "web", "rating": 1, "rating_label": "非常满意",
                   "defaulted": False, "comment": "办得很快，谢谢！", "rated_at": "2026-11-02T09:00:00+08:00",
                   "rectification_status": "none"}
    sms = by[(numbers["sms"], 1)]
    assert (sms["channel"], sms["rating"], sms["service_item_code"], sms["department_code"]) == ("sms", 2, None, "B")
    default = by[(numbers["default"], 1)]
    assert (default["channel"], default["rating"], default["rating_label"], default["defaulted"]) == (
        "default", 3, "基本满意", True)
    assert default["rated_at"] == "2026-11-10T09:00:00+08:00"    # its closing time, not the sweep's
    assert default["area_code"] == "330101000000"                # t11 has none: c1's, the nearest above
    assert default["service_item_code"] is None                  # a name that is not in the catalogue
    resolved = by[(numbers["resolved_bad"], 1)]
    assert (resolved["department_code"], resolved["rectification_status"]) == (None, "rectifying")
    assert by[(numbers["rectified"], 1)]["rectification_status"] == "rectified"
    assert by[(numbers["visited"], 1)]["rectification_status"] == "visited"
    assert by[(numbers["visited"], 2)]["defaulted"] is True
    december = export(app, "2026-12")[1]
    assert [(row["case_no"], row["defaulted"]) for row in december] == [(numbers["december"], True)]


@SQLITE
def test_one_office_identity_when_configured_and_bad_arguments(network, clock, make_app):
    numbers = month_of_every_kind(network, clock)
    app = network.world.app
    result, rows = export(app, "2026-11", "--office", "c1")  # standard output; c1 and t11 below it
    assert result.exit_code == 0, result.output
    assert {row["case_no"] for row in rows} == {numbers["default"], numbers["resolved_bad"]}
    assert all(row["area_code"] == "330101000000" for row in rows)
    for args, exit_code, words in ((["2026-13"], 2, "is not a month"), (["11/2026"], 2, "YYYY-MM"),
                                   (["2026-11", "--office", "nope"], 2, "no office has the code 'nope'"),
                                   ([], 2, "Missing argument")):
        bad = app.test_cli_runner().invoke(args=["evaluation", "export", *args])
        assert bad.exit_code == exit_code and words in bad.output, (args, bad.output)
    with_identity = make_app(EVALUATION_EXPORT_IDENTITY=True)
    result, rows = export(with_identity, "2026-11")
    assert result.exit_code == 0 and len(rows) == 7
    assert all(row["citizen_name"] == "张三" and row["phone"].startswith("+86") for row in rows)
    assert {row["phone"] for row in rows} == {CITIZEN, "+8613900139000"}
    assert all(list(VALIDATOR.iter_errors(row)) == [] for row in rows)


@SQLITE
def test_a_row_the_schema_refuses_stops_the_export_and_leaves_no_file(network, clock, tmp_path, monkeypatch):
    month_of_every_kind(network, clock)
    real = evaluation.row_of
    monkeypatch.setattr(evaluation, "row_of", lambda *a, **k: {**real(*a, **k), "rating": 9})
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "2026-11.jsonl"
    result = network.world.app.test_cli_runner().invoke(args=["evaluation", "export", "2026-11", "-o", str(target)])
    assert result.exit_code == 1 and "does not match the schema" in result.output
    assert list((tmp_path / "out").iterdir()) == []  # neither the export nor its temporary file


@SQLITE
def test_a_comment_of_the_longest_the_rating_takes_with_line_breaks_is_exported(world, clock, tmp_path):
    """The rating counts a CRLF line break as one character (as the form's maxlength does): a comment of COMMENT_MAX
    counted characters with line breaks has more code points than the schema's maxLength, and one such row would stop
    the month's export. The export writes each CRLF as LF, so the comment fits as the rating counted it."""
    clock.set(2026, 11, 2, 9)
    filed = world.file()
    world.step("office", filed["tracking_no"], "accept")
    world.step("office", filed["tracking_no"], "resolve", content="已当场答复。")
    comment = ("办得很慢窗口人员态度一般好" + "\r\n") * 70 + "谢" * 20  # 1000 counted, 1070 code points
    response = world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/rating?code={filed['query_code']}",
                                 json={"score": 2, "comment": comment})
    assert response.status_code == 200, response.get_json()
    clock.set(2026, 12, 10, 9)
    target = tmp_path / "2026-11.jsonl"
    result = world.app.test_cli_runner().invoke(args=["evaluation", "export", "2026-11", "-o", str(target)])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert row["comment"] == comment.replace("\r\n", "\n") and len(row["comment"]) == 1000
    assert list(VALIDATOR.iter_errors(row)) == []


# --- any text a citizen can write reaches the line escaped, and back unchanged -----------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=50) | st.sampled_from(
    ['"引号" \'单引号\' \\反斜杠', "第一行\n第二行\r\n第三行", "\x00\x07\x1b[31m红\u2028\u2029", "😀👨‍👩‍👧 𠀀",
     '{"case_no": "forged"}\n{"x": 1}', "</script><script>alert(1)</script>"])


@given(name=TEXT, comment=st.none() | TEXT)
@settings(max_examples=examples(60), deadline=None)
def test_text_fields_are_escaped_in_one_line(name, comment):
    rating = evaluation.Rating(case_no="BJ20261102-0001", round=1, service_item_code=None, department_code="A",
                               office_id=1, channel="web", score=2, defaulted=False, comment=comment,
                               rated_at=datetime(2026, 11, 2, 1, 0, tzinfo=timezone.utc),
                               rectification_status="none", citizen_name=name, phone=CITIZEN)
    labels = {1: "非常满意", 2: "满意", 3: "基本满意", 4: "不满意", 5: "非常不满意"}
    from flask import Flask

    with Flask(__name__).app_context() as context:
        context.app.config["TIMEZONE"] = "Asia/Shanghai"
        row = evaluation.checked(evaluation.row_of(rating, area_code="330101000000", identity=True, labels=labels))
    text = evaluation.line(row)
    assert text.endswith("\n") and len(text.splitlines()) == 1   # whatever a reader counts as a line break
    assert not any(ord(ch) < 0x20 or 0x7f <= ord(ch) <= 0x9f for ch in text[:-1])  # every control escaped
    assert json.loads(text) == row and row["citizen_name"] == name
    assert row["comment"] == (comment.replace("\r\n", "\n") if comment else comment)  # a CRLF written LF
    assert row["rated_at"] == "2026-11-02T09:00:00+08:00"


@SQLITE
@given(name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1,
                    max_size=50),
       comment=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200))
@settings(max_examples=examples(15), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_text_from_the_database_comes_back_unchanged(world, clock, name, comment):
    with world.app.app_context():
        rated = db.session.scalar(sa.select(sa.func.count()).select_from(Survey))
    if not rated:  # the first example: one rated case (the same `world` serves every example)
        filed = world.file()
        world.act("office", filed["tracking_no"], "accept")
        world.act("office", filed["tracking_no"], "resolve", content="已答复。")
        world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/rating?code={filed['query_code']}",
                          json={"score": 1})
    with world.app.app_context():
        db.session.execute(sa.update(Ticket).values(citizen_name=name))
        db.session.execute(sa.update(Survey).values(comment=comment or None))
        db.session.commit()
    app = world.app
    app.config["EVALUATION_EXPORT_IDENTITY"] = True
    result, rows = export(app, "2026-11")
    assert result.exit_code == 0, result.output
    assert [(row["citizen_name"], row["comment"]) for row in rows] == [(name, comment.replace("\r\n", "\n") or None)]
