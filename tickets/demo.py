"""Demo data for `make run`: a small city office with a dozen cases at every stage of the loop.

Cases are walked through the real workflow with the clock set back, so every event, deadline and
survey is exactly what staff would have produced.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from flask import current_app

from . import clock, intake, workflow
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
