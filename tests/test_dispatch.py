"""派单目录 (dispatch catalogue): its rules, console, CSV import and export, CLI, what it suggests; the 争议件 list."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import csrf_of, examples
from tickets import dispatch, offices
from tickets.db import db
from tickets.errors import ValidationFailed
from tickets.models import Department, DispatchRule, Event, Office, Ticket

HEADER = "office_code,scope,value,department_code\n"
FIXTURE_SETTINGS = settings(max_examples=examples(40), deadline=None,
                            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def catalogue(app) -> set[tuple]:
    """Every entry as (office code, scope, value, department code)."""
    with app.app_context():
        return set(db.session.execute(
            sa.select(Office.code, DispatchRule.scope, DispatchRule.value, Department.code)
            .join(Office, Office.id == DispatchRule.office_id)
            .join(Department, Department.id == DispatchRule.department_id)).all())


def set_rule(app, office_code, scope, value, department_code, within=None):
    with app.app_context():
        session = db.session
        rule = dispatch.set_rule(session, offices.by_code(session, office_code), scope, value,
                                 session.scalar(sa.select(Department).where(Department.code == department_code)),
                                 within=offices.by_code(session, within) if within else None)
        session.commit()
        return rule.id


def import_text(app, text, **kwargs):
    with app.app_context():
        counts = dispatch.import_csv(db.session, text, **kwargs)
        db.session.commit()
        return counts.as_dict()


def refusal(app, text, **kwargs) -> dict:
    with app.app_context():
        with pytest.raises(ValidationFailed) as caught:
            dispatch.import_csv(db.session, text, **kwargs)
        db.session.rollback()
        return {name: str(message) for name, message in caught.value.fields.items()}


# --- what the catalogue suggests -----------------------------------------------------------------------------

def test_suggestion_is_the_offices_own_entry_else_the_parents_and_a_service_item_beats_a_problem_type(world, network):
    app = world.app
    set_rule(app, "root", "problem_type", "too_slow", "A")
    set_rule(app, "root", "service_item", "社保卡挂失", "B")
    set_rule(app, "c1", "problem_type", "too_slow", "C1")
    set_rule(app, "t11", "service_item", "医保报销", "C1")
    cases = {  # (window, problem type, service item) -> department suggested
        ("t11", "too_slow", "医保报销"): "C1",       # the township's own service item entry
        ("t11", "too_slow", None): "C1",            # no entry of its own: the county's problem type entry
        ("t11", "too_slow", "社保卡挂失"): "C1",      # the county's own problem type entry before the root's item
        ("t12", "too_hard", "社保卡挂失"): "B",       # up to the root, whose item entry wins over nothing
        ("t21", "too_slow", None): "A",             # a sibling county has no entries: the root's
        ("root", "too_slow", "社保卡挂失"): "B",      # service item over problem type, same office
        ("root", "too_hard", None): None,           # nothing anywhere
    }
    for (window, problem_type, item), expected in cases.items():
        body = {"problem_type": problem_type, **({"service_item": item} if item else {})}
        tracking_no = network.file(window, **body)
        with app.app_context():
            ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == tracking_no))
            found = offices.suggested_department(db.session, ticket)
            assert (found.code if found else None) == expected, (window, problem_type, item)
        staff = world.ticket("admin", tracking_no)
        assert staff["dispatch_department_id"] == (world.departments[expected] if expected else None)
    # An inactive department is never suggested: the next entry up the chain is.
    with app.app_context():
        db.session.get(Department, world.departments["C1"]).active = False
        db.session.commit()
    tracking_no = network.file("t11", problem_type="too_slow")
    assert world.ticket("office_c1", tracking_no)["dispatch_department_id"] == world.departments["A"]


def test_set_rule_refuses_what_a_window_could_not_transfer_to(world, network):
    app = world.app
    refused = {  # (office, scope, value, department, within) -> the field refused
        ("t11", "problem_type", "too_slow", "C2", None): "department_id",   # a sibling county's department
        ("root", "problem_type", "too_slow", "C1", None): "department_id",  # a department below the office
        ("c1", "problem_type", "slow", "C1", None): "value",                # not a problem type code
        ("c1", "service_item", "x" * 101, "C1", None): "value",
        ("c1", "service_item", "两行\n名称", "C1", None): "value",
        ("c1", "service_item", "", "C1", None): "value",
        ("c1", "kind", "x", "C1", None): "scope",
        ("c2", "problem_type", "too_slow", "A", "c1"): "office_id",          # outside the caller's subtree
        ("nowhere", "problem_type", "too_slow", "A", None): "office_id",
        ("c1", "problem_type", "too_slow", "NOPE", None): "department_id",
    }
    for (office, scope, value, department, within), field in refused.items():
        with pytest.raises(ValidationFailed) as caught:
            set_rule(app, office, scope, value, department, within)
        assert field in caught.value.fields, (office, scope, value, department, caught.value.fields)
    assert catalogue(app) == set()
    # The same key again changes the department rather than adding a second entry.
    first = set_rule(app, "c1", "service_item", " 社保卡 ", "C1")
    assert set_rule(app, "c1", "service_item", "社保卡", "A") == first
    assert catalogue(app) == {("c1", "service_item", "社保卡", "A")}


# --- the console ---------------------------------------------------------------------------------------------

ROLE_ACCESS = {"admin": 200, "office": 200, "office_c1": 200, "office_t11": 200, "supervisor_c1": 403,
               "leader_c1": 403, "dept_c1": 403, "dept_a": 403, "supervisor": 403}


def test_catalogue_pages_open_for_office_roles_only(world, network):
    for who, status in ROLE_ACCESS.items():
        client = world.console(who)
        for path in ("/admin/dispatch/", "/admin/dispatch/edit", "/admin/dispatch/export.csv"):
            assert client.get(path).status_code == status, (who, path)
    assert world.client.get("/admin/dispatch/").status_code == 302  # the anonymous go to the sign-in page


def _save(client, data, rule_id=None):
    path = "/admin/dispatch/edit" + (f"?id={rule_id}" if rule_id else "")
    page = client.get(path)
    return client.post(path, data={**data, "csrf_token": csrf_of(page.get_data(as_text=True))})


def test_console_create_edit_delete_within_the_callers_subtree(world, network):
    app, ids = world.app, network.offices
    county = world.console("office_c1")
    response = _save(county, {"office_id": ids["t11"], "scope": "service_item", "value": "=HYPERLINK(\"x\")",
                              "department_id": world.departments["C1"]})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert catalogue(app) == {("t11", "service_item", '=HYPERLINK("x")', "C1")}
    listed = county.get("/admin/dispatch/?office=t11").get_data(as_text=True)
    assert "HYPERLINK(&#34;x&#34;)" in listed or "HYPERLINK(&quot;x&quot;)" in listed
    with app.app_context():
        rule_id = db.session.scalar(sa.select(DispatchRule.id))
    # Another county's office: the entry does not exist for them; a window they keep only their own subtree.
    sibling = world.console("office_c2")
    assert sibling.get(f"/admin/dispatch/edit?id={rule_id}").status_code == 404
    assert 'data-rule-id' not in sibling.get("/admin/dispatch/").get_data(as_text=True)
    assert sibling.get("/admin/dispatch/?office=t11").status_code == 404
    page = sibling.get("/admin/dispatch/").get_data(as_text=True)
    assert sibling.post(f"/admin/dispatch/{rule_id}/delete", data={"csrf_token": csrf_of(page)}).status_code == 404
    township = world.console("office_t11")
    response = _save(township, {"office_id": ids["c1"], "scope": "problem_type", "value": "too_slow",
                                "department_id": world.departments["C1"]})
    assert response.status_code == 400 and 'id="error-office_id"' in response.get_data(as_text=True)
    # A county office may not name a department of the city for the city's own window, nor a sibling's.
    response = _save(county, {"office_id": ids["t11"], "scope": "problem_type", "value": "too_slow",
                              "department_id": world.departments["C2"]})
    assert response.status_code == 400 and 'id="error-department_id"' in response.get_data(as_text=True)
    # Edit: the department changes; nothing else does.
    response = _save(county, {"office_id": ids["t11"], "scope": "service_item", "value": '=HYPERLINK("x")',
                              "department_id": world.departments["A"]}, rule_id)
    assert response.status_code == 302
    assert catalogue(app) == {("t11", "service_item", '=HYPERLINK("x")', "A")}
    # Without the CSRF token nothing happens.
    assert county.post(f"/admin/dispatch/{rule_id}/delete").status_code == 400
    assert len(catalogue(app)) == 1
    page = county.get("/admin/dispatch/").get_data(as_text=True)
    assert county.post(f"/admin/dispatch/{rule_id}/delete", data={"csrf_token": csrf_of(page)}).status_code == 302
    assert catalogue(app) == set()
    # Ids that name nothing are 404, never 500.
    for bad in ("0", "-1", "99999999999999999999", "x"):
        assert county.get(f"/admin/dispatch/edit?id={bad}").status_code == 404


def test_admin_sees_and_keeps_every_window(world, network):
    set_rule(world.app, "t21", "problem_type", "other", "C2")
    set_rule(world.app, "t11", "problem_type", "other", "C1")
    admin = world.console("admin")
    page = admin.get("/admin/dispatch/").get_data(as_text=True)
    assert page.count("data-rule-id") == 2
    assert world.console("office_c1").get("/admin/dispatch/").get_data(as_text=True).count("data-rule-id") == 1
    text = admin.get("/admin/dispatch/export.csv").get_data(as_text=True)
    assert text.startswith("\ufeff" + HEADER.strip()) and "t21" in text and "t11" in text
    county_text = world.console("office_c1").get("/admin/dispatch/export.csv").get_data(as_text=True)
    assert "t11" in county_text and "t21" not in county_text


# --- CSV import ----------------------------------------------------------------------------------------------

def test_import_good_files_with_or_without_bom_and_replace(world, network):
    app = world.app
    text = HEADER + "c1,problem_type,too_slow,C1\nt11,service_item,\"社保,医保\",C1\n\nroot,problem_type,other,A\n"
    assert import_text(app, "\ufeff" + text) == {"created": 3, "updated": 0, "unchanged": 0, "removed": 0,
                                                  "lines": 3}
    assert ("t11", "service_item", "社保,医保", "C1") in catalogue(app)
    # The same file again (no BOM, CRLF, columns in another order) changes nothing; one changed line updates.
    again = "scope,office_code,department_code,value\r\nproblem_type,c1,A,too_slow\r\nproblem_type,root,A,other\r\n"
    assert import_text(app, again) == {"created": 0, "updated": 1, "unchanged": 1, "removed": 0, "lines": 2}
    assert import_text(app, again, replace=True) == {"created": 0, "updated": 0, "unchanged": 2, "removed": 1,
                                                      "lines": 2}
    assert catalogue(app) == {("c1", "problem_type", "too_slow", "A"), ("root", "problem_type", "other", "A")}
    # Replacing within a county's subtree leaves the rest of the city alone.
    with app.app_context():
        counts = dispatch.import_csv(db.session, HEADER + "t11,problem_type,other,C1\n", replace=True,
                                     within=offices.by_code(db.session, "c1"))
        db.session.commit()
    assert counts.removed == 1 and catalogue(app) == {("root", "problem_type", "other", "A"),
                                                      ("t11", "problem_type", "other", "C1")}


def test_import_reports_every_bad_line_and_writes_nothing(world, network):
    app = world.app
    set_rule(app, "c1", "problem_type", "too_slow", "C1")
    before = catalogue(app)
    text = (HEADER
            + "c1,problem_type,other,C1\n"          # 2: good
            + "t11,problem_type,too_slow,C2\n"      # 3: a sibling county's department
            + "zz,problem_type,too_slow,A\n"        # 4: no such office
            + "c1,problem_type,too_slow\n"          # 5: three cells
            + "c1,service_item,\"open,C1\n"         # 6: a quote never closed
            + "c1,problem_type,other,C1\n"          # 7: repeats line 2
            + "c1,problem_type,late,C1\n")          # 8: not a problem type
    errors = refusal(app, text, replace=True)
    assert set(errors) == {"line_3", "line_4", "line_5", "line_6", "line_7", "line_8"}, errors
    assert errors["line_3"].startswith("department_code:") and "第 2 行" in errors["line_7"]  # Chinese first
    assert catalogue(app) == before
    for bad_header in ("", "\n\n", "office,scope,value,department\n", "office_code,scope,value\n",
                       "office_code,scope,value,department_code,extra\n", "c1,problem_type,too_slow,C1\n"):
        assert set(refusal(app, bad_header)) == {"header"}, bad_header
    assert catalogue(app) == before
    # Within a county, a line for another county is refused like any other bad line.
    with app.app_context():
        with pytest.raises(ValidationFailed) as caught:
            dispatch.import_csv(db.session, HEADER + "c2,problem_type,other,C2\n",
                                within=offices.by_code(db.session, "c1"))
        db.session.rollback()
    assert set(caught.value.fields) == {"line_2"}


def _upload(client, data: bytes, replace=False):
    page = client.get("/admin/dispatch/").get_data(as_text=True)
    form = {"csrf_token": csrf_of(page), "file": (__import__("io").BytesIO(data), "catalogue.csv")}
    if replace:
        form["replace"] = "1"
    return client.post("/admin/dispatch/import", data=form, content_type="multipart/form-data")


def test_console_upload_good_and_bad_files(world, network):
    app = world.app
    county = world.console("office_c1")
    good = ("\ufeff" + HEADER + "t11,problem_type,too_slow,C1\n").encode("utf-8")
    assert _upload(county, good).status_code == 302
    assert catalogue(app) == {("t11", "problem_type", "too_slow", "C1")}
    bad = (HEADER + "t11,problem_type,too_hard,C1\nc2,problem_type,too_slow,C2\n").encode("utf-8")
    response = _upload(county, bad, replace=True)
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and 'id="dispatch-import-errors"' in body and "第 3 行" in body
    assert "第 2 行" not in body  # the good line is not blamed
    assert catalogue(app) == {("t11", "problem_type", "too_slow", "C1")}
    for data in ("office_code,scope,value,department_code\n".encode("gbk") + "t11,service_item,社保,C1\n".encode("gbk"),
                 b"", b"\xff\xfe\x00\x00"):
        assert _upload(county, data).status_code == 400
    page = county.get("/admin/dispatch/").get_data(as_text=True)
    assert county.post("/admin/dispatch/import", data={"csrf_token": csrf_of(page)}).status_code == 400
    assert county.post("/admin/dispatch/import", data={"file": (__import__("io").BytesIO(good), "a.csv")},
                       content_type="multipart/form-data").status_code == 400  # no CSRF token
    assert catalogue(app) == {("t11", "problem_type", "too_slow", "C1")}


HOSTILE = st.one_of(
    st.sampled_from(["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "'=1", "\x00", "a\x00b", "\ufeff", "\u2028",
                     '"', '""', '"a', "a,b", "x" * 101, "x" * 5000, "社保\n卡", "\ud800", "c1", "C1", "too_slow"]),
    st.text(max_size=200),
)


@FIXTURE_SETTINGS
@given(cells=st.lists(HOSTILE, min_size=4, max_size=4))
def test_hostile_cells_are_refused_or_stored_whole_never_half(world, network, cells):
    """A line of hostile cells beside a good line: either both are stored (the hostile value as written) or
    the import is refused with that line's number and nothing is written."""
    app = world.app
    line = ",".join('"' + c.replace('"', '""') + '"' if any(ch in c for ch in ',"\r\n') else c for c in cells)
    text = HEADER + "c1,problem_type,other,C1\n" + line + "\n"
    with app.app_context():
        session = db.session
        try:
            dispatch.import_csv(session, text)
        except ValidationFailed as error:
            assert error.fields and all(name.startswith("line_") for name in error.fields), error.fields
            assert "line_2" not in error.fields
            session.rollback()
            assert session.scalar(sa.select(sa.func.count()).select_from(DispatchRule)) == 0
        else:
            stored = session.scalar(sa.select(sa.func.count()).select_from(DispatchRule))
            assert stored in (1, 2)  # the hostile line may name the good line's entry
            session.flush()
            session.rollback()


@settings(max_examples=examples(15), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.binary(max_size=3000) | st.text(max_size=3000).map(lambda t: (HEADER + t).encode("utf-8", "surrogatepass")))
def test_console_upload_of_any_bytes_is_never_a_500(world, network, data):
    client = world.console("admin") if not hasattr(world, "_admin_console") else world._admin_console
    world._admin_console = client
    status = _upload(client, data).status_code
    assert status in (302, 400, 413), status
    if status != 302:
        assert catalogue(world.app) == set()
    else:
        with world.app.app_context():
            db.session.execute(sa.delete(DispatchRule))
            db.session.commit()


# --- CSV export ----------------------------------------------------------------------------------------------

NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=100).filter(
    lambda s: s == s.strip() and "\u2028" not in s and "\u2029" not in s and "\x85" not in s)


@FIXTURE_SETTINGS
@given(names=st.lists(NAMES | st.sampled_from(["=cmd|' /C calc'!A0", "+1", "-2", "@x", "'quoted", "''", "a,b\"c"]),
                      min_size=1, max_size=6, unique=True))
def test_export_then_import_gives_the_catalogue_back_and_no_cell_is_a_formula(world, network, names):
    app = world.app
    with app.app_context():
        session = db.session
        session.execute(sa.delete(DispatchRule))
        c1 = offices.by_code(session, "c1")
        department = session.get(Department, world.departments["C1"])
        for name in names:
            dispatch.set_rule(session, c1, "service_item", name, department)
        dispatch.set_rule(session, c1, "problem_type", "too_slow", department)
        before = set(session.execute(sa.select(DispatchRule.office_id, DispatchRule.scope, DispatchRule.value,
                                                DispatchRule.department_id)).all())
        text = dispatch.export_csv(session)
        assert text.startswith("\ufeff")
        import csv
        for row in list(csv.reader(text.removeprefix("\ufeff").splitlines()))[1:]:
            assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
        session.execute(sa.delete(DispatchRule))
        counts = dispatch.import_csv(session, text)
        assert counts.created == len(before)
        after = set(session.execute(sa.select(DispatchRule.office_id, DispatchRule.scope, DispatchRule.value,
                                               DispatchRule.department_id)).all())
        assert after == before
        session.rollback()


def test_cli_import_and_export(world, network, tmp_path):
    app = world.app
    runner = app.test_cli_runner()
    source = tmp_path / "in.csv"
    lines = [f"c1,service_item,事项{i},C1" for i in range(1500)] + ["t11,problem_type,too_slow,A"]
    source.write_text("\ufeff" + HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(args=["dispatch", "import", str(source)])
    assert result.exit_code == 0, result.output
    assert "created 1501" in result.output
    out = tmp_path / "out.csv"
    result = runner.invoke(args=["dispatch", "export", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith("\ufeff".encode("utf-8"))
    result = runner.invoke(args=["dispatch", "import", str(out), "--replace"])
    assert result.exit_code == 0 and "unchanged 1501" in result.output and "removed 0" in result.output, result.output
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "c1,problem_type,nope,C1\nzz,problem_type,other,C1\n", encoding="utf-8")
    result = runner.invoke(args=["dispatch", "import", str(bad), "--replace"])
    assert result.exit_code != 0 and "line_2" in result.output and "line_3" in result.output
    assert len(catalogue(app)) == 1501
    stdout = runner.invoke(args=["dispatch", "export"])
    assert stdout.exit_code == 0 and stdout.output.splitlines()[0] == HEADER.strip()


# --- 争议件 --------------------------------------------------------------------------------------------------

def _dispute(world, tracking_no, returned_by: list[str]):
    """Mark the case disputed, with a `return` event for each department named (what the workflow records)."""
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == tracking_no))
        ticket.disputed = True
        ticket.status = "returned"
        for code in returned_by:
            db.session.add(Event(ticket_id=ticket.id, action="return", actor_role="department",
                                 from_status="transferred", to_status="returned",
                                 data={"department_id": world.departments[code]}))
        db.session.commit()


DISPUTED_SEES = {  # who -> the windows whose disputed cases they see (404-free list), None: 403
    "admin": {"root", "c1", "t11", "c2"}, "supervisor": {"root", "c1", "t11", "c2"},
    "office": {"root", "c1", "t11", "c2"},
    "supervisor_c1": {"c1", "t11"}, "office_c1": {"c1", "t11"}, "supervisor_t11": {"t11"},
    "supervisor_c2": {"c2"}, "office_t12": set(),
    "leader_c1": None, "dept_c1": None, "dept_a": None,
}


def test_disputed_list_shows_the_callers_subtree_with_who_returned_and_how_often(world, network):
    cases = {code: network.file(code) for code in ("root", "c1", "t11", "c2")}
    _dispute(world, cases["c1"], ["C1", "C1", "A"])
    for code in ("root", "t11", "c2"):
        _dispute(world, cases[code], ["A", "A"])
    not_disputed = network.file("c1")
    for who, sees in DISPUTED_SEES.items():
        response = world.console(who).get("/admin/disputed/")
        if sees is None:
            assert response.status_code == 403, who
            continue
        page = response.get_data(as_text=True)
        assert response.status_code == 200, who
        shown = {code for code, tracking_no in cases.items() if tracking_no in page}
        assert shown == sees, (who, shown)
        assert not_disputed not in page
    page = world.console("supervisor_c1").get("/admin/disputed/").get_data(as_text=True)
    assert "东湖县人社局：2 次" in page and "市场监督管理局：1 次" in page
    assert f'href="/admin/case/{cases["c1"]}"' in page
    # The county supervisor arbitrates their own county's case, not the township's (which it only sees).
    assert page.count("待裁定") == 1
