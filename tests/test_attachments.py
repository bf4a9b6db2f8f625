"""附件: files judged by their content, images re-encoded without their metadata, kept in the store, and downloaded
only by who may see them: staff who see the case, the citizen with the query code (their own files, and a reply's
once the office approved it)."""
from __future__ import annotations

import io
import re

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pypdf import PdfWriter

from tests.helpers import examples, page_csrf
from tickets import attachments, storage
from tickets.attachments import Incoming
from tickets.db import db
from tickets.models import Attachment, AttachmentBlob

GPS_TAG, ORIENTATION_TAG = 0x8825, 0x0112


def jpeg(size=(40, 20), colour=(200, 30, 30), *, gps=False, orientation=None) -> bytes:
    image = Image.new("RGB", size, colour)
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    if gps:
        exif[GPS_TAG] = {1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 17.0)}
    if orientation:
        exif[ORIENTATION_TAG] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"taken at home")
    return out.getvalue()


def png(size=(30, 30), *, mode="RGBA") -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "Beijing 39.9N 116.4E")
    exif = Image.Exif()
    exif[GPS_TAG] = {1: "N", 2: (39.0, 54.0, 27.0)}
    out = io.BytesIO()
    Image.new(mode, size, (10, 120, 200, 128) if mode == "RGBA" else (10, 120, 200)).save(
        out, "PNG", pnginfo=info, exif=exif)
    return out.getvalue()


def heic(size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (20, 160, 60)).save(out, "HEIF")
    return out.getvalue()


def pdf(*, password=None) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    if password:
        writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def one(name, data, declared=None):
    return attachments.check_one(Incoming(name, declared, data))


# --- the check: content decides, metadata goes ----------------------------------------------------------------------

def test_a_photo_loses_its_gps_position_and_other_metadata_and_is_turned_upright():
    kept = one("IMG_0001.JPG", jpeg(size=(40, 20), gps=True, orientation=6))
    image = Image.open(io.BytesIO(kept.data))
    assert image.format == "JPEG" and not image.getexif() and "comment" not in image.info
    assert b"Exif" not in kept.data and b"PhoneMaker" not in kept.data and b"taken at home" not in kept.data
    assert image.size == (20, 40) == (kept.width, kept.height)  # orientation 6: turned a quarter, as the phone showed it
    assert kept.name == "IMG_0001.jpg" and kept.content_type == "image/jpeg"
    thumb = Image.open(io.BytesIO(kept.thumbnail))
    assert thumb.format == "JPEG" and max(thumb.size) <= attachments.THUMB_SIDE and not thumb.getexif()


def test_a_png_keeps_its_type_but_not_its_text_or_exif():
    kept = one("截图.png", png())
    image = Image.open(io.BytesIO(kept.data))
    assert image.format == "PNG" and not image.getexif() and "Location" not in image.info
    assert b"Beijing" not in kept.data and b"eXIf" not in kept.data
    assert kept.name == "截图.png"


def test_an_iphone_heic_photo_is_kept_as_jpeg():
    kept = one("IMG_4032.HEIC", heic(), "image/heic")
    assert Image.open(io.BytesIO(kept.data)).format == "JPEG"
    assert (kept.name, kept.content_type, kept.width, kept.height) == ("IMG_4032.jpg", "image/jpeg", 64, 48)


def test_a_pdf_is_kept_as_sent_and_a_large_photo_is_made_smaller():
    document = pdf()
    kept = one("不予受理通知书.pdf", document, "application/pdf")
    assert (kept.data, kept.thumbnail, kept.content_type) == (document, None, "application/pdf")
    big = one("scan.jpg", jpeg(size=(5000, 1000)))
    assert (big.width, big.height) == (attachments.MAX_SIDE, 819)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database involved
@pytest.mark.parametrize("name, data, declared, says", [
    ("notice.jpg", b"MZ\x90\x00 an executable", "image/jpeg", "is not a JPEG, PNG or HEIC picture or a PDF"),
    ("notice.pdf", b"<html><script>alert(1)</script></html>", "application/pdf", "is not a JPEG"),
    ("photo.jpg", png(mode="RGB"), "image/jpeg", "is not what its name says: its content is a PNG image"),
    ("scan.png", pdf(), "image/png", "is not what its name says: its content is a PDF document"),
    ("report.docx", pdf(), None, "is not what its name says"),
    ("broken.jpg", jpeg()[:60], "image/jpeg", "could not be opened"),
    ("broken.pdf", b"%PDF-1.7\n garbage", "application/pdf", "could not be opened"),
    ("locked.pdf", pdf(password="secret"), "application/pdf", "is protected by a password"),
    ("empty.jpg", b"", "image/jpeg", "is empty"),
    ("huge.jpg", b"\xff\xd8\xff" + b"\0" * (attachments.MAX_BYTES - 2), "image/jpeg", "is larger than 10 MB"),
])
def test_a_file_that_is_not_what_it_claims_is_refused_by_name(app, name, data, declared, says):
    with app.test_request_context("/?lang=en"), pytest.raises(attachments.Refused) as refused:
        one(name, data, declared)
    message = str(refused.value.args[0])
    assert says in message and name in message


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database involved
def test_a_decompression_bomb_is_refused_before_it_is_decoded(app):
    out = io.BytesIO()
    Image.new("1", (9000, 9000)).save(out, "PNG")  # 81 megapixels in a few kilobytes
    with app.test_request_context("/?lang=en"), pytest.raises(attachments.Refused, match="too many pixels"):
        one("bomb.png", out.getvalue())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database involved
@pytest.mark.parametrize("size", [(1, attachments.MAX_DECODED_SIDE + 1), (attachments.MAX_DECODED_SIDE + 1, 1)])
def test_a_picture_too_long_and_narrow_is_refused_before_it_is_decoded(app, size):
    """Within MAX_PIXELS, but a row pointer each: a 1 x 59,000,000 PNG took 600 MB to decode."""
    out = io.BytesIO()
    Image.new("L", size).save(out, "PNG")
    with app.test_request_context("/"), pytest.raises(attachments.Refused, match="过于狭长"):
        one("strip.png", out.getvalue())
    panorama = io.BytesIO()
    Image.new("RGB", (12_000, 3_000)).save(panorama, "JPEG")
    assert one("panorama.jpg", panorama.getvalue()).width == attachments.MAX_SIDE


def test_a_polyglot_loses_what_rides_along_and_a_pdf_is_only_ever_a_download():
    """A JPEG with a page, a script or an archive appended (a polyglot) is kept as the picture alone: re-encoding
    writes the pixels, nothing else. A PDF cannot be cleaned that way: it is served only as a download (below)."""
    payload = b"<html><script>alert(document.cookie)</script></html>PK\x03\x04evil.zip"
    kept = one("photo.jpg", jpeg() + payload)
    assert b"script" not in kept.data and b"PK\x03\x04" not in kept.data
    assert one("exactly-10MB.jpg", jpeg() + b"\0" * (attachments.MAX_BYTES - len(jpeg()))).width == 40


def test_no_name_is_judged_by_content_and_a_path_in_the_name_is_dropped():
    assert one("", jpeg()).name == "attachment.jpg"
    assert one("C:\\Users\\张三\\Desktop\\照片", jpeg(), "application/octet-stream").name == "照片.jpg"
    assert one("../../etc/passwd.jpg", jpeg()).name == "passwd.jpg"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database involved
@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=60), data=st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"\0\0\0\x18ftypheic", b"%PDF-1.4\n"]).flatmap(
        lambda head: st.binary(max_size=300).map(lambda tail: head + tail))),
    declared=st.one_of(st.none(), st.sampled_from(["image/jpeg", "image/png", "application/pdf", "text/html"])))
def test_any_bytes_with_any_name_are_kept_or_refused_with_a_message_never_an_exception(app, name, data, declared):
    with app.test_request_context():
        good, messages = attachments.check([Incoming(name, declared, data)])
    assert len(good) + len(messages) == 1
    for message in messages:
        assert message.strip()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no database involved
def test_more_than_five_files_is_one_message_and_no_file(app):
    with app.test_request_context():
        good, messages = attachments.check([Incoming(f"{n}.jpg", None, jpeg()) for n in range(6)])
    assert good == [] and len(messages) == 1 and "5" in messages[0]


# --- filing with files, and who may download them -------------------------------------------------------------------

FILING = {"name": "张三", "phone": "13800138000", "problem_type": "cannot_handle", "privacy": "y",
          "description": "窗口说材料不全，不予受理，但没有说缺什么。"}


def file_with(world, *files, **fields):
    return world.client.post("/api/v1/tickets", data={**FILING, **fields, "files[]": [
        (io.BytesIO(data), name, declared) for name, data, declared in files]}, content_type="multipart/form-data")


def test_the_api_files_a_case_with_files_and_each_audience_downloads_what_it_may(world):
    response = file_with(world, ("不予受理通知书.pdf", pdf(), "application/pdf"), ("表格.jpg", jpeg(gps=True), "image/jpeg"),
                         department_id=str(world.departments["A"]))
    assert response.status_code == 201, response.get_json()
    no, code = response.get_json()["tracking_no"], response.get_json()["query_code"]
    public = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()
    assert [f["name"] for f in public["attachments"]] == ["不予受理通知书.pdf", "表格.jpg"]
    document, photo = public["attachments"]
    assert "visible_to_citizen" not in document and document["thumbnail_url"] is None and photo["thumbnail_url"]

    got = world.client.get(f"{document['url']}?code={code}")
    assert got.status_code == 200 and got.data == pdf() or got.data.startswith(b"%PDF")
    assert got.headers["Content-Disposition"].startswith("attachment;") and "filename*=UTF-8''" in \
        got.headers["Content-Disposition"]
    assert got.headers["X-Content-Type-Options"] == "nosniff" and "no-store" in got.headers["Cache-Control"]
    image = world.client.get(f"{photo['url']}?code={code}")
    assert image.headers["Content-Type"] == "image/jpeg" and b"Exif" not in image.data
    thumb = world.client.get(f"{photo['thumbnail_url']}&code={code}")
    assert thumb.status_code == 200 and len(thumb.data) <= len(image.data) + 2000

    # without the code, with a wrong one, or a file of another case: nothing
    assert world.client.get(document["url"]).status_code == 404
    assert world.client.get(f"{document['url']}?code=WRONG123").status_code == 404
    other = world.file()
    assert world.client.get(f"/api/v1/tickets/{other['tracking_no']}/attachments/{document['id']}"
                            f"?code={other['query_code']}").status_code == 404

    # staff: the office sees the case and its files; department A once the case is its own, B never
    staff = world.ticket("office", no)["attachments"]
    assert [f["visible_to_citizen"] for f in staff] == [True, True]
    assert world.get("office", staff[0]["url"]).status_code == 200
    assert world.get("dept_a", staff[0]["url"]).status_code == 404
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"], working_days=5)
    assert world.get("dept_a", staff[0]["url"]).status_code == 200
    assert world.get("dept_b", staff[0]["url"]).status_code == 404
    assert world.get(None, staff[0]["url"]).status_code == 401
    for who in ("supervisor", "leader", "admin"):  # the office's other roles see its cases, and so their files
        assert world.get(who, staff[0]["url"]).status_code == 200, who


def test_a_bad_file_is_a_field_error_beside_the_other_fields_and_files_nothing(world):
    response = file_with(world, ("照片.jpg", b"not a picture at all", "image/jpeg"), name="")
    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]
    assert set(fields) == {"name", "files"} and "照片.jpg" in fields["files"]
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Attachment)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AttachmentBlob)) == 0


def test_a_request_larger_than_five_files_is_413_in_the_error_shape_and_json_stays_small(world):
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    huge = b"\xff\xd8\xff" + b"\0" * (attachments.REQUEST_MAX + 10)
    # encoded here: the test client's own encoding spools to a temporary file it leaves open when the app refuses it
    boundary, body = encode_multipart({**FILING, "files[]": FileStorage(io.BytesIO(huge), "a.jpg", "files[]",
                                                                             "image/jpeg")})
    response = world.client.post("/api/v1/tickets", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert "10 MB" in response.get_json()["error"]["message"]
    big_json = world.client.post("/api/v1/tickets", json={**FILING, "description": "长" * 70_000})
    assert big_json.status_code == 413


# --- a reply's files: the citizen's once approved -------------------------------------------------------------------

def reply_with(world, no, *files, who="dept_a", action="reply", content="已补办，附受理回执。"):
    fields = {"content": content} if content is not None else {}
    return world.client.post(f"/api/v1/staff/tickets/{no}/{action}", headers=world.headers(who), data={
        **fields, "files[]": [(io.BytesIO(data), name, None) for name, data in files]},
        content_type="multipart/form-data")


def test_a_replys_files_reach_the_citizen_only_when_the_office_approves_that_reply(world):
    filed = world.file()
    no, code = filed["tracking_no"], filed["query_code"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"], working_days=5)
    first = reply_with(world, no, ("回执.pdf", pdf()))
    assert first.status_code == 200, first.get_json()
    assert [f["name"] for f in first.get_json()["attachments"]] == ["回执.pdf"]
    assert world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()["attachments"] == []
    world.act("office", no, "send_back", reason="回执不清楚，请重新上传。")
    second = reply_with(world, no, ("回执清晰版.jpg", jpeg()))
    assert second.status_code == 200
    world.act("office", no, "approve")
    public = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()
    assert [f["name"] for f in public["attachments"]] == ["回执清晰版.jpg"]  # the sent-back reply's file stays internal
    assert public["attachments"][0]["source"] == "reply"
    staff = {f["name"]: f["visible_to_citizen"] for f in world.ticket("office", no)["attachments"]}
    assert staff == {"回执.pdf": False, "回执清晰版.jpg": True}


def test_the_offices_own_answer_shows_its_files_at_once_and_json_cannot_carry_files(world):
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    refused = world.act("office", no, "resolve", expect=422, content="已解决。", files="data:image/png;base64,AAAA")
    assert "files" in refused["error"]["fields"]
    assert reply_with(world, no, ("办理指南.pdf", pdf()), who="office", action="resolve").status_code == 200
    public = world.client.get(f"/api/v1/tickets/{no}?code={filed['query_code']}").get_json()
    assert [(f["name"], f["source"]) for f in public["attachments"]] == [("办理指南.pdf", "answer")]


# --- 补充材料 with files ----------------------------------------------------------------------------------------------

def test_the_citizen_adds_files_with_or_without_text_up_to_the_cases_allowance(world, monkeypatch):
    filed = world.file()
    no, code = filed["tracking_no"], filed["query_code"]
    url = f"/api/v1/tickets/{no}/supplement?code={code}"
    only_files = world.client.post(url, data={"files[]": [(io.BytesIO(jpeg()), "补充.jpg", "image/jpeg")]},
                                   content_type="multipart/form-data")
    assert only_files.status_code == 200, only_files.get_json()
    assert only_files.get_json()["timeline"][-1]["note"] == "补充了 1 个文件。"
    assert world.client.post(url, data={}, content_type="multipart/form-data").status_code == 422
    notice = world.ticket("office", no)["new_information"]
    assert notice[-1]["files"] == 1 and notice[-1]["content"] is None
    monkeypatch.setattr(attachments, "CITIZEN_FILES_PER_CASE", 2)
    too_many = world.client.post(url, data={"content": "再补两张", "files[]": [
        (io.BytesIO(jpeg()), f"{n}.jpg", "image/jpeg") for n in range(2)]}, content_type="multipart/form-data")
    assert too_many.status_code == 422 and "At most 1" in too_many.get_json()["error"]["fields"]["files"] or \
        "最多" in too_many.get_json()["error"]["fields"]["files"]


# --- the public form: nothing chosen is lost when a field must be corrected -----------------------------------------

def test_the_form_holds_good_files_while_a_field_is_corrected_then_files_them(world):
    client = world.app.test_client()
    token = page_csrf(client)
    first = client.post("/", data={**FILING, "name": "", "csrf_token": token, "files[]": [
        (io.BytesIO(jpeg()), "通知书.jpg", "image/jpeg"), (io.BytesIO(b"hello"), "病毒.pdf", "application/pdf"),
        (io.BytesIO(pdf()), "表格.pdf", "application/pdf")]}, content_type="multipart/form-data")
    page = first.get_data(as_text=True)
    assert first.status_code == 422 and "病毒.pdf" in page  # the refused file is named
    assert "通知书.jpg" in page and "表格.pdf" in page and 'id="held-files"' in page
    held = re.findall(r'name="drop_held" value="(\d+)"', page)
    assert len(held) == 2
    # the second try: the name given, the PDF left out, one more photo chosen
    second = client.post("/", data={**FILING, "csrf_token": token, "drop_held": held[1], "files[]": [
        (io.BytesIO(heic()), "IMG_1.heic", "image/heic")]}, content_type="multipart/form-data")
    assert second.status_code == 303, second.get_data(as_text=True)
    no = re.search(r'id="tracking-no">([^<]+)<', client.get("/filed").get_data(as_text=True)).group(1)
    names = [f["name"] for f in world.ticket("office", no)["attachments"]]
    assert names == ["通知书.jpg", "IMG_1.jpg"]
    with world.app.app_context():  # the left-out file and its bytes are gone; nothing is held any more
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Attachment)) == 2
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AttachmentBlob)) == 4  # files and thumbnails
    assert 'id="held-files"' not in client.get("/").get_data(as_text=True)
    # the case page lists them and serves them to this browser only
    case = client.get(f"/track/{no}").get_data(as_text=True)
    link = re.search(rf'href="(/track/{no}/files/\d+)"', case).group(1)
    assert client.get(link).status_code == 200
    assert world.app.test_client().get(link).status_code == 302  # another browser is sent to the lookup form


def test_held_files_nobody_came_back_for_are_purged_after_a_day(world, clock):
    client = world.app.test_client()
    client.post("/", data={**FILING, "name": "", "csrf_token": page_csrf(client), "files[]": [
        (io.BytesIO(jpeg()), "a.jpg", "image/jpeg")]}, content_type="multipart/form-data")
    with world.app.app_context():
        assert attachments.purge_held(db.session, clock.now) == 0
        clock.advance(hours=25)
        assert attachments.purge_held(db.session, clock.now) == 1
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AttachmentBlob)) == 0


def test_the_case_page_keeps_typed_text_when_a_file_is_refused(world):
    client = world.app.test_client()
    client.post("/", data={**FILING, "csrf_token": page_csrf(client)})
    no = re.search(r'id="tracking-no">([^<]+)<', client.get("/filed").get_data(as_text=True)).group(1)
    token = page_csrf(client, f"/track/{no}")
    response = client.post(f"/track/{no}/supplement", data={"csrf_token": token, "content": "窗口工作人员姓王。",
                           "files[]": [(io.BytesIO(b"GIF89a"), "动图.gif", "image/gif")]},
                           content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "窗口工作人员姓王。" in page and "动图.gif" in page
    ok = client.post(f"/track/{no}/supplement", data={"csrf_token": token, "content": "窗口工作人员姓王。",
                     "files[]": [(io.BytesIO(jpeg()), "照片.jpg", "image/jpeg")]}, content_type="multipart/form-data")
    assert ok.status_code == 303
    assert "照片.jpg" in client.get(f"/track/{no}").get_data(as_text=True)


# --- the console ------------------------------------------------------------------------------------------------------

def test_the_console_shows_files_and_a_department_replies_with_one(world):
    response = file_with(world, ("通知.jpg", jpeg(), "image/jpeg"))
    no = response.get_json()["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"], working_days=5)
    handler = world.console("dept_a")
    page = handler.get(f"/admin/case/{no}").get_data(as_text=True)
    assert 'id="attachments"' in page and "通知.jpg" in page and 'enctype="multipart/form-data"' in page
    link = re.search(rf'href="(/admin/case/{no}/files/\d+)"', page).group(1)
    assert handler.get(link).status_code == 200 and handler.get(link + "?thumbnail=1").status_code == 200
    assert world.console("dept_b").get(link).status_code in (403, 404)
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    sent = handler.post(f"/admin/case/{no}/reply", data={
        "csrf_token": token, "version": version, "content": "已办结，见附件。",
        "files[]": [(io.BytesIO(pdf()), "办结通知.pdf", "application/pdf")]}, content_type="multipart/form-data")
    assert sent.status_code == 302, sent.get_data(as_text=True)
    assert [f["name"] for f in world.ticket("office", no)["attachments"]] == ["通知.jpg", "办结通知.pdf"]


def test_staff_file_a_walk_ins_papers(world):
    office = world.console("office")
    page = office.get("/admin/intake/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = office.post("/admin/intake/", data={
        **FILING, "channel": "window", "csrf_token": token,
        "files[]": [(io.BytesIO(jpeg()), "群众带来的通知.jpg", "image/jpeg")]}, content_type="multipart/form-data")
    assert response.status_code == 303, response.get_data(as_text=True)
    with world.app.app_context():
        row = db.session.scalar(sa.select(Attachment))
        assert (row.name, row.source, row.visible_to_citizen, row.uploaded_by) == (
            "群众带来的通知.jpg", "citizen", True, world.users["office"])


# --- storage ----------------------------------------------------------------------------------------------------------

def on_a_volume(make_app, tmp_path):
    """An office that keeps its files on a volume (tmp_path/files): (the volume, the app, the served world)."""
    from tests.helpers import seed_world

    volume = tmp_path / "files"
    volume.mkdir()
    app = make_app(ATTACHMENT_STORAGE="directory", ATTACHMENT_DIR=str(volume))
    return volume, app, seed_world(app, app.test_client())


def filed_photo(world) -> tuple[str, str, dict]:
    """A case filed with a photo: its tracking number, query code and the photo as the citizen's view lists it."""
    response = file_with(world, ("通知.jpg", jpeg(), "image/jpeg"))
    assert response.status_code == 201, response.get_json()
    no, code = response.get_json()["tracking_no"], response.get_json()["query_code"]
    (item,) = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()["attachments"]
    return no, code, item


def stored_files(volume) -> list:
    """The files a volume keeps, each in its two-letter folder (not the volume's marker at its root)."""
    return [path for path in volume.glob("??/*") if path.is_file()]


def test_a_deployment_keeps_files_on_a_volume_instead(make_app, tmp_path):
    volume, app, world = on_a_volume(make_app, tmp_path)
    no, code, item = filed_photo(world)
    assert world.client.get(f"{item['url']}?code={code}").headers["Content-Type"] == "image/jpeg"
    assert len(stored_files(volume)) == 2  # the photo and its thumbnail (and the volume's marker)
    assert (volume / storage.MARKER).read_bytes() == storage.MARKER_TEXT
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AttachmentBlob)) == 0


def test_a_volume_that_fails_is_a_503_to_try_again_and_nothing_of_the_filing_is_kept(make_app, tmp_path, caplog):
    """The volume unmounted, full or failing is an outage, like the database away: 503 with Retry-After on the API,
    the form and downloads (never a 500, never a 404 that says the file is gone), nothing kept, the log line without
    the file's name; /readyz says so. Back, everything works again without a restart."""
    import logging
    import shutil

    from tickets.models import Ticket

    volume, app, world = on_a_volume(make_app, tmp_path)
    no, code, item = filed_photo(world)
    kept = {path.name for path in stored_files(volume)}
    with app.app_context():
        cases = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket))

    def ready() -> dict:
        from tickets.health import PROBE

        PROBE.get(app).kept = None
        return world.client.get("/readyz").get_json()["checks"]["attachments"]

    assert ready()["ok"] is True and ready()["kind"] == "directory" and ready()["free_mb"] >= 0
    shutil.move(volume, tmp_path / "unmounted")  # the volume gone from under the running app
    caplog.set_level(logging.ERROR, logger="tickets.storage")
    refused = file_with(world, ("通知.jpg", jpeg(), "image/jpeg"))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
    assert refused.get_json()["error"]["code"] == "service_unavailable"
    assert "文件存储" in refused.get_json()["error"]["message"]
    download = world.client.get(f"{item['url']}?code={code}")
    assert download.status_code == 503 and download.headers["Retry-After"] == "30"
    token = page_csrf(world.client, "/")
    page = world.client.post("/", data={**FILING, "csrf_token": token, "files[]": [
        (io.BytesIO(jpeg()), "通知.jpg", "image/jpeg")]}, content_type="multipart/form-data")
    text = page.get_data(as_text=True)
    # the form again, with what was typed and a way forward: nothing is lost
    assert page.status_code == 503 and page.headers["Retry-After"] == "30"
    assert "无法访问文件存储" in text and "不带附件" in text and FILING["description"] in text and 'name="name"' in text
    assert world.client.post("/", data={**FILING, "csrf_token": token}).status_code == 303  # without the files: filed
    cases += 1
    case_page = f"/track/{no}"
    world.client.post("/track", data={"tracking_no": no, "code": code, "csrf_token": page_csrf(world.client, "/track")})
    supplement = world.client.post(f"{case_page}/supplement", data={
        "content": "补充：窗口电话打不通。", "csrf_token": page_csrf(world.client, case_page),
        "files[]": [(io.BytesIO(jpeg()), "补充.jpg", "image/jpeg")]}, content_type="multipart/form-data")
    assert supplement.status_code == 503 and supplement.headers["Retry-After"] == "30"
    assert "文件存储" in supplement.get_data(as_text=True) and "补充：窗口电话打不通。" in supplement.get_data(as_text=True)
    # staff in the console: the walk-in's form and a reply with files come back with what was typed
    office = world.console("office")
    intake = office.get("/admin/intake/").get_data(as_text=True)
    walk_in = office.post("/admin/intake/", data={
        **FILING, "channel": "window", "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', intake).group(1),
        "files[]": [(io.BytesIO(jpeg()), "群众带来的通知.jpg", "image/jpeg")]}, content_type="multipart/form-data")
    assert walk_in.status_code == 503 and FILING["description"] in walk_in.get_data(as_text=True)
    assert "文件存储" in walk_in.get_data(as_text=True)
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"], working_days=5)
    handler = world.console("dept_a")
    case = handler.get(f"/admin/case/{no}").get_data(as_text=True)
    reply = handler.post(f"/admin/case/{no}/reply", data={
        "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', case).group(1),
        "version": re.search(r'name="version" value="(\d+)"', case).group(1), "content": "已办结，见附件。",
        "files[]": [(io.BytesIO(pdf()), "办结通知.pdf", "application/pdf")]}, content_type="multipart/form-data")
    assert reply.status_code == 503 and "已办结，见附件。" in reply.get_data(as_text=True)
    assert "文件存储" in reply.get_data(as_text=True)
    assert world.ticket("office", no)["status"] == "transferred"  # nothing of the reply was kept
    assert not volume.exists()  # a volume that is not there is not made again on the local disk
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == cases  # nothing filed
    assert ready()["ok"] is False and ready()["error"] == "FileNotFoundError"
    lines = [record.getMessage() for record in caplog.records if record.name == "tickets.storage"]
    assert lines and all("cannot" in line and str(tmp_path) not in line for line in lines)
    assert not any(key in line for key in kept for line in lines)

    shutil.move(tmp_path / "unmounted", volume)  # back
    assert world.client.get(f"{item['url']}?code={code}").status_code == 200
    assert file_with(world, ("通知.jpg", jpeg(), "image/jpeg")).status_code == 201 and ready()["ok"] is True
    # a file the volume cannot read (here: a folder where the file should be) is the volume failing, not a 404
    (name,) = [k for k in kept if (volume / k[:2] / k).stat().st_size == len(storage.FILE_HEADER) + 12 + 16 +
               len(world.client.get(f"{item['url']}?code={code}").get_data())]
    (volume / name[:2] / name).unlink()
    (volume / name[:2] / name).mkdir()
    assert world.client.get(f"{item['url']}?code={code}").status_code == 503


def test_an_empty_mount_point_is_not_the_volume_and_no_file_goes_to_the_local_disk(make_app, tmp_path, clock, caplog):
    """NFS unmounted under a running app leaves its mount point: an empty directory the process may write to. No file
    may go there (it would vanish when the volume is mounted again) and none may read as deleted: the volume carries a
    marker, and without it, while the database knows of files on the volume, writing, reading and deleting are 503s,
    the anonymisation stops and says what stays done, /readyz says which it is. A volume from before the marker is
    recognised by its files and marked."""
    import logging
    import shutil

    from tests.test_privacy_retention import closed_case, png
    from tickets.models import AttachmentFileKey

    volume, app, world = on_a_volume(make_app, tmp_path)
    no, code = closed_case(world, files=[("照片.png", png())])
    (item,) = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()["attachments"]
    assert (volume / storage.MARKER).is_file() and len(stored_files(volume)) == 2
    held = world.client.post("/", data={**FILING, "name": "", "csrf_token": page_csrf(world.client, "/"), "files[]": [
        (io.BytesIO(pdf()), "表格.pdf", "application/pdf")]}, content_type="multipart/form-data")
    assert held.status_code == 422 and len(stored_files(volume)) == 3  # the form holds the file for the filing

    def ready() -> dict:
        from tickets.health import PROBE

        PROBE.get(app).kept = None
        return world.client.get("/readyz").get_json()["checks"]["attachments"]

    shutil.move(volume, tmp_path / "unmounted")
    volume.mkdir()  # the mount point left behind
    caplog.set_level(logging.ERROR, logger="tickets.storage")
    refused = file_with(world, ("通知.jpg", jpeg(), "image/jpeg"))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
    download = world.client.get(f"{item['url']}?code={code}")
    assert download.status_code == 503 and download.headers["Retry-After"] == "30"  # not a 404: the file is not gone
    answer = ready()
    assert answer == {"ok": False, "kind": "directory", "error": "not_the_volume", "ms": answer["ms"]}
    assert file_with(world).status_code == 201  # a filing without files needs no volume
    clock.advance(days=8)  # the case's survey closed: it has ended (tickets/privacy/retention.py `survey_open`)
    stopped = world.app.test_cli_runner().invoke(args=["privacy", "anonymise", "--closed-before",
                                                       clock.now.date().isoformat()])
    assert stopped.exit_code == 1 and "ATTACHMENT_DIR" in stopped.stderr and "再次运行" in stopped.stderr, stopped.output
    assert "Traceback" not in stopped.output
    # the scheduled jobs that delete files leave them for their next tick, without an error of their own
    from tickets.privacy.retention import anonymise_expired
    from tickets.tasks import purge_held_attachments

    app.config["RETENTION_DAYS"] = 1
    with app.app_context():
        anonymise_expired.fn()
        purge_held_attachments.fn()
    app.config["RETENTION_DAYS"] = 0
    assert world.ticket("office", no)["anonymised_at"] is None
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Attachment).where(Attachment.held.is_not(None)))
    assert list(volume.iterdir()) == []  # nothing written to the local disk, not even a marker
    lines = [record.getMessage() for record in caplog.records if record.name == "tickets.storage"]
    assert lines and all("not mounted?" in line and str(tmp_path) not in line for line in lines)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AttachmentFileKey)) == 3  # no key deleted

    volume.rmdir()
    shutil.move(tmp_path / "unmounted", volume)  # mounted again: everything works, nothing was lost
    assert world.client.get(f"{item['url']}?code={code}").status_code == 200 and ready()["ok"] is True
    # a volume from before the marker: its files show it is the volume, and it is marked
    (volume / storage.MARKER).unlink()
    assert file_with(world, ("通知.jpg", jpeg(), "image/jpeg")).status_code == 201
    assert (volume / storage.MARKER).read_bytes() == storage.MARKER_TEXT
    (volume / storage.MARKER).unlink()
    assert ready()["ok"] is True and (volume / storage.MARKER).is_file()
    done = world.app.test_cli_runner().invoke(args=["privacy", "anonymise", "--closed-before",
                                                    clock.now.date().isoformat()])
    assert done.exit_code == 0, done.output
    with app.app_context():
        purge_held_attachments.fn()  # the held file, a day old, goes now
    # the anonymised case's photo and thumbnail gone, the held file gone, the new filing's photo and thumbnail kept
    assert len(stored_files(volume)) == 2


def test_property_no_sequence_of_mounts_and_file_operations_loses_a_file_or_writes_under_the_mount_point(
        make_app, tmp_path):
    """Any sequence of writing, reading and deleting files, the volume unmounted (an empty mount point left) and mounted
    again, and its marker removed (a volume from before the marker): while the database knows of a file on the volume,
    an empty mount point gets nothing written to it and every operation there is StorageUnavailable (nothing read as
    deleted, no key dropped); mounted, every kept file reads back as written and the files on the volume are exactly
    the kept ones."""
    import shutil

    from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

    from tickets.errors import StorageUnavailable
    from tickets.models import AttachmentFileKey

    app = make_app()  # the store under test is made for each run's own volume
    runs = iter(range(10**6))

    class Volume(RuleBasedStateMachine):
        @initialize()
        def start(self):
            self.root = tmp_path / f"run{next(runs)}"
            self.volume, self.away = self.root / "files", self.root / "away"
            self.volume.mkdir(parents=True)
            self.kept: dict[str, bytes] = {}
            self.lost: set[str] = set()  # put under an empty mount point while nothing was known (see `put`)
            self.mounted = True
            self.store = storage.DirectoryStore(self.volume)
            with app.app_context():
                db.session.execute(sa.delete(AttachmentFileKey))
                db.session.commit()

        def attempt(self, operation):
            """The operation, committed; whether it was refused as the volume being away (then nothing kept)."""
            with app.app_context():
                try:
                    result = operation(db.session)
                except StorageUnavailable:
                    db.session.rollback()
                    return True, None
                db.session.commit()
                return False, result

        def expect_refusal(self) -> bool:
            return not self.mounted and bool(self.kept)  # an empty mount point with files known: not the volume

        @rule(data=st.binary(min_size=0, max_size=64))
        def put(self, data):
            key = storage.new_key()
            refused, _ = self.attempt(lambda session: self.store.put(session, key, data))
            assert refused == self.expect_refusal()
            if not refused and self.mounted:
                self.kept[key] = data
            elif not refused:  # nothing was known: an empty directory cannot be told from a new volume (README)
                self.lost.add(key)

        @rule(pick=st.integers(min_value=0))
        def get(self, pick):
            if not self.kept:
                return
            key = sorted(self.kept)[pick % len(self.kept)]
            refused, data = self.attempt(lambda session: self.store.get(session, key))
            assert refused == (not self.mounted)
            if self.mounted:
                assert data == self.kept[key]

        @rule(pick=st.integers(min_value=0))
        def delete(self, pick):
            if not self.kept:
                return
            key = sorted(self.kept)[pick % len(self.kept)]
            refused, _ = self.attempt(lambda session: self.store.delete(session, [key]))
            assert refused == (not self.mounted)
            if not refused:
                del self.kept[key]

        @rule()
        def unmount(self):
            if self.mounted:
                shutil.move(self.volume, self.away)
                self.volume.mkdir()
                self.mounted = False

        @rule()
        def mount(self):
            if not self.mounted:
                shutil.rmtree(self.volume)  # a file put while nothing was known stays on the local disk, unseen
                shutil.move(self.away, self.volume)
                self.mounted = True
                if self.lost:
                    with app.app_context():  # as a filing's file nobody can serve: its key row goes
                        db.session.execute(sa.delete(AttachmentFileKey).where(AttachmentFileKey.key.in_(self.lost)))
                        db.session.commit()
                    self.lost = set()

        @rule()
        def forget_the_marker(self):
            if self.mounted:
                (self.volume / storage.MARKER).unlink(missing_ok=True)

        @invariant()
        def files_are_where_they_belong(self):
            if self.mounted:
                on_volume = {path.name for path in self.volume.glob("??/*")}
                assert on_volume == set(self.kept)
            elif self.kept:
                assert list(self.volume.iterdir()) == []
            with app.app_context():
                keys = set(db.session.scalars(sa.select(AttachmentFileKey.key)))
            assert keys == set(self.kept) | self.lost

    run_state_machine_as_test(Volume, settings=settings(max_examples=examples(60), stateful_step_count=25,
                                                        deadline=None))


def test_a_held_file_the_volume_could_not_drop_is_listed_again_not_filed(world, monkeypatch):
    """The citizen leaves out a file the form held, and the volume fails as it is deleted: the page lists it again
    (it is still held, to be left out again), and nothing is filed."""
    from tickets.errors import StorageUnavailable
    from tickets.models import Ticket

    client = world.app.test_client()
    token = page_csrf(client)
    first = client.post("/", data={**FILING, "name": "", "csrf_token": token, "files[]": [
        (io.BytesIO(pdf()), "表格.pdf", "application/pdf")]}, content_type="multipart/form-data")
    (held,) = re.findall(r'name="drop_held" value="(\d+)"', first.get_data(as_text=True))

    def failing(self, session, keys):
        raise StorageUnavailable()

    monkeypatch.setattr(storage.DatabaseStore, "delete", failing)
    second = client.post("/", data={**FILING, "csrf_token": token, "drop_held": held})
    assert second.status_code == 503 and second.headers["Retry-After"] == "30"
    assert re.findall(r'name="drop_held" value="(\d+)"', second.get_data(as_text=True)) == [held]
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 0


def test_a_storage_the_process_cannot_use_stops_it_at_start(make_app, tmp_path):
    with pytest.raises(ValueError, match="ATTACHMENT_DIR"):
        make_app(ATTACHMENT_STORAGE="directory", ATTACHMENT_DIR=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="ATTACHMENT_STORAGE"):
        make_app(ATTACHMENT_STORAGE="s3")
    with pytest.raises(ValueError):
        storage.DirectoryStore(tmp_path).get(None, "../../etc/passwd")


def test_an_appeals_evidence_files_are_for_staff_only(world):
    from tests.test_appeals import rated

    no = rated(world)
    appealed = reply_with(world, no, ("通话录音记录.pdf", pdf()), action="appeal", content=None)
    assert appealed.status_code == 422  # the reason is required; the files alone are no appeal
    response = world.client.post(f"/api/v1/staff/tickets/{no}/appeal", headers=world.headers("dept_a"), data={
        "reason": "群众不满意的是政策本身，办理过程合规。",
        "files[]": [(io.BytesIO(pdf()), "通话录音记录.pdf", "application/pdf")]}, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    (evidence,) = [f for f in response.get_json()["attachments"] if f["source"] == "evidence"]
    assert evidence["visible_to_citizen"] is False and world.get("supervisor", evidence["url"]).status_code == 200
    with world.app.app_context():
        row = db.session.get(Attachment, evidence["id"])
        assert row.uploaded_by == world.users["dept_a"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.tuples(st.text(max_size=30), st.binary(max_size=200),
                                st.sampled_from(["image/jpeg", "application/pdf", "", "text/plain"])), max_size=7),
       extra=st.dictionaries(st.sampled_from(["name", "phone", "description", "content", "version", "files", "files[]"]),
                             st.text(max_size=40), max_size=3),
       where=st.sampled_from(["file", "supplement", "reply"]))
def test_any_multipart_request_is_answered_in_the_error_shape_never_a_500(world, parts, extra, where):
    files = [(io.BytesIO(data), name, declared or None) for name, data, declared in parts]
    if where == "file":
        response = world.client.post("/api/v1/tickets", data={**FILING, **extra, "files[]": files},
                                     content_type="multipart/form-data")
        assert response.status_code in (201, 400, 422), response.get_json()  # 400: a NUL in a field
    else:
        filed = world.file()
        no, code = filed["tracking_no"], filed["query_code"]
        if where == "supplement":
            response = world.client.post(f"/api/v1/tickets/{no}/supplement?code={code}",
                                         data={**extra, "files[]": files}, content_type="multipart/form-data")
        else:
            response = world.client.post(f"/api/v1/staff/tickets/{no}/reply", headers=world.headers("dept_a"),
                                         data={**extra, "files[]": files}, content_type="multipart/form-data")
        assert response.status_code in (200, 400, 403, 404, 409, 422), response.get_json()
    if response.status_code >= 400:
        assert set(response.get_json()["error"]) >= {"code", "message"}


def test_files_move_to_a_volume_and_back_and_downloads_work_throughout(make_app, tmp_path):
    from tests.helpers import seed_world

    volume = tmp_path / "files"
    volume.mkdir()
    app = make_app(ATTACHMENT_DIR=str(volume))  # still in the database
    world = seed_world(app, app.test_client())
    filed = file_with(world, ("通知.jpg", jpeg(), "image/jpeg"), ("表.pdf", pdf(), "application/pdf")).get_json()
    no, code = filed["tracking_no"], filed["query_code"]
    items = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()["attachments"]

    def downloads():
        return [world.client.get(f"{item['url']}?code={code}").status_code for item in items]

    runner = app.test_cli_runner()
    result = runner.invoke(args=["attachments", "move", "--to", "directory", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "3 of 3 stored files moved to the directory" in result.output and "ATTACHMENT_STORAGE=directory" in result.output
    assert len(stored_files(volume)) == 3
    assert downloads() == [200, 200]  # the setting still says database: read from the volume meanwhile
    again = runner.invoke(args=["attachments", "move", "--to", "directory"])
    assert "0 of 3" in again.output
    app.config["ATTACHMENT_STORAGE"] = "directory"
    assert downloads() == [200, 200]
    back = runner.invoke(args=["attachments", "move", "--to", "database"])
    assert back.exit_code == 0 and "3 of 3" in back.output
    assert stored_files(volume) == []
    assert downloads() == [200, 200]
    app.config["ATTACHMENT_DIR"] = str(tmp_path / "gone")
    refused = runner.invoke(args=["attachments", "move", "--to", "directory"])
    assert refused.exit_code != 0 and "ATTACHMENT_DIR" in refused.output
    # back on the database for good, the old volume gone but still named: no outage, a missing file is missing
    app.config["ATTACHMENT_STORAGE"] = "database"
    assert downloads() == [200, 200]
    with app.app_context():
        assert storage.read(db.session, storage.new_key()) is None


def test_a_file_sent_under_another_part_name_is_refused_not_dropped(world):
    response = world.client.post("/api/v1/tickets", content_type="multipart/form-data", data={
        **FILING, "attachments": [(io.BytesIO(jpeg()), "通知.jpg", "image/jpeg")]})
    assert response.status_code == 422 and "files[]" in response.get_json()["error"]["fields"]["files"]
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Attachment)) == 0
