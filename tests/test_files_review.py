"""Files, bulk actions and Idempotency-Key at their edges: what a client may send is answered in the error shape
(4xx), never a 500, and nothing it sent is dropped without a word."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import examples
from tests.test_attachments import FILING, pdf
from tickets.db import db
from tickets.models import Attachment, Ticket

BOUNDARY = "banjie-review-boundary"


def multipart(world, parts: list[bytes], path: str = "/api/v1/tickets", headers=None):
    """A multipart/form-data request written by hand: the test client always gives a file part a filename."""
    body = b"".join(b"--%s\r\n%s\r\n" % (BOUNDARY.encode(), part) for part in parts) + b"--%s--\r\n" % BOUNDARY.encode()
    return world.client.post(path, data=body, content_type=f"multipart/form-data; boundary={BOUNDARY}",
                             headers=headers or {})


def text_part(name: str, value: str) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}'.encode()


def count(world, model) -> int:
    with world.app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_a_file_part_without_a_filename_is_refused_not_filed_without_the_file(world):
    """Werkzeug reads a part without `filename` as a text field: the filing went through (201) and the file was lost."""
    nameless = b'Content-Disposition: form-data; name="files[]"\r\nContent-Type: application/pdf\r\n\r\n' + pdf()
    response = multipart(world, [text_part(k, v) for k, v in FILING.items()] + [nameless])
    assert response.status_code == 422, response.get_json()
    assert "filename" in response.get_json()["error"]["fields"]["files"]
    assert count(world, Ticket) == 0 and count(world, Attachment) == 0
    filed = world.file()  # a staff reply through the same reading of a multipart body
    reply = multipart(world, [text_part("content", "已补办。"), nameless],
                      path=f"/api/v1/staff/tickets/{filed['tracking_no']}/reply", headers=world.headers("dept_a"))
    assert reply.status_code in (404, 422) and "error" in reply.get_json()


@pytest.mark.parametrize("number", ["BJ20261116-0001\x00", "BJ\ud800", "\udcff" * 3])
def test_a_bulk_tracking_number_the_database_cannot_compare_is_a_422(world, number):
    """A NUL (PostgreSQL) or a lone surrogate (both databases) in a selection's number was a 500."""
    world.file()
    response = world.client.post("/api/v1/staff/tickets/bulk/accept", data=json.dumps({"tickets": [number]}),
                                 content_type="application/json", headers=world.headers("office"))
    assert response.status_code == 422, response.get_data()
    assert "tickets" in response.get_json()["error"]["fields"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=26),  # lone surrogates too (JSON can escape them) st.integers(), st.none(), st.booleans(),
    st.fixed_dictionaries({"tracking_no": st.text(st.characters(exclude_categories=()), max_size=26)},
                          optional={"version": st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5),
                                                         st.booleans(), st.none())})),
    max_size=5))
def test_any_bulk_selection_is_answered_per_case_or_refused_whole_never_a_500(world, entries):
    response = world.client.post("/api/v1/staff/tickets/bulk/accept", data=json.dumps({"tickets": entries}),
                                 content_type="application/json", headers=world.headers("office"))
    assert response.status_code in (200, 422), response.get_data()
    if response.status_code == 200:
        assert all(r["ok"] or r["error"]["code"] != "internal_error" for r in response.get_json()["results"])
