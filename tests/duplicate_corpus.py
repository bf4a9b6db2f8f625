"""A month of realistic Chinese cases for the possible-duplicate tests (tests/test_duplicates.py).

`month(seed)` gives the same ~370 reports for a seed, each with the problem it is about: reports with the same
`problem` are the same problem (a true duplicate pair); every other pair is not. The labels are known by
construction, not guessed afterwards:

- `GROUPS`: ten recurring problems, each one concrete incident at one window about one service item (the broken card
  machine at 青石镇, the upload that fails with 「文件格式错误」, the housing estate without property certificates...),
  each written out by hand in five to seven different ways, as different people would put it. Every report of a group
  is a different citizen, filed within ten days of the group's first; some of them file again a few days later
  (same person, same problem, another spelling of the number: +86, spaces, dashes, 0086), with a "still nothing"
  text of their own.
- Unrelated cases: generic complaints (`ISSUES`: the appointment system full, a certificate nobody issues, staff
  rude...) crossed with service items and windows; a combination of (window, service item, issue) is used at most
  once in the month, so two unrelated cases about the same service item at the same window are always about
  different things (the hard negatives: they share the item's words). Some have no service item (matched then by
  problem type at the window).
- `SAME_PERSON_OTHER_PROBLEM`: two citizens who file two different problems within the month: the same number, so
  the phone rule suggests the pair, which is labelled not the same problem (counted against precision).

Every text then goes through what people do to text: homophone typos (同音字: 的/得, 在/再, 已/以, 证/正...), traditional
characters (一成 of the reports, via zhconv), full-width or ASCII punctuation and digits, stray spaces, greetings and
thanks around the complaint. The ground truth is the construction; `TRICKY_PAIRS` are pairs checked by hand (by the
engineer who wrote this file, reading both texts) where the labels could be doubted, kept as a test of their own.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import zhconv

MONTH_DAYS = 30


@dataclass(frozen=True)
class Report:
    key: str            # g01-3 (group 1, third person), g01-3r (their second filing), s042 (unrelated)
    problem: str        # the problem it is about: the same for every report of one problem
    day: float          # days after the month's first day, 09:00
    office_code: str    # "root" or a window of tests/network.py
    service_item: str | None
    problem_type: str
    name: str
    phone: str          # as the citizen typed it
    description: str


# --- the recurring problems: one incident each, written the ways different people would put it --------------------

GROUPS = [
    ("t11", "社会保障卡补办", "cannot_handle", [
        "青石镇便民服务中心的社保卡自助制卡机坏了快两周了，补办社保卡办不了，工作人员让去县城办。",
        "社保卡丢了去镇上补办，说制卡机器坏了要等修好，已经等了十几天。",
        "镇里那台制卡的机器一直是坏的，补社保卡补不了，老人跑县里太远了。",
        "补办社保卡，中心说自助制卡机故障不能即时制卡，请问什么时候能修好？",
        "制卡机坏了好久没人修，我们来补社保卡白跑了两趟。",
        "便民中心社保卡制卡设备故障很多天了，麻烦尽快维修，等着补卡的人很多。",
    ]),
    ("root", "营业执照变更登记", "too_hard", [
        "办营业执照变更，网上上传股东会决议总是提示文件格式错误，换了PDF和JPG都不行。",
        "企业登记系统上传材料一直报文件格式不正确，营业执照变更卡在这一步三天了。",
        "营业执照变更登记上传股东会决议失败，提示文件格式错误，打客服电话也没人接。",
        "营业执照变更网上办理，附件上传报错：文件格式错误。请问到底要什么格式？",
        "变更经营范围，线上系统上传股东会决议文件一直失败，显示格式错误，去窗口又让回网上办。",
    ]),
    ("root", "不动产登记", "too_slow", [
        "锦绣华庭小区交房两年了，不动产权证还办不下来，开发商说在等验收。",
        "我们锦绣华庭业主的房产证一直办不了，已经两年多了，问开发商一直拖。",
        "锦绣华庭小区到现在没有房本，不动产登记中心说开发商资料没交齐。",
        "请帮忙催一下锦绣华庭小区的不动产证，全小区几百户都没有证，孩子上学要用。",
        "锦绣华庭交房两年多，业主都拿不到不动产权证书，开发商和登记中心互相推。",
        "买的锦绣华庭的房子，两年了还办不了产权证，贷款和落户都受影响。",
    ]),
    ("c1", "城乡居民医保缴费", "cannot_handle", [
        "用手机交了今年的城乡居民医保，钱扣了，但是查询显示未缴费。",
        "居民医保费在手机上缴了显示扣款成功，医保系统里还是没有缴费记录，怕影响报销。",
        "东湖县居民医保缴费，银行卡已经扣了380元，医保系统显示未缴费。",
        "交居民医保扣了钱却查不到缴费记录，打电话给税务说找医保，医保说找税务。",
        "城乡居民医保缴费扣款成功了，可是查缴费记录没有，显示未缴，到底交上没有？",
    ]),
    ("c1", "公积金提取", "cannot_handle", [
        "东湖县公积金提取业务暂停了，说是系统升级，我急着用钱还房贷。",
        "想提取公积金，窗口说系统在升级，下个月才能办，能不能想想办法？",
        "公积金提取办不了，已经停了快三周，说是系统升级切换。",
        "公积金中心系统升级期间不能提取，也没有提前通知，白请了一天假。",
        "公积金提取因为系统升级暂停，什么时候恢复？家里等着用这笔钱。",
    ]),
    ("t11", "农村建房审批", "too_hard", [
        "农村自建房审批要我们提供正规设计图纸，镇上没有设计单位，到县里画一套要三千多。",
        "建房审批非要设计院出的图纸，村民哪里弄得到，能不能提供标准设计图集？",
        "宅基地翻建房屋，审批要施工设计图纸，找设计院收费太高了。",
        "申请农村建房，镇里说必须有设计图纸才受理，普通农户根本弄不了。",
        "农村建房审批要设计图纸，能不能像别的地方一样给几套通用图纸让老百姓选？",
    ]),
    ("root", "出生医学证明", "cannot_handle", [
        "孩子出生一个月了，市妇幼说出生医学证明的空白证用完了，要等省里下发，报不了户口。",
        "出生医学证明办不了，医院说空白证件用完了，不知道要等多久。",
        "市妇幼保健院出生医学证明缺证，没法办，孩子上不了户口。",
        "在市妇幼保健院生的孩子，出生医学证明一直没领到，说空白证书用完了还没到货。",
        "出生医学证明领不到，医院说证件纸用完了，等省里发，宝宝户口一直落不了。",
    ]),
    ("c2", "机动车年检", "too_hard", [
        "西山县机动车检测站只有一家，年检预约排到下个月了，车辆马上逾期。",
        "车辆年检约不上号，县里就一个检测站，排队排到一个月以后。",
        "机动车年审预约不上，检测站说号满了，逾期要罚款怎么办？",
        "西山县汽车年检太难了，就一个检测站，天天排长队，网上预约全满。",
        "县里只有一家机动车检测站，年检要等一个月，能不能再开一家或者延长时间？",
        "年检预约一直约不上，检测站号满，车检快过期了，西山县能不能加开检测线。",
    ]),
    ("root", "居住证办理", "too_slow", [
        "居住证申请两个月了一直显示制证中，派出所说制证中心积压了几千张。",
        "办居住证等了快两个月还没发证，说是市里制证中心积压。",
        "居住证一直没下来，查询显示制证中，问了说全市制证都积压。",
        "居住证制证太慢了，制证中心积压严重，孩子入学报名要用。",
        "居住证申请后一直卡在制证中，快两个月了，派出所说制证积压没办法。",
    ]),
    ("c2", "残疾人证办理", "too_slow", [
        "办残疾证要做残疾评定，县医院每个月只安排一次鉴定，名额才十个，排了三个月。",
        "办残疾人证要做残疾评定，医院说每月就鉴定一次，约不上。",
        "残疾评定一个月才一次，名额少，我爸等了好几个月还没评上，残疾证办不下来。",
        "残疾人证申请卡在医院残疾评定环节，每月只鉴定一次，能不能增加次数？",
        "残疾证评定每月一次名额太少，排队排了三个月，能不能多安排几次鉴定？",
    ]),
]

# The second filing of someone whose first got no answer yet: their own words, the same problem.
REFILES = [
    "上次反映的问题到现在没人回复，再说一遍：{text}",
    "第二次反映了，还是没解决。{text}",
    "{text}前几天已经提交过，一直没消息，麻烦尽快处理。",
]

# --- unrelated cases: generic complaints, each (window, service item, issue) once in the month ---------------------

SERVICE_ITEMS = [
    "社会保障卡补办", "营业执照变更登记", "不动产登记", "城乡居民医保缴费", "公积金提取", "农村建房审批",
    "出生医学证明", "机动车年检", "居住证办理", "残疾人证办理", "户口迁移", "养老保险待遇领取", "食品经营许可",
    "护照办理", "失业金申领", "个体工商户注册",
]

ISSUES = [
    ("too_hard", "办{item}要求提供{doc}，可是{doc}早就丢了，补也补不出来，窗口说没有就不能办。"),
    ("too_slow", "{item}网上预约一直约不上，系统显示号源已满，连着看了{n}天都是这样。"),
    ("other", "{item}窗口工作人员态度很差，问两句就不耐烦，还让我去外面自己看公告。"),
    ("too_hard", "办{item}需要跑{n}个部门盖章，来回跑了好几趟还没盖完。"),
    ("other", "{item}收费标准不清楚，窗口多收了我{m}元也不给票据。"),
    ("too_hard", "{item}材料提交后被退回了{n}次，每次说法都不一样，能不能一次性告知？"),
    ("cannot_handle", "{item}要求回户籍地办理，我在这里工作好几年了，回老家一趟要请好几天假。"),
    ("too_hard", "{item}只有工作日上午能办，上班族根本抽不出时间，希望周末也能办。"),
    ("other", "{item}的办事指南和窗口实际要求不一样，照着指南准备的材料白准备了。"),
    ("too_slow", "{item}线上提交后显示审核中已经{n}天了，超过了承诺的办理时限。"),
    ("too_hard", "家里老人办{item}不会用手机，窗口非要让在网上自己提交。"),
    ("cannot_handle", "{item}需要的{doc}开不出来，社区说不归他们管，派出所也说不归他们管。"),
    ("other", "{item}叫号系统混乱，有人插队，我排了{n}个小时。"),
    ("too_hard", "{item}要求的{doc}必须是原件，原件在单位档案里拿不出来，复印件不认。"),
]
DOCS = ["结婚证", "房产证原件", "无犯罪记录证明", "户籍证明", "收入证明", "租房合同", "亲属关系证明", "离职证明",
        "学历证明", "银行流水"]
# Complaints about the window itself, no service item named (matched by problem type at the window).
NO_ITEM = [
    ("other", "便民服务中心门口停车太难了，来办事没地方停车，被贴了罚单。"),
    ("other", "服务中心空调坏了，大厅里特别热，老人排队差点中暑。"),
    ("too_slow", "打了三次咨询电话都没人接，想问的事情问不到。"),
    ("other", "大厅的自助打印机没有纸了，打印不了材料。"),
    ("too_hard", "中心的指示牌太乱了，找了半天不知道该去哪个窗口。"),
    ("other", "中午十二点到两点窗口都关了，我们只能中午请假来办事。"),
    ("too_slow", "取号机坏了，只能人工排队，等了整整一上午。"),
    ("other", "中心的卫生间一直锁着不开放，办事群众很不方便。"),
]
NO_ITEM_OFFICES = ["root", "c1", "t11", "c2"]

OFFICES = ["root", "c1", "t11", "c2", "t12"]

SAME_PERSON_OTHER_PROBLEM = [
    ("root", "户口迁移", "cannot_handle", "孩子户口迁移要父母双方到场，孩子爸爸在外地，能不能委托办理？"),
    ("root", "护照办理", "too_slow", "护照办了二十个工作日还没寄到，出国的机票都订了。"),
    ("c1", "失业金申领", "too_hard", "失业金申领要原单位出具离职证明，公司已经倒闭了开不了。"),
    ("c1", "养老保险待遇领取", "too_slow", "退休手续办完两个月了，养老金还没有发下来。"),
]

# --- what people do to text ---------------------------------------------------------------------------------------

HOMOPHONES = {"的": "得", "在": "再", "已": "以", "证": "正", "办": "半", "检": "捡", "账": "帐", "做": "作",
              "哪": "那", "候": "侯", "再": "在", "到": "倒", "预": "予", "制": "质", "登": "等", "验": "检"}
PREFIXES = ["", "", "", "你好，", "您好！", "领导好，", "我想反映个问题：", "反映一下，", "麻烦问一下，"]
SUFFIXES = ["", "", "", "谢谢！", "希望尽快解决。", "请有关部门重视。", "盼复。", "急！！", "谢谢领导"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国红梅志文斌波辉鹏玲燕飞鑫宇浩晨欣怡子涵"
FULL_WIDTH = str.maketrans("0123456789,!?:;()", "０１２３４５６７８９，！？：；（）")
HALF_WIDTH = str.maketrans("，！？：；（）。", ",!?:;().")


def spellings(mobile: str) -> list[str]:
    """The ways people type one mainland mobile number."""
    a, b, c = mobile[:3], mobile[3:7], mobile[7:]
    return [mobile, f"{a} {b} {c}", f"{a}-{b}-{c}", f"+86 {mobile}", f"+86-{a}-{b}-{c}", f"0086{mobile}",
            f"+86{a} {b} {c}"]


def roughen(text: str, rng: random.Random) -> str:
    """The text as one citizen typed it: a greeting, typos, traditional characters, other punctuation, spaces."""
    text = rng.choice(PREFIXES) + text + rng.choice(SUFFIXES)
    for _ in range(rng.choice((0, 1, 1, 2))):
        spots = [i for i, ch in enumerate(text) if ch in HOMOPHONES]
        if spots:
            i = rng.choice(spots)
            text = text[:i] + HOMOPHONES[text[i]] + text[i + 1:]
    if rng.random() < 0.15:
        text = zhconv.convert(text, "zh-hant")
    if rng.random() < 0.3:
        text = text.translate(HALF_WIDTH)
    elif rng.random() < 0.2:
        text = text.translate(FULL_WIDTH)
    if rng.random() < 0.2:
        i = rng.randrange(len(text))
        text = text[:i] + rng.choice((" ", "  ", "\n")) + text[i:]
    return text


def month(seed: int = 17) -> list[Report]:
    """The month's reports in filing order (the same for a seed)."""
    rng = random.Random(seed)
    used_phones: set[str] = set()
    reports: list[Report] = []

    def person() -> tuple[str, str]:
        while True:
            mobile = rng.choice(("138", "139", "135", "150", "186", "187", "177", "199")) + \
                f"{rng.randrange(10 ** 8):08d}"
            if mobile not in used_phones:
                used_phones.add(mobile)
                name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
                return name, mobile

    for g, (office, item, kind, texts) in enumerate(GROUPS, 1):
        start = rng.uniform(0, MONTH_DAYS - 11)
        for p, text in enumerate(texts, 1):
            name, mobile = person()
            day = start + rng.uniform(0, 10)
            problem = f"g{g:02d}"
            reports.append(Report(f"{problem}-{p}", problem, day, office, item, kind, name,
                                  rng.choice(spellings(mobile)), roughen(text, rng)))
            if rng.random() < 0.25:  # files again a few days later, from the same number typed another way
                again = rng.choice(REFILES).format(text=text)
                reports.append(Report(f"{problem}-{p}r", problem, min(day + rng.uniform(2, 8), MONTH_DAYS - 0.1),
                                      office, item, kind, name, rng.choice(spellings(mobile)), roughen(again, rng)))

    combos = [(office, item, i) for office in OFFICES for item in SERVICE_ITEMS for i in range(len(ISSUES))]
    rng.shuffle(combos)
    for s, (office, item, i) in enumerate(combos[:300], 1):
        kind, template = ISSUES[i]
        doc = rng.choice(DOCS)
        text = template.format(item=item, doc=doc, n=rng.randrange(2, 9), m=rng.choice((20, 50, 80, 100, 200)))
        name, mobile = person()
        reports.append(Report(f"s{s:03d}", f"s{s:03d}", rng.uniform(0, MONTH_DAYS), office, item, kind, name,
                              rng.choice(spellings(mobile)), roughen(text, rng)))
    for n, (kind, text) in enumerate(NO_ITEM, 1):
        office = NO_ITEM_OFFICES[n % len(NO_ITEM_OFFICES)]
        name, mobile = person()
        reports.append(Report(f"n{n:02d}", f"n{n:02d}", rng.uniform(0, MONTH_DAYS), office, None, kind, name,
                              rng.choice(spellings(mobile)), roughen(text, rng)))
    for k in range(0, len(SAME_PERSON_OTHER_PROBLEM), 2):
        name, mobile = person()
        day = rng.uniform(0, MONTH_DAYS - 12)
        for j, (office, item, kind, text) in enumerate(SAME_PERSON_OTHER_PROBLEM[k:k + 2]):
            key = f"p{k // 2 + 1}{'ab'[j]}"
            reports.append(Report(key, key, day + j * rng.uniform(3, 10), office, item, kind, name,
                                  rng.choice(spellings(mobile)), roughen(text, rng)))
    return sorted(reports, key=lambda r: r.day)


# --- pairs checked by hand: (their service item, text a, text b, same problem?, why) --------------------------------------------------

TRICKY_PAIRS = [
    ("社会保障卡补办", "社保卡丢了去镇上补办，说制卡机器坏了要等修好，已经等了十几天。",
     "補辦社保卡，中心說自助製卡機故障不能即時製卡，請問什麼時候能修好？", True,
     "the same broken machine, in other words and traditional characters"),
    ("不动产登记", "锦绣华庭小区交房两年了，不动产权证还办不下来，开发商说在等验收。",
     "锦秀华庭到现在没有房本，不动产登记中心说开发商资料没交齐。", True,
     "the same estate (a typo in its name), property certificates: one problem"),
    ("机动车年检", "西山县机动车检测站只有一家，年检预约排到下个月了，车辆马上逾期。",
     "机动车年检网上预约一直约不上，系统显示号源已满，连着看了3天都是这样。", False,
     "both about booking a vehicle inspection, but the second is the generic full appointment system, the first the "
     "county's single test station: the construction keeps them apart, and by hand they are close (labelled apart)"),
    ("营业执照变更登记", "营业执照变更网上办理，附件上传报错：文件格式错误。请问到底要什么格式？",
     "营业执照变更登记材料提交后被退回了3次，每次说法都不一样，能不能一次性告知？", False,
     "the same service item, different problems: an upload error against materials sent back"),
    ("城乡居民医保缴费", "用手机交了今年的城乡居民医保，钱扣了，但是查询显示未缴费。",
     "城乡居民医保缴费收费标准不清楚，窗口多收了我50元也不给票据。", False,
     "the same service item and money in both, different problems"),
    ("公积金提取", "公积金提取办不了，已经停了快三周，说是系统升级切换。",
     "第二次反映了，还是没解决。公积金提取办不了，已经停了快三周，说是系统升级切换。", True,
     "the same citizen filing again"),
]
