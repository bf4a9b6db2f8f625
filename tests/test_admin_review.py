"""Console input found in review: query arguments named as url_for's own parameters, and digits of other scripts."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from admin import access_log
from admin.base import version_number
from tests.helpers import console_lists, examples, page_csrf, serves
from tickets.db import db
from tickets.privacy import access as privacy

# endpoint, export_type: a TypeError in Flask-Admin's links (the pager, the export); _method: a BuildError; _scheme and
# _external: links to another scheme.
URL_FOR_NAMES = ("endpoint", "export_type", "_method", "_scheme", "_external", "_anchor")
REFUSED = "网址中有控制台不接受的参数"


def test_an_argument_named_as_a_url_for_parameter_is_a_400_on_every_console_list(world):
    admin = world.console("admin")
    lists = console_lists(world.app)
    assert len(lists) >= 10
    for view in lists:
        for name in URL_FOR_NAMES:
            response = admin.get(f"{view.url}/", query_string={name: "javascript", "_external": "1"})
            assert response.status_code == 400, (view.url, name, response.status_code)
            assert REFUSED in response.get_data(as_text=True)
            if serves(world.app, view, "export"):
                export = admin.get(f"{view.url}/export/csv/", query_string={name: "x"})
                assert export.status_code in (302, 400), view.url
        assert admin.get(f"{view.url}/", query_string={"search": "_x", "endpoint_x": "1"}).status_code == 200


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(URL_FOR_NAMES) | st.text(max_size=10).map(lambda s: "_" + s),
       value=st.text(max_size=10))
def test_a_queue_never_answers_5xx_to_an_argument_of_url_for(world, name, value):
    office = world.console("office")
    for path in ("/admin/queue-intake/", "/admin/cases/"):
        response = office.get(path, query_string={name: value})
        assert response.status_code == 400, (path, name, response.status_code)


@pytest.mark.parametrize("name", ["endpoint", "_method", "_scheme"])
def test_the_whole_numbers_export_refuses_an_argument_of_url_for(world, name):
    """A refused reason goes back to the list with the list's arguments: one named as url_for's own is refused first."""
    office = world.console("office")
    token = page_csrf(office, "/admin/cases/")
    response = office.post("/admin/cases/export/csv/full", query_string={name: "x"},
                           data={"csrf_token": token, "full_phones": "y", "reason": ""})
    assert response.status_code == 400
    assert REFUSED in response.get_data(as_text=True)


@pytest.mark.parametrize("name", ["endpoint", "_method", "_scheme"])
def test_the_access_log_pager_refuses_an_argument_of_url_for(world, name):
    with world.app.app_context():
        for _ in range(access_log.PAGE_SIZE + 1):  # a second page: the pager links to it
            privacy.record(db.session, "view_phone", actor="cli", reason="核对")
        db.session.commit()
    admin = world.console("admin")
    assert 'rel="next"' in admin.get("/admin/access-log/").get_data(as_text=True)
    response = admin.get("/admin/access-log/", query_string={name: "x"})
    assert response.status_code == 400
    assert REFUSED in response.get_data(as_text=True)


@given(st.text(max_size=12))
@example("²")  # str.isdigit() passes it, int() refuses it
@example("١٢")  # Arabic-Indic digits: int() reads them
def test_a_version_from_a_form_is_ascii_digits_or_none(raw):
    number = version_number(raw)
    assert number is None or (raw.isascii() and str(number) == raw.lstrip("0").rjust(1, "0"))


def test_a_bulk_selection_with_a_superscript_version_is_acted_on_not_a_500(world):
    """「²」 passes str.isdigit() and int() refuses it: the version reads as none given."""
    no = world.file()["tracking_no"]
    office = world.console("office")
    token = page_csrf(office, "/admin/queue-intake/")
    response = office.post("/admin/queue-intake/bulk", data={"csrf_token": token, "action": "accept",
                                                             "tickets": f"{no}:²"})
    assert response.status_code == 200
    assert world.ticket("office", no)["status"] == "accepted"


# --- the working-day calendar is the city's: published by administrators and the root office's staff ------------------

def test_only_the_city_publishes_the_working_day_calendar(world, network):
    county = world.console("office_c1")
    page = county.get("/admin/calendar/2027")
    assert page.status_code == 200 and 'name="days"' not in page.get_data(as_text=True)  # read, not written
    refused = county.post("/admin/calendar/2027", data={"days": "2027-01-04,0,县里放假",
                                                        "csrf_token": page_csrf(county, "/admin/calendar/2027")})
    assert refused.status_code == 403
    assert "2027-01-04" not in county.get("/admin/calendar/2027").get_data(as_text=True)
    banner = county.get("/admin/").get_data(as_text=True)
    assert 'id="calendar-banner-2027"' in banner and "/admin/calendar/2027" not in banner
    city = world.console("office")
    assert 'name="days"' in city.get("/admin/calendar/2027").get_data(as_text=True)
    done = city.post("/admin/calendar/2027", data={"days": "2027-01-04,0,调休",
                                                   "csrf_token": page_csrf(city, "/admin/calendar/2027")})
    assert done.status_code == 302
