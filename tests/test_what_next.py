"""Say what happens next: the rating form says what a 不满意 does (整改 within the policy's working days), the page
after a bad rating says by whom and by when; the filing form's 个人信息告知 must be acknowledged (PIPL)."""
from __future__ import annotations

import re

import sqlalchemy as sa

from tests.helpers import file_by_form, page_csrf
from tickets.db import db
from tickets.models import Event


def closed_case(world, department="A"):
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments[department])
    world.act("dept_a", no, "reply", content="已为您办结。")
    world.act("office", no, "approve")
    return filed


def test_the_rating_form_says_what_a_bad_rating_does_and_the_page_after_it_says_by_when(world):
    filed = closed_case(world)
    no, code = filed["tracking_no"], filed["query_code"]
    view = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()
    assert (view["rework_days"], view["rework"]) == (15, None)  # the deadline policy's 整改: 15 working days
    client = world.app.test_client()
    client.post("/track", data={"tracking_no": no, "code": code, "csrf_token": page_csrf(client, "/track")})
    page = client.get(f"/track/{no}").get_data(as_text=True)
    hint = re.search(r'id="rating-next">(.*?)</p>', page, re.S).group(1)
    assert "15 个工作日" in hint and "整改" in hint and 'aria-describedby="rating-next"' in page
    rated = client.post(f"/track/{no}/rating", data={"score": "4", "csrf_token": page_csrf(client, f"/track/{no}")})
    assert rated.status_code == 303
    page = client.get(f"/track/{no}").get_data(as_text=True)
    notice = re.search(r'id="rework">(.*?)</section>', page, re.S).group(1)
    view = world.client.get(f"/api/v1/tickets/{no}?code={code}").get_json()
    assert view["status"] == "rectifying" and view["rework_days"] is None
    assert view["rework"]["department_name"] == "市场监督管理局" and view["rework"]["due_at"] == view["due_at"]
    due = view["due_at"][:16].replace("T", " ")
    assert "市场监督管理局" in notice and due in notice


def test_the_form_files_only_once_the_privacy_notice_is_acknowledged(world):
    client = world.app.test_client()
    form = client.get("/").get_data(as_text=True)
    notice = re.search(r'id="privacy-notice">(.*?)</ul>', form, re.S).group(1)
    assert "姓名" in notice and "电话" in notice and "保存" in notice
    # PIPL Art. 17: how long (RETENTION_DAYS, then anonymised) and how to use the rights issue 19 gives
    assert "案件结束后 1095 天，届时予以匿名化" in notice and "下载本系统保存的您的信息（PDF）" in notice
    assert "也可在该处申请删除（案件结束后予以匿名化）" in notice
    refused = file_by_form(client, privacy="")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="privacy-error"' in page and "李四" in page  # what was typed stays
    assert file_by_form(client).status_code == 303
    with world.app.app_context():
        filing = db.session.scalar(sa.select(Event).where(Event.action == "file"))
        assert filing.data["privacy_notice"] == "2026-12-05"


def test_the_privacy_notice_without_a_retention_period_keeps_to_the_archive_rules(make_app):
    app = make_app(RETENTION_DAYS=0)
    notice = re.search(r'id="privacy-notice">(.*?)</ul>', app.test_client().get("/").get_data(as_text=True),
                       re.S).group(1)
    assert "按政务服务档案管理的规定保存" in notice and "匿名化" in notice and "天，届时" not in notice
    english = app.test_client().get("/?lang=en").get_data(as_text=True)
    assert "as long as the rules on government service records require" in english and "Your rights:" in english
