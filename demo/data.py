"""What the demo office holds: departments, staff, the cases open now, and the stuff of three months of past work.

Phone numbers are not here: every mobile number of the demo comes from the reserved test range (see `demo.numbers`).
The one exception is a caller's landline (`LANDLINE`), which no text can reach (`tickets.phones.is_mobile`).
"""

from __future__ import annotations

from .files import Paper

DEMO_PASSWORD = "banjie-demo"

# code, name, supervisor's name, leader's name
DEPARTMENTS = [
    ("SCJG", "市场监督管理局", "赵督办", "钱主任"),
    ("RSJ", "人力资源和社会保障局", "孙督办", "李主任"),
    ("ZJJ", "住房和城乡建设局", "周督办", "吴主任"),
    ("GAJ", "公安局户政出入境", "郑督办", "王主任"),
    ("SWJ", "税务局", "冯督办", "陈主任"),
    ("YBJ", "医疗保障局", "褚督办", "卫主任"),
]

# The city's catalogue of service items (办理事项, 管理 → 办理事项): every item the demo's cases name, with its code in
# the province's catalogue (made up: the demo's own, 好差评 exports carry it) and the department that does it (none
# for 高龄津贴申领: the city's 民政局 is not in the demo). name, code, department code
SERVICE_ITEMS = [
    ("营业执照变更登记", "DEMO-SCJG-001", "SCJG"),
    ("企业名称变更登记", "DEMO-SCJG-002", "SCJG"),
    ("个体工商户地址变更", "DEMO-SCJG-003", "SCJG"),
    ("个体户注销", "DEMO-SCJG-004", "SCJG"),
    ("电子营业执照下载", "DEMO-SCJG-005", "SCJG"),
    ("食品经营许可证延续", "DEMO-SCJG-006", "SCJG"),
    ("养老保险关系转移", "DEMO-RSJ-001", "RSJ"),
    ("失业保险金申领", "DEMO-RSJ-002", "RSJ"),
    ("工伤认定", "DEMO-RSJ-003", "RSJ"),
    ("社保卡补办", "DEMO-RSJ-004", "RSJ"),
    ("灵活就业社保缴费", "DEMO-RSJ-005", "RSJ"),
    ("公积金提取", "DEMO-ZJJ-001", "ZJJ"),
    ("公租房申请", "DEMO-ZJJ-002", "ZJJ"),
    ("不动产登记咨询", "DEMO-ZJJ-003", "ZJJ"),
    ("居住证签注", "DEMO-GAJ-001", "GAJ"),
    ("新生儿医保参保", "DEMO-YBJ-001", "YBJ"),
    ("高龄津贴申领", "DEMO-MZJ-001", None),
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

# The cases of the last weeks, one at each stage of the loop, walked through the workflow up to now.
# (days ago filed, name, how the citizen wrote the number, type, service item, description, steps); a step is
# (action, payload[, username]) with the office acting when no user is named, ("rate", score) by SMS, or
# ("withdraw", {"reason"}) by the citizen. The number's spelling LANDLINE_STYLE: a caller who gave a landline, filed on
# the phone by the window's staff (channel `phone`).
CASES = [
    (0, "张伟", "spaced", "cannot_handle", "个体工商户地址变更",
     "我在新区开的小吃店要变更经营地址，窗口说必须回原登记地办理，两个区来回跑了三趟还是办不了。", []),
    (0, "李娜", "dashed", "too_slow", "养老保险关系转移",
     "从外省转回养老保险关系，申请已经两个月了，每次打电话都说在走流程，没有任何进度。", []),
    (1, "王芳", "plus86", "too_hard", "新生儿医保参保",
     "给孩子办医保要先办户口，办户口又要医保记录，两边互相要材料，不知道先办哪个。", [("accept", {})]),
    (2, "刘洋洋", "plain", "other", None,
     "对区法院的判决不服，要求政府出面撤销判决。",
     [("reject", {"reason": "您反映的事项属于涉法涉诉信访，依法应通过上诉、申请再审等司法途径解决。可向市中级人民法院诉讼服务中心咨询，电话 12368。"})]),
    (1, "孙丽", "plain", "too_slow", "居住证签注",
     "居住证签注在网上提交后一直没有结果。", [("withdraw", {"reason": "今天去派出所窗口已经办好了，谢谢。"})]),
    (3, "陈静", "spaced", "too_slow", "食品经营许可证延续",
     "食品经营许可证延续申请提交 20 天了，系统一直显示审核中，证马上到期，担心影响营业。",
     [("accept", {}), ("transfer", {"dept": "SCJG", "instructions": "请核实审核进度，尽快办理并答复群众。"})]),
    (12, "杨光", "plain", "cannot_handle", "失业保险金申领",
     "网上申领失业保险金一直提示“参保信息不符”，到窗口说系统问题解决不了，已经三个月没收入了。",
     [("accept", {}), ("transfer", {"dept": "RSJ", "days": 3, "instructions": "群众生活困难，请优先办理。"}),
      ("record_contact", {"method": "phone", "outcome": "已电话联系，请其提供近三个月的参保缴费记录。"}, "rsj")]),
    (4, "赵磊", "plain", "too_hard", "公积金提取",
     "提取住房公积金要求提供购房合同原件，但合同原件在银行抵押，窗口不接受复印件。",
     [("accept", {}), ("transfer", {"dept": "ZJJ"}),
      ("return", {"reason": "住房公积金提取由公积金管理中心负责，不属于我局职责，请改派。"}, "zjj")]),
    (6, "黄敏", "plain", "too_slow", "企业名称变更登记",
     "公司名称变更登记材料齐全，但是一周了还没有受理结果。",
     [("accept", {}), ("transfer", {"dept": "SCJG"}),
      ("record_contact", {"method": "phone", "outcome": "已电话联系，说明正在核查滞留原因。"}, "scjg"),
      ("reply", {"content": "经核实，该申请因系统对接问题滞留，已于今日办结，营业执照可到政务大厅 3 号窗口领取。"}, "scjg")]),
    (9, "周杰", "plain", "too_slow", "社保卡补办",
     "社保卡丢失补办了一个月还没拿到卡。",
     [("accept", {}), ("transfer", {"dept": "RSJ"}),
      ("record_contact", {"method": "sms", "outcome": "已短信告知制卡进度查询方式，申请人回复收到。"}, "rsj"),
      ("reply", {"content": "您的社保卡已制卡完成，已邮寄至您登记的地址，快递单号已短信告知。"}, "rsj"),
      ("approve", {})]),
    (15, "吴霞", "plain", "cannot_handle", "个体户注销",
     "个体户注销时被要求先清税，税务说要先注销营业执照，来回推。",
     [("accept", {}), ("transfer", {"dept": "SCJG"}),
      ("record_contact", {"method": "visit", "outcome": "已约申请人到窗口当面核实注销材料。"}, "scjg"),
      ("reply", {"content": "已协调税务局开通“一窗通办”，您的个体户注销已于当日办结。"}, "scjg"),
      ("approve", {}), ("rate", 2)]),
    (20, "郑强", "plain", "too_hard", "公租房申请",
     "公租房申请要求开具无房证明，要跑三个部门盖章。",
     [("accept", {}), ("transfer", {"dept": "ZJJ"}),
      ("reply", {"content": "无房证明已改为部门间数据共享核验，您无需再开具证明，申请已受理。"}, "zjj"),
      ("approve", {}), ("rate", 4)]),
    (5, "孙丽", "plain", "too_slow", "工伤认定",
     "工伤认定申请提交后超过法定时限还没有结论。",
     [("accept", {}), ("transfer", {"dept": "RSJ"}),
      ("record_contact", {"method": "phone", "outcome": "已电话联系，告知需调取用人单位考勤记录。"}, "rsj"),
      ("request_extension", {"working_days": 5, "reason": "需调取用人单位考勤记录并进行现场调查核实。"}, "rsj")]),
    (2, "马超", "plain", "other", "不动产登记咨询",
     "想咨询二手房过户需要哪些材料，电话一直打不通。",
     [("accept", {}), ("resolve", {"content": "已电话联系您并告知二手房过户所需材料清单，也可在政务服务网“不动产登记”专区查询。"})]),
    # A 差评 of the last days that the department may still appeal (申诉复核: within 5 working days of the rating).
    (2, "何平", "plain", "too_slow", "灵活就业社保缴费",
     "灵活就业人员社保缴费基数调整申请提交后一直没有回音。",
     [("accept", {}), ("transfer", {"dept": "RSJ"}),
      ("reply", {"content": "经核实，您的缴费基数调整已于申请当日办结，新基数从下月起执行，办理结果已短信告知。"}, "rsj"),
      ("approve", {}), ("rate", 5)]),
    # A caller with a landline: no text reaches them, so the office told them the answer on the phone; the survey is
    # open, for the office to call back and record the rating they give (记录电话评价, `record_rating`).
    (1, "钱大爷", "landline", "too_hard", "高龄津贴申领",
     "老人不会用手机，高龄津贴网上申领不了，打电话到窗口求助。",
     [("accept", {}), ("resolve", {"content": "已电话告知：可由社区代为申领高龄津贴，社区工作人员将于本周上门办理。"})]),
]
LANDLINE_STYLE = "landline"
LANDLINE = "010-12345678"  # a caller's fixed line: never texted

# 知识库: answers worth reusing, offered beside a reply, an explanation or the office's own answer. (login of the one who
# wrote it: its owner is their department, or the window for office staff; title; text; service items; days ago it
# was written.) One was written more than a year ago and never reviewed: it is due for review (待复核), offered to
# nobody, and listed for 人社局 to review.
KNOWLEDGE = [
    ("scjg", "营业执照变更材料清单",
     "办理营业执照变更登记需提交：1. 变更登记申请书；2. 股东会决议或决定；3. 章程修正案（涉及章程变更的）；"
     "4. 营业执照正、副本原件；5. 变更住所的，提交新住所使用证明。材料齐全、符合法定形式的，当场办结；"
     "需要核实的，3 个工作日内办结。也可以通过“一网通办”全程网上办理，执照邮寄到家。",
     ["营业执照变更登记", "企业名称变更登记", "个体工商户地址变更"], 40),
    ("rsj", "社保关系转移办理时限",
     "养老保险关系转移接续的办理时限：转入地社保经办机构受理申请后 15 个工作日内向转出地发出联系函；"
     "转出地 15 个工作日内办结转出手续并转移基金；转入地收到基金后 15 个工作日内办结转入并告知申请人。"
     "办理进度可通过国家社会保险公共服务平台或“掌上 12333”查询。",
     ["养老保险关系转移", "灵活就业社保缴费"], 25),
    ("office", "答复群众的基本格式",
     "您好！您反映的问题已收悉。经核实：（核实的情况）。办理结果：（办理结果及依据）。"
     "如仍有疑问，可拨打 12345 政务服务便民热线，或到市民服务中心“办不成事”反映窗口咨询。感谢您的理解与支持！",
     [], 60),
    ("office", "不动产登记（二手房过户）所需材料",
     "二手房转移登记需买卖双方共同申请，提交：1. 身份证明；2. 不动产权证书；3. 网签买卖合同；4. 完税凭证；"
     "5. 婚姻状况证明。材料齐全的，5 个工作日内办结。可在政务服务网“不动产登记”专区预约。",
     ["不动产登记咨询"], 30),
    ("rsj", "失业保险金申领条件（旧版）",
     "申领失业保险金需同时符合：失业前用人单位和本人已缴纳失业保险费满一年；非因本人意愿中断就业；"
     "已办理失业登记并有求职要求。可在人社局网上服务大厅申领。",
     ["失业保险金申领"], 400),
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
# 先行联系 in the past cases: how the handler reached the citizen and what was said, and how many hours after the
# transfer (before the office's next opening moves it into office hours); all shorter than the quickest reply (20).
CONTACTS = [
    ("phone", "已电话联系申请人，了解诉求并告知办理安排。"),
    ("phone", "已电话联系，约定补交材料时间。"),
    ("visit", "已到现场与申请人见面核实情况。"),
    ("sms", "电话未接通，已短信告知承办人和联系方式，申请人已回复确认。"),
]
CONTACT_HOURS = (1, 1, 1, 2, 2, 3, 4, 5, 7, 16)

# When citizens file (local hour → weight): mostly in the day and the evening, a few at night.
FILING_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 1, 2, 4, 8, 12, 12, 10, 8, 9, 11, 11, 10, 9, 7, 7, 8, 7, 5, 2)

# The city's network of windows: the root (named ROOT_NAME), three counties, each with two townships. Each county
# has its own departments (县人社局, 县市场监管局), its office staff, supervisor and leader; each township its office
# staff. Township windows transfer to their county's departments (or the city's, above them).
ROOT_NAME = "市民服务中心"
COUNTIES = [  # code, name, townships (code, name)
    ("dh", "东湖县", [("dhqs", "青石镇"), ("dhbs", "白沙镇")]),
    ("xs", "西山县", [("xshy", "红岩乡"), ("xsls", "柳树镇")]),
    ("nh", "南河县", [("nhgl", "高岭镇"), ("nhtz", "桃州镇")]),
]
COUNTY_DEPARTMENTS = (("RSJ", "人社局", "rsj"), ("SCJG", "市场监管局", "scjg"))  # code suffix, name, login suffix


def county_department(county: str, code: str) -> str:
    """The code of a county's department: DH_RSJ is 东湖县人社局."""
    return f"{county.upper()}_{code}"


def _network_users() -> list[tuple[str, str, str | None, str | None, str]]:
    users = []  # username, role, office code, department code, display name
    for county, name, townships in COUNTIES:
        users += [(f"office_{county}", "office", county, None, f"{name}受理员"),
                  (f"supervisor_{county}", "supervisor", county, None, f"{name}督办员"),
                  (f"leader_{county}", "leader", county, None, f"{name}分管领导")]
        users += [(f"{county}_{login}", "department", None, county_department(county, code), f"{name}{dept}经办人")
                  for code, dept, login in COUNTY_DEPARTMENTS]
        users += [(f"office_{code}", "office", code, None, f"{township}受理员") for code, township in townships]
    return users


NETWORK_USERS = _network_users()
# Which window the past cases were filed at, in turn: the city's most, each county's more than each township's.
HISTORY_WINDOWS = ("root", "dh", "dhqs", "root", "xs", "xshy", "root", "nh", "nhgl", "dh", "dhbs", "root", "xs",
                   "xsls", "nh", "nhtz")
# The window of each case of the last weeks (CASES, in order): the city's and, in every county, some of its windows.
PRESENT_WINDOWS = ("root", "dhqs", "root", "xs", "root", "dh", "nhgl", "root", "xshy", "dh", "root", "nh", "dhbs",
                   "xs")


# 附件 of the present cases, by the citizen's name: what came with the filing ("file") and with the department's reply
# ("reply"), drawn by demo/files.py.
FILES = {
    "张伟": ("file", (
        Paper("窗口退回的变更申请.jpg", "材料退回告知单", (
            "申请人：张伟",
            "申请事项：个体工商户经营场所变更",
            "退回原因：请回原登记机关办理。",
            "经办窗口：新区政务服务中心 8 号窗口",
        ), "退回专用章"),
    )),
    "吴霞": ("reply", (
        Paper("个体户注销登记通知书.jpg", "准予注销登记通知书", (
            "吴霞：",
            "经审查，你提交的个体工商户注销登记申请",
            "材料齐全，符合法定形式，准予注销登记。",
            "（税务清税与执照注销已一窗通办）",
        ), "市场监督管理局"),
    )),
}

# 一类事 and 并单 (issue 17): one problem many people hit at the city's window in the last two weeks, reported in their own
# words: (days ago filed, name, how the number is written, description). The office handles the first (受理并转办 to
# 市场监管局); the second is the same company's problem, merged into the first (并单); from the cluster the office opens
# a 主动治理 task (`RECURRING_TASK`). The demo's walk-through files one more and sees its possible duplicates.
RECURRING_ITEM = "电子营业执照下载"
RECURRING = [
    (12, "冯晓", "plain", "电子营业执照下载时一直提示身份核验失败，重试了十几次都不行，没法办网上业务。"),
    (11, "冯晓的同事 蒋欣", "dashed", "我们公司电子营业执照下载不了，提示身份核验失败，法人试了好多次也不行。"),
    (9, "韩梅", "spaced", "手机上下載電子營業執照總是提示身份核驗失敗，到窗口說是系統問題，辦不了。"),
    (7, "沈涛", "plus86", "电子营业执照身份验证一直失败，下载不了执照，银行开户要用，急！"),
    (5, "朱红", "plain", "个体户想下载电子营业执照，人脸识别过了还是提示核验失败，打电话也没人解决。"),
    (3, "秦岭", "plain", "电子执照下载提示身分核验失败（错误码 E102），窗口让找市场监管局，市场监管局让找窗口。"),
]
RECURRING_TASK = ("SCJG", 5, "近两周多名群众反映电子营业执照下载时提示“身份核验失败”（错误码 E102）。请排查核验接口与"
                               "人脸识别平台的对接问题，从根本上解决，并说明修复时间和群众可用的替代办法。")
