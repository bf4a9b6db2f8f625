"""Text from people and other systems reaching another renderer with the escaping that renderer needs: a text log line
(a line break in a request's path), Open311's XML (a carriage return in a description), the public form's window
picker (a window's name holding `$&` as the replacement of a JavaScript String.replace)."""
from __future__ import annotations

import io
import json
import logging
import pathlib
import re
import sys
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import create_app
from tests.helpers import BASE_CONFIG, examples
from tickets import logs
from tickets.open311 import _NOT_XML, to_xml

ROOT = pathlib.Path(__file__).resolve().parent.parent
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none"  # nothing listens on port 1: every connection is refused at once


# --- text logs: one record, one line ------------------------------------------------------------------------------

@pytest.fixture
def text_log():
    """Every line this process logs at DEBUG, in the text format (logs.configure with a handler to a buffer); the
    process's logging as it was afterwards."""
    root = logging.getLogger()
    saved = (root.level, {name: logging.getLogger(name).level for name in logs.QUIET})
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    logs.configure("text", logging.DEBUG, handler=handler)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(saved[0])
    for name, level in saved[1].items():
        logging.getLogger(name).setLevel(level)


LINE_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
FORGED = "2026-12-01 10:00:00,000 ERROR banjie.http [-] forged"


def test_a_line_break_in_a_requests_path_does_not_start_a_log_line_of_its_own(text_log):
    """The path is percent-decoded: `%0A` in an address is a line break in `request.path`, which the line "database
    unavailable on GET <path>" carried whole, so anyone could write a line of their choosing into a text log."""
    app = create_app({**BASE_CONFIG, "DATABASE_URL": UNREACHABLE, "READY_CACHE_SECONDS": 0})
    client = app.test_client()
    for breaker in ("%0A", "%0D", "%0D%0A", "%E2%80%A8"):
        answer = client.get(f"/api/v1/staff/tickets/BJ1{breaker}{FORGED.replace(' ', '%20')}",
                            headers={"Authorization": "Bearer bj_x"})
        assert answer.status_code == 503
    lines = text_log.getvalue().splitlines()
    said = [line for line in lines if "database unavailable" in line]
    assert len(said) == 4, lines
    assert all(LINE_START.match(line) for line in lines), lines
    assert not any(line.startswith(FORGED) for line in lines)
    assert all("BJ1\\" in line and "forged" in line for line in said)  # the path is kept, its breaks written out


@settings(max_examples=examples(100), deadline=None)
@given(message=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_property_any_message_is_one_text_line_and_a_traceback_stays_below_it(message):
    formatter = logs._text_formatter()
    record = logging.LogRecord("banjie.test", logging.ERROR, __file__, 1, "said %s", (message,), None)
    record.request_id = "-"
    assert len(formatter.format(record).splitlines()) == 1
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("banjie.test", logging.ERROR, __file__, 1, "said %s", (message,), sys.exc_info())
    record.request_id = "-"
    first, *rest = formatter.format(record).splitlines()
    assert first.startswith(formatter.formatTime(record)) and rest[0] == "Traceback (most recent call last):"


# --- Open311's XML: what a citizen wrote reads back as written ----------------------------------------------------

def test_a_carriage_return_in_a_description_reads_back_from_the_xml():
    """A description typed in a browser's textarea arrives with CRLF; XML parsers turn a raw CR into LF (XML 1.0
    §2.11), so the XML answer said something else than the JSON one unless the CR is written as a reference."""
    for written in ("第一行\r\n第二行", "a\rb", "\r", "x\r\r\ny"):
        parsed = ET.fromstring(to_xml("service_requests", "request", [{"description": written}]))
        assert parsed.find("request/description").text == written


@settings(max_examples=examples(200), deadline=None)
@given(value=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30))
def test_property_any_text_reads_back_from_the_xml_as_json_carries_it(value):
    parsed = ET.fromstring(to_xml("service_requests", "request", [{"description": value, "address": value}]))
    kept = _NOT_XML.sub("", value)
    for field in ("description", "address"):
        assert (parsed.find(f"request/{field}").text or "") == kept


# --- the public form's window picker: a window's name as written ---------------------------------------------------

PICKER_PAGE = """<!doctype html><html><body><form><div class="area-picker" data-windows='{windows}'
  data-label-city="市" data-label-county="区县" data-label-township="乡镇" data-none="无：{{name}}办理">
  <div class="field"><label for="office_code">窗口</label>
  <select id="office_code" name="office_code">{options}</select></div></div></form></body></html>"""


@pytest.mark.parametrize("name", ["市$&中心", "东湖$'县", "西山$`县", "$$窗口", "$1 $<x>"])
def test_the_area_pickers_none_option_names_the_window_as_written(browser_page, name):
    """'None: %(name)s handles it' is filled in by String.replace, which reads `$&`, `$'`, `` $` `` and `$$` in its
    replacement: a window named 市$&中心 was offered as 「无：市{name}中心办理」."""
    windows = [{"code": "root", "name": "市民服务中心", "parent_code": None, "level": "city"},
               {"code": "c1", "name": name, "parent_code": "root", "level": "county"},
               {"code": "t1", "name": "青石镇", "parent_code": "c1", "level": "township"}]
    options = "".join(f'<option value="{w["code"]}">{w["code"]}</option>' for w in windows)
    page = browser_page
    page.set_content(PICKER_PAGE.format(windows=json.dumps(windows, ensure_ascii=False).replace("'", "&#39;"),
                                        options=options))
    page.add_script_tag(path=str(ROOT / "static" / "area-picker.js"))
    page.select_option("#office-area-1", "c1")
    assert page.locator("#office-area-2 option").first.inner_text() == f"无：{name}办理"
