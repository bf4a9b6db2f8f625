"""The public pages: file a case in Chinese, get the codes (again on a reload, as a picture), follow it, rate it; CSRF on every form."""
from __future__ import annotations

import io
import re

from PIL import Image

from tests.helpers import file_by_form, page_csrf


def test_filing_form_in_chinese(world):
    page = world.client.get("/").get_data(as_text=True)
    assert "我要反映" in page and "办不了" in page and "市场监督管理局" in page and 'lang="zh-CN"' in page
    english = world.client.get("/?lang=en").get_data(as_text=True)
    assert "Report a problem" in english and 'lang="en"' in english
    assert "Report a problem" in world.client.get("/").get_data(as_text=True)  # the choice is remembered
    assert "我要反映" in world.client.get("/?lang=zh_CN").get_data(as_text=True)


def test_pages_stay_chinese_for_an_english_browser(world):
    english_browser = {"Accept-Language": "en-US,en;q=0.9"}
    assert "我要反映" in world.client.get("/", headers=english_browser).get_data(as_text=True)
    api = world.client.post("/api/v1/tickets", json={}, headers=english_browser).get_json()
    assert api["error"]["code"] == "validation_error" and "请" not in api["error"]["message"]


def test_form_without_csrf_is_refused(world):
    response = world.client.post("/", data={"name": "x", "phone": "13800138000", "problem_type": "other",
                                            "description": "没有令牌的提交"})
    assert response.status_code == 400
    assert "表单已过期" in response.get_data(as_text=True)
    assert world.get("office", "/api/v1/staff/tickets").get_json()["total"] == 0


def test_bad_form_shows_chinese_messages_and_keeps_input(world):
    response = file_by_form(world.client, phone="12345", description="短")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "请输入有效的手机号码或带区号的固定电话号码" in page and "至少" in page
    assert 'value="李四"' in page and 'value="12345"' in page


def test_file_confirm_track_and_escape(world):
    response = file_by_form(world.client)
    assert response.status_code == 303 and response.headers["Location"].endswith("/filed")
    receipt = world.client.get("/filed").get_data(as_text=True)
    no = re.search(r'id="tracking-no">([^<]+)<', receipt).group(1)
    code = re.search(r'id="query-code">([^<]+)<', receipt).group(1)
    assert no.startswith("BJ") and len(code) == 8
    # a reload shows it again (this browser's session), and it can be saved as a picture; another browser gets nothing
    assert f'id="query-code">{code}<' in world.client.get("/filed").get_data(as_text=True)
    picture = world.client.get("/filed/receipt.png")
    assert picture.mimetype == "image/png" and picture.headers["Cache-Control"] == "no-store"
    assert Image.open(io.BytesIO(picture.data)).size == (720, 460)
    assert world.app.test_client().get("/filed").status_code == 302
    assert world.app.test_client().get("/filed/receipt.png").status_code == 302
    # this browser may follow its own case straight away
    case = world.client.get(f"/track/{no}").get_data(as_text=True)
    assert "待受理" in case and "&lt;script&gt;" in case and "<script>alert" not in case and "😀 𠀀" in case
    # another browser needs the code
    other = world.app.test_client()
    assert other.get(f"/track/{no}").status_code == 302
    token = page_csrf(other, "/track")
    wrong = other.post("/track", data={"tracking_no": no, "code": "WRONGCODE", "csrf_token": token})
    assert wrong.status_code == 404 and "受理编号或查询码不正确" in wrong.get_data(as_text=True)
    right = other.post("/track", data={"tracking_no": no, "code": code.lower(), "csrf_token": token})
    assert right.status_code == 303 and other.get(f"/track/{no}").status_code == 200


def closed_by_form(world, **accept) -> str:
    """A case filed through the form by this browser (which may then rate it), accepted (with `accept`'s fields),
    answered and closed."""
    file_by_form(world.client)
    no = re.search(r'id="tracking-no">([^<]+)<', world.client.get("/filed").get_data(as_text=True)).group(1)
    world.act("office", no, "accept", **accept)
    world.act("office", no, "transfer", department_id=world.departments["A"])
    world.act("dept_a", no, "reply", content="已为您开通一窗通办。")
    world.act("office", no, "approve")
    return no


def test_case_page_follows_the_loop_and_takes_the_rating(world):
    no = closed_by_form(world, note="内部备注不应出现")
    page = world.client.get(f"/track/{no}").get_data(as_text=True)
    for text in ("已提交", "已受理", "已转办", "市场监督管理局", "审核通过，已办结", "已为您开通一窗通办", "提交评价"):
        assert text in page, text
    assert "内部备注" not in page and "dept_a" not in page
    token = page_csrf(world.client, f"/track/{no}")
    response = world.client.post(f"/track/{no}/rating", data={"score": "1", "comment": "很好", "csrf_token": token})
    assert response.status_code == 303
    page = world.client.get(f"/track/{no}").get_data(as_text=True)
    assert "感谢您的评价" in page and "非常满意" in page and "提交评价" not in page


def test_a_comment_the_browser_let_through_is_taken_and_a_bad_one_says_why(world):
    """The textarea's maxlength counts a line break as one character; the form sends it as CRLF, two: the server counts
    as the browser does. A rating refused comes back (422) saying what is wrong, on the field it is wrong with, with
    the choice and the comment as they were sent: nothing typed is lost."""
    no = closed_by_form(world)
    token = page_csrf(world.client, f"/track/{no}")
    refused = world.client.post(f"/track/{no}/rating", data={"score": "2", "comment": "好<b>\x01", "csrf_token": token})
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert re.search(r'<p class="error" id="comment-error">[^<]*无法保存的字符', page)
    assert "请从五个评价等级中选择一项" not in page and "提交评价" in page
    assert re.search(r'<textarea[^>]*aria-invalid="true"[^>]*>\s*好&lt;b&gt;\x01</textarea>', page)
    assert re.search(r'<input[^>]*checked[^>]*value="2"|<input[^>]*value="2"[^>]*checked', page)
    for score in ("abc", "", "6", "1e3", None):
        data = {"comment": "材料齐全了", "csrf_token": token} | ({} if score is None else {"score": score})
        nonsense = world.client.post(f"/track/{no}/rating", data=data)
        assert nonsense.status_code == 422, score
        page = nonsense.get_data(as_text=True)
        assert re.search(r'<p class="error" id="score-error">请从五个评价等级中选择一项', page), score
        assert "您对办理结果是否满意：请从五个评价等级中选择一项" in page  # the summary's link, one mark between
        assert "材料齐全了</textarea>" in page and "checked" not in page.split('id="rating-form"')[1].split("</form>")[0]
    expired = world.client.post(f"/track/{no}/rating", data={"score": "2", "csrf_token": "stale"})
    assert expired.status_code == 400 and "提交评价" in world.client.get(f"/track/{no}").get_data(as_text=True)
    comment = "\r\n".join(["很"] * 500)  # 999 characters as the browser counts them, 1,498 as sent
    taken = world.client.post(f"/track/{no}/rating", data={"score": "2", "comment": comment, "csrf_token": token})
    assert taken.status_code == 303
    page = world.client.get(f"/track/{no}").get_data(as_text=True)
    assert "感谢您的评价" in page and "提交评价" not in page
    again = world.client.post(f"/track/{no}/rating", data={"score": "5", "csrf_token": token})
    assert again.status_code == 409 and "该件当前没有可填写的满意度评价" in again.get_data(as_text=True)


def test_errors_render_as_chinese_pages(world):
    response = world.client.get("/no-such-page")
    assert response.status_code == 404 and "抱歉" in response.get_data(as_text=True)


def test_a_step_that_meets_a_staff_action_shows_the_case_as_it_is_now_with_what_was_typed(world, monkeypatch):
    """Staff commit on the case between the case page's reading and the citizen's step (撤回, the rating): the
    case's version moved on and the workflow answers Conflict. The page comes back (409) with the case as it is now,
    the message and what was typed; nothing of the step is kept."""
    import sqlalchemy as sa

    import tickets.workflow.citizen as citizen  # 撤回 (补充材料 claims no row: it races with nothing)
    import tickets.workflow.survey as survey
    from tickets.db import db
    from tickets.models import Event

    closed = closed_by_form(world)
    filed = world.file()
    waiting = filed["tracking_no"]
    world.client.post("/track", data={"tracking_no": waiting, "code": filed["query_code"],
                                      "csrf_token": page_csrf(world.client, "/track")})
    tokens = {no: page_csrf(world.client, f"/track/{no}") for no in (closed, waiting)}
    real_claim = citizen.claim

    def claim(session, ticket, now):  # a staff action commits first
        session.execute(sa.text("UPDATE ticket SET version = version + 1 WHERE id = :id"), {"id": ticket.id})
        return real_claim(session, ticket, now)

    for module in (citizen, survey):
        monkeypatch.setattr(module, "claim", claim)
    with world.app.app_context():
        events = db.session.scalar(sa.select(sa.func.count()).select_from(Event))
    for no, step, data, typed in (
            (closed, "rating", {"score": "2", "comment": "答复没有解决问题"}, "答复没有解决问题</textarea>"),
            (waiting, "withdraw", {"confirm": "y", "reason": "已经在别处办好了"}, "已经在别处办好了")):
        response = world.client.post(f"/track/{no}/{step}", data={**data, "csrf_token": tokens[no]})
        page = response.get_data(as_text=True)
        assert response.status_code == 409, (step, response.status_code)
        assert typed in page and "该件已被他人修改" in page, step
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == events
