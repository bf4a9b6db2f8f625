"""Demo data for `make run`: a small city office with a dozen cases at every stage of the loop.

Cases are walked through the real workflow with the clock set back, so every event, deadline and
survey is exactly what staff would have produced.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from flask import current_app

from . import clock, deadlines, intake, workflow
from .cli import create_user
from .models import Department
from .phones import normalise_mobile
from .workflow import Actor

DEMO_PASSWORD = "banjie-demo"

DEPARTMENTS = [
    ("SCJG", "市场监督管理局", "赵督办", "13900000001", "钱主任", "13900000002"),
    ("RSJ", "人力资源和社会保障局", "孙督办", "13900000003", "李主任", "13900000004"),
    ("ZJJ", "住房和城乡建设局", "周督办", "13900000005", "吴主任", "13900000006"),
    ("GAJ", "公安局户政出入境", "郑督办", "13900000007", "王主任", "13900000008"),
    ("SWJ", "税务局", "冯督办", "13900000009", "陈主任", "13900000010"),
    ("YBJ", "医疗保障局", "褚督办", "13900000011", "卫主任", "13900000012"),
]

# username, role, department code, display name
DEMO_USERS = [
    ("admin", "admin", None, "系统管理员"),
    ("office", "office", None, "受理员 王敏"),
    ("scjg", "department", "SCJG", "市场监管局 张强"),
    ("rsj", "department", "RSJ", "人社局 刘洋"),
    ("zjj", "department", "ZJJ", "住建局 何静"),
    ("supervisor", "supervisor", None, "督办科 陈刚"),
    ("leader", "leader", None, "分管领导 林华"),
]

CASES = [
    # (days ago filed, name, phone, type, service item, description, steps)
    (0, "张伟", "138 0013 8001", "cannot_handle", "个体工商户地址变更",
     "我在新区开的小吃店要变更经营地址，窗口说必须回原登记地办理，两个区来回跑了三趟还是办不了。", []),
    (0, "李娜", "139-1234-5602", "too_slow", "养老保险关系转移",
     "从外省转回养老保险关系，申请已经两个月了，每次打电话都说在走流程，没有任何进度。", []),
    (1, "王芳", "+86 137 0000 0303", "too_hard", "新生儿医保参保",
     "给孩子办医保要先办户口，办户口又要医保记录，两边互相要材料，不知道先办哪个。", [("accept", {})]),
    (2, "刘洋洋", "13600000404", "other", None,
     "对区法院的判决不服，要求政府出面撤销判决。",
     [("reject", {"reason": "您反映的事项属于涉法涉诉信访，依法应通过上诉、申请再审等司法途径解决。可向市中级人民法院诉讼服务中心咨询，电话 12368。"})]),
    (3, "陈静", "135 0000 0505", "too_slow", "食品经营许可证延续",
     "食品经营许可证延续申请提交 20 天了，系统一直显示审核中，证马上到期，担心影响营业。",
     [("accept", {}), ("transfer", {"dept": "SCJG", "instructions": "请核实审核进度，尽快办理并答复群众。"})]),
    (12, "杨光", "15800000606", "cannot_handle", "失业保险金申领",
     "网上申领失业保险金一直提示“参保信息不符”，到窗口说系统问题解决不了，已经三个月没收入了。",
     [("accept", {}), ("transfer", {"dept": "RSJ", "days": 3, "instructions": "群众生活困难，请优先办理。"})]),
    (4, "赵磊", "18800000707", "too_hard", "公积金提取",
     "提取住房公积金要求提供购房合同原件，但合同原件在银行抵押，窗口不接受复印件。",
     [("accept", {}), ("transfer", {"dept": "ZJJ"}),
      ("return", {"reason": "住房公积金提取由公积金管理中心负责，不属于我局职责，请改派。"}, "zjj")]),
    (6, "黄敏", "13911110808", "too_slow", "企业名称变更登记",
     "公司名称变更登记材料齐全，但是一周了还没有受理结果。",
     [("accept", {}), ("transfer", {"dept": "SCJG"}),
      ("reply", {"content": "经核实，该申请因系统对接问题滞留，已于今日办结，营业执照可到政务大厅 3 号窗口领取。"}, "scjg")]),
    (9, "周杰", "13711110909", "too_slow", "社保卡补办",
     "社保卡丢失补办了一个月还没拿到卡。",
     [("accept", {}), ("transfer", {"dept": "RSJ"}),
      ("reply", {"content": "您的社保卡已制卡完成，已邮寄至您登记的地址，快递单号已短信告知。"}, "rsj"),
      ("approve", {})]),
    (15, "吴霞", "13611111010", "cannot_handle", "个体户注销",
     "个体户注销时被要求先清税，税务说要先注销营业执照，来回推。",
     [("accept", {}), ("transfer", {"dept": "SCJG"}),
      ("reply", {"content": "已协调税务局开通“一窗通办”，您的个体户注销已于当日办结。"}, "scjg"),
      ("approve", {}), ("rate", 2)]),
    (20, "郑强", "13511111111", "too_hard", "公租房申请",
     "公租房申请要求开具无房证明，要跑三个部门盖章。",
     [("accept", {}), ("transfer", {"dept": "ZJJ"}),
      ("reply", {"content": "无房证明已改为部门间数据共享核验，您无需再开具证明，申请已受理。"}, "zjj"),
      ("approve", {}), ("rate", 4)]),
    (5, "孙丽", "13411111212", "too_slow", "工伤认定",
     "工伤认定申请提交后超过法定时限还没有结论。",
     [("accept", {}), ("transfer", {"dept": "RSJ"}),
      ("request_extension", {"working_days": 5, "reason": "需调取用人单位考勤记录并进行现场调查核实。"}, "rsj")]),
    (2, "马超", "13311111313", "other", "不动产登记咨询",
     "想咨询二手房过户需要哪些材料，电话一直打不通。",
     [("accept", {}), ("resolve", {"content": "已电话联系您并告知二手房过户所需材料清单，也可在政务服务网“不动产登记”专区查询。"})]),
]


# Three months of ordinary work before the cases above, so that last month's report has something to say.
HISTORY_MONTHS = 3
HISTORY_PER_MONTH = 36
HISTORY_DEPARTMENTS = (("SCJG", "scjg"), ("RSJ", "rsj"), ("ZJJ", "zjj"))
HISTORY_NAMES = "赵伟 钱芳 孙磊 李娟 周洋 吴静 郑涛 王丽 冯刚 陈晨 褚红 卫东 蒋敏 沈杰 韩雪 杨帆 朱琳 秦勇".split()
HISTORY_ITEMS = [
    ("too_slow", "营业执照变更登记", "营业执照变更申请提交两周了，系统一直显示审核中。"),
    ("too_slow", "养老保险关系转移", "养老保险关系转移申请一个多月没有进展。"),
    ("cannot_handle", "公积金提取", "公积金提取要求的证明材料开不出来，窗口说办不了。"),
    ("too_hard", "新生儿医保参保", "给孩子办医保要先办户口，办户口又要医保记录，来回跑了好几趟。"),
    ("too_slow", "食品经营许可证延续", "许可证延续申请迟迟不批，证马上到期。"),
    ("too_hard", "个体户注销", "个体户注销要先清税，税务又要先注销执照，互相推。"),
    ("cannot_handle", "失业保险金申领", "网上申领失业金一直提示信息不符，窗口也解决不了。"),
    ("other", None, "想咨询办理流程，电话一直打不通。"),
]


def _history(rng, month_start: datetime, now: datetime):
    """One past case as (filed at, name, phone, type, item, description, steps with their hours after filing)."""
    problem_type, item, description = rng.choice(HISTORY_ITEMS)
    filed = month_start + timedelta(days=rng.randrange(0, 27), hours=rng.randrange(9, 17), minutes=rng.randrange(60))
    code, handler = rng.choice(HISTORY_DEPARTMENTS)
    roll, steps = rng.random(), []
    if roll < 0.05:
        steps.append((3, "reject", {"reason": "您反映的事项属于民事纠纷，建议通过人民调解或诉讼途径解决。"}, "office"))
    elif roll < 0.11:
        steps += [(2, "accept", {}, "office"), (5, "resolve", {"content": "已电话告知办理流程和所需材料。"}, "office")]
    else:
        at = 3
        steps += [(2, "accept", {}, "office"), (at, "transfer", {"dept": code}, "office")]
        if roll < 0.18:
            other_code, handler = rng.choice([d for d in HISTORY_DEPARTMENTS if d[0] != code])
            at += 20
            steps += [(at, "return", {"reason": "该事项不属于本部门职责，请改派。"}, dict(HISTORY_DEPARTMENTS)[code]),
                      (at + 4, "transfer", {"dept": other_code}, "office")]
            at += 4
        if rng.random() < 0.1:
            steps += [(at + 30, "request_extension", {"working_days": 3, "reason": "需要现场核查。"}, handler),
                      (at + 34, "decide_extension", {"approve": True}, "office")]
        if rng.random() < 0.08:
            steps.append((at + 90, "remind", {"note": "请抓紧办理。"}, "office"))
        at += rng.choice((20, 30, 46, 70, 94, 118, 140, 166, 190, 260))
        steps.append((at, "reply", {"content": "已核实办理，结果已告知申请人。"}, handler))
        if rng.random() < 0.08:
            steps += [(at + 3, "send_back", {"reason": "答复未说明办理结果，请补充。"}, "office"),
                      (at + 30, "reply", {"content": "已补充说明办理结果和依据。"}, handler)]
            at += 30
        steps.append((at + 4, "approve", {}, "office"))
    closed_at = steps[-1][0] if steps[-1][1] in ("approve", "resolve") else None
    if closed_at is not None and rng.random() < 0.88:
        score = rng.choices((1, 2, 3, 4, 5), weights=(58, 22, 9, 7, 4))[0]
        steps.append((closed_at + 6, "rate", score, None))
        if score >= 4 and steps[1][1] != "resolve":
            steps += [(closed_at + 30, "record_visit", {"contacted": True, "outcome": "已电话回访，说明整改安排。"},
                       "office"),
                      (closed_at + 80, "reply", {"content": "已重新办理并上门说明。"}, handler),
                      (closed_at + 84, "approve", {}, "office"),
                      (closed_at + 96, "rate", rng.choice((1, 2, 3)), None)]
        elif score >= 4:
            steps.append((closed_at + 30, "explain", {"content": "已当面说明政策依据。"}, "office"))
    phone = f"1{rng.choice(('38', '39', '35', '36', '37', '50', '51', '58', '59', '86', '88', '89'))}{rng.randrange(10**8):08d}"
    name = rng.choice(HISTORY_NAMES)
    return filed, name, phone, problem_type, item, description, [s for s in steps if filed + timedelta(hours=s[0]) < now]


@contextmanager
def clock_at(moment: datetime):
    app = current_app._get_current_object()
    previous = app.extensions.get("banjie.clock")
    app.extensions["banjie.clock"] = lambda: moment
    try:
        yield
    finally:
        if previous is None:
            app.extensions.pop("banjie.clock", None)
        else:
            app.extensions["banjie.clock"] = previous


def seed(session) -> None:
    departments = {}
    for code, name, sup_name, sup_phone, lead_name, lead_phone in DEPARTMENTS:
        department = Department(code=code, name=name, supervisor_name=sup_name,
                                supervisor_phone=normalise_mobile(sup_phone), leader_name=lead_name,
                                leader_phone=normalise_mobile(lead_phone))
        session.add(department)
        departments[code] = department
    session.flush()
    users = {
        username: create_user(session, username, role, department_code=code, password=DEMO_PASSWORD,
                              display_name=display)
        for username, role, code, display in DEMO_USERS
    }
    now = clock.now()
    _seed_history(session, departments, users, now)
    for days_ago, name, phone, problem_type, item, description, steps in CASES:
        moment = now - timedelta(days=days_ago, hours=1)
        with clock_at(moment):
            values = intake.validate_intake(session, {"name": name, "phone": phone, "problem_type": problem_type,
                                                      "service_item": item, "description": description})
            ticket = intake.file_ticket(session, values, channel="web").ticket
            session.flush()
        for index, step in enumerate(steps, start=1):
            moment = min(moment + timedelta(hours=5 * index), now - timedelta(minutes=5 * (len(steps) - index + 1)))
            with clock_at(moment.astimezone(timezone.utc)):
                action, payload = step[0], step[1]
                if action == "rate":
                    workflow.rate(session, ticket, payload, channel="sms")
                else:
                    actor = users[step[2]] if len(step) > 2 else users["office"]
                    if action == "transfer":
                        payload = {"department_id": departments[payload["dept"]].id,
                                   "working_days": payload.get("days"), "instructions": payload.get("instructions")}
                    workflow.perform(session, ticket, Actor.of(actor), action, payload)
                session.flush()


def _seed_history(session, departments, users, now) -> None:
    rng = random.Random(2026)
    tz = deadlines.policy().tz
    local = now.astimezone(tz)
    first = datetime(local.year, local.month, 1, tzinfo=tz)
    starts = []
    for _ in range(HISTORY_MONTHS):
        first = (first - timedelta(days=1)).replace(day=1)
        starts.append(first)
    cases = sorted((_history(rng, start, now) for start in reversed(starts) for _ in range(HISTORY_PER_MONTH)),
                   key=lambda case: case[0])
    for filed, name, phone, problem_type, item, description, steps in cases:
        with clock_at(filed.astimezone(timezone.utc)):
            values = intake.validate_intake(session, {"name": name, "phone": phone, "problem_type": problem_type,
                                                      "service_item": item, "description": description})
            ticket = intake.file_ticket(session, values, channel="web").ticket
            session.flush()
        for hours, action, payload, who in steps:
            moment = filed + timedelta(hours=hours)
            with clock_at(moment.astimezone(timezone.utc)):
                if action == "rate":
                    workflow.rate(session, ticket, payload, channel="sms")
                    continue
                if action == "transfer":
                    payload = {"department_id": departments[payload["dept"]].id}
                elif action == "record_visit":
                    payload = {**payload, "visited_on": moment.date().isoformat()}
                workflow.perform(session, ticket, Actor.of(users[who]), action, payload)
            session.flush()
