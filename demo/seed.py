"""Loading the demo office: departments, staff, three months of past work, and the cases open now.

Every case is walked through the real workflow with the clock set back (`Replay`), so each event, deadline,
ladder step, survey and text is what the office would have produced then. The demo is history:
- its texts are recorded as they were and never sent, now or after a restart (`notify.writing_history`);
- the ladder steps that fell due in its past fired at their own due time, as an on-time sweeper would
  have (`escalation.history`), and the surveys left unanswered were closed at their closing time with the
  default rating (`notify.closing.close_on_time`); only what falls due after loading is left to the sweeps;
- staff act in office hours on working days (`demo.hours`); citizens file at any hour and answer a survey
  text outside the SMS quiet hours; nothing is dated after the moment of loading;
- every phone number is a reserved test number (`demo.numbers`), so what the sweeper sends later is
  recorded in the SMS log and reaches nobody, whatever SMS_BACKEND says.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from flask import current_app
from werkzeug.security import generate_password_hash

from escalation.history import fire_on_time
from notify import writing_history
from notify.closing import close_on_time
from notify.operations import hold_until
from tickets import attachments, clock, deadlines, intake, knowledge, offices, workflow
from tickets.accounts import create_user
from tickets.models import Department, Notice, ServiceItem, is_bad_rating
from tickets.workflow import KINDS, Actor

from .data import (CASES, CONTACT_HOURS, CONTACTS, COUNTIES, COUNTY_DEPARTMENTS, DEMO_PASSWORD, DEMO_USERS,
                   DEPARTMENTS, FILES, FILING_HOUR_WEIGHTS, LANDLINE, LANDLINE_STYLE,
                   HISTORY_DEPARTMENTS, HISTORY_ITEMS, HISTORY_MONTHS, HISTORY_NAMES, HISTORY_PER_MONTH,
                   HISTORY_WINDOWS, KNOWLEDGE, NETWORK_USERS, PRESENT_WINDOWS, RECURRING, RECURRING_ITEM,
                   RECURRING_TASK, ROOT_NAME, SERVICE_ITEMS, county_department)
from .files import incoming
from .hours import office_time_from
from .numbers import Numbers, spelled

GAP = timedelta(minutes=10)                   # the least time between two steps of one case
STEP = timedelta(hours=5)                     # how long after the previous step a case of now moves on
LATEST = timedelta(minutes=5)                 # nothing happens in the last minutes before loading
OPENING_SPREAD_MINUTES = 150                  # what waited for the office is done within its first hours
MORNING_SPREAD_MINUTES = 90                   # citizens answer a text held overnight a little after it came
MAX_DAYS_EARLIER = 60                         # how far a case of now may move back to fit before loading


@dataclass
class Loaded:
    departments: int
    logins: int
    cases: int


class Replay:
    """The demo's past, one moment at a time, each at a time its actor could act and never after `now`."""

    def __init__(self, session, now: datetime, rng: random.Random):
        policy = deadlines.policy()
        self.session, self.now, self.rng = session, now, rng
        self.tz, self.is_working_day = clock.local_tz(), policy.calendar_source().is_working_day

    def when(self, action: str, earliest: datetime) -> datetime:
        """The first moment from `earliest` at which this step can happen: an SMS rating once the citizen may
        have the survey text (outside quiet hours), a staff action when the office is open."""
        if action == "rate":
            held = hold_until(earliest)
            if held is None:
                return earliest
            moment = held + timedelta(minutes=self.rng.randrange(MORNING_SPREAD_MINUTES))
            while (later := hold_until(moment)) is not None:  # quiet hours that are not one night
                moment = later
            return moment
        moment = office_time_from(earliest, self.is_working_day, self.tz)
        if moment > earliest:  # it waited for the office to open: done some time in that morning or afternoon
            spread = timedelta(minutes=self.rng.randrange(OPENING_SPREAD_MINUTES))
            moment = office_time_from(moment + spread, self.is_working_day, self.tz)
        return moment.astimezone(timezone.utc)

    def schedule(self, start: datetime, delays: list[timedelta], actions: list[str]) -> list[datetime]:
        """The moment of each step: its delay after the step before (or `start`), then the first moment it can happen."""
        moments, moment = [], start
        for delay, action in zip(delays, actions):
            moment = self.when(action, moment + max(delay, GAP))
            moments.append(moment)
        return moments

    @contextmanager
    def at(self, moment: datetime):
        """Act at `moment`: first the ladder steps that fell due before it fire at their time, and the surveys that
        closed before it are settled at theirs, as the sweeps would."""
        if moment > self.now:
            raise ValueError(f"the demo's past must end at {self.now.isoformat()}, not reach {moment.isoformat()}")
        fire_on_time(self.session, moment)
        close_on_time(self.session, moment)
        with clock.at(moment.astimezone(timezone.utc)):
            yield
            self.session.flush()

    def file(self, moment: datetime, fields: dict, *, by=None, channel: str = "phone", files=()):
        """The citizen files on the web; or, `by` a member of staff, for a caller (帮办代办) on `channel`. `files`:
        uploads (`attachments.Incoming`)."""
        with self.at(moment):
            if by is not None:
                return intake.file_for_caller(self.session, {**fields, "channel": channel}, Actor.of(by), files).ticket
            values, checked = intake.validate_filing(self.session, fields, list(files))
            return intake.file_ticket(self.session, values, channel="web", files=checked).ticket

    def act(self, ticket, moment: datetime, action: str, payload, user=None) -> None:
        with self.at(moment):
            if action == "rate":
                workflow.rate(self.session, ticket, payload, channel="sms")
            elif action == "withdraw":  # the citizen, from the case page
                workflow.withdraw(self.session, ticket, payload.get("reason"))
            else:
                workflow.perform(self.session, ticket, Actor.of(user), action, payload)

    def local_date(self, moment: datetime) -> str:
        return clock.today(moment).isoformat()


CITIZEN_STEPS = ("rate", "withdraw")  # steps the citizen takes, not a member of staff


def seed(session) -> Loaded:
    """Write the demo office into the session (the caller commits)."""
    numbers = Numbers(current_app.config["SMS_TEST_NUMBERS"])
    departments = {}
    root_id = offices.root_id(session)
    for index, (code, name, supervisor, leader) in enumerate(DEPARTMENTS):
        departments[code] = Department(code=code, name=name, supervisor_name=supervisor, leader_name=leader,
                                       supervisor_phone=numbers.staff(2 * index + 1),
                                       leader_phone=numbers.staff(2 * index + 2), office_id=root_id)
        session.add(departments[code])
    session.flush()
    session.add_all(ServiceItem(name=name, code=code, department_id=departments[department].id if department else None)
                    for name, code, department in SERVICE_ITEMS)
    # One hash of the demo password for every demo login: its password is printed on the console anyway, and a
    # hash takes a tenth of a second by design (28 of them were a third of loading the demo, and `flask serve`
    # checked each again for its banner: demo/logins.py).
    password_hash = generate_password_hash(DEMO_PASSWORD)
    users = {
        username: _with_password(create_user(session, username, role, department_code=code, display_name=display,
                                             phone=numbers.staff(len(DEPARTMENTS) * 2 + 1 + index)), password_hash)
        for index, (username, role, code, display) in enumerate(DEMO_USERS)
    }
    users.update(_seed_network(session, departments, numbers, first_number=len(DEPARTMENTS) * 2 + 1 + len(users),
                               password_hash=password_hash))
    now = clock.now()
    _seed_knowledge(session, users, now)
    replay = Replay(session, now, random.Random(2026))
    with writing_history(session):
        cases = _seed_history(replay, departments, users, numbers)
        cases += _seed_present(replay, departments, users, numbers)
        cases += _seed_recurring(replay, departments, users, numbers)
        fire_on_time(session, now)  # up to the moment of loading; what falls due later is the sweeper's
        close_on_time(session, now)
    # The bell: what happened before yesterday was seen long ago; the last day's notices wait to be read.
    session.execute(sa.update(Notice).where(Notice.created_at < now - timedelta(days=1)).values(read_at=now))
    return Loaded(departments=len(departments), logins=len(users), cases=cases)


def _with_password(user, password_hash: str):
    """A demo account that signs in with the demo password (`password_hash`: its hash)."""
    user.password_hash = password_hash
    return user


def _seed_network(session, departments: dict, numbers: Numbers, first_number: int, password_hash: str) -> dict:
    """The city's network: the root renamed 市民服务中心, three counties with two townships each, each county's
    departments, and the staff of every window (their logins: `NETWORK_USERS`, signing in with `password_hash`).
    Adds the county departments to `departments`; returns the logins by username."""
    offices.root(session).name = ROOT_NAME
    staff_numbers = iter(range(first_number, first_number + 1000))
    for county, name, townships in COUNTIES:
        county_office = offices.create_office(session, code=county, name=f"{name}办不成事反映窗口", level="county",
                                              parent_code="root")
        for code, township in townships:
            offices.create_office(session, code=code, name=f"{township}便民服务中心", level="township",
                                  parent_code=county)
        for code, department_name, _login in COUNTY_DEPARTMENTS:
            department = Department(code=county_department(county, code), name=f"{name}{department_name}",
                                    supervisor_phone=numbers.staff(next(staff_numbers)),
                                    leader_phone=numbers.staff(next(staff_numbers)), office_id=county_office.id)
            session.add(department)
            departments[department.code] = department
    session.flush()
    return {username: _with_password(create_user(session, username, role, office_code=office,
                                                 department_code=department, display_name=display,
                                                 phone=numbers.staff(next(staff_numbers))), password_hash)
            for username, role, office, department, display in NETWORK_USERS}


def _seed_knowledge(session, users: dict, now: datetime) -> None:
    """The 知识库's entries, each written by its owner on its day (so one is past its review date now)."""
    for login, title, content, items, days_ago in KNOWLEDGE:
        with clock.at(now - timedelta(days=days_ago)):
            knowledge.create_entry(session, Actor.of(users[login]), title=title, content=content, service_items=items)


def _window_of(window: str):
    """For a past case filed at `window`: (the office code to file with, the department code and the login that
    stand for the city's in the case's steps). A county's and its townships' cases go to the county's departments;
    what the county has no department for goes to the city's."""
    if window == "root":
        return None, (lambda code: code), (lambda who: who)
    county = next(c for c, _name, townships in COUNTIES if window == c or window in {t for t, _n in townships})
    own = {code: (county_department(county, code), f"{county}_{login}") for code, _name, login in COUNTY_DEPARTMENTS}
    logins = {login: f"{county}_{login}" for _code, _name, login in COUNTY_DEPARTMENTS}
    return (window, lambda code: own[code][0] if code in own else code,
            lambda who: f"office_{window}" if who == "office" else logins.get(who, who))


def _payload(replay: Replay, departments: dict, action: str, payload, moment: datetime):
    if action == "transfer":
        return {"department_id": departments[payload["dept"]].id, "working_days": payload.get("days"),
                "instructions": payload.get("instructions")}
    if action == "record_visit":
        return {**payload, "visited_on": replay.local_date(moment)}
    if action == "record_contact":  # recorded as it is made
        return {**payload, "contacted_at": moment.isoformat()}
    return payload


def _seed_present(replay: Replay, departments, users, numbers) -> int:
    """The cases of the last weeks, each at its stage of the loop now."""
    for index, (days_ago, name, style, problem_type, item, description, steps) in enumerate(CASES):
        actions, delays = [step[0] for step in steps], [STEP] * len(steps)
        by_staff = style == LANDLINE_STYLE  # filed on the phone by the window's staff: in office hours
        start = replay.now - timedelta(days=days_ago, hours=1, minutes=7 * index)
        # A weekend or a holiday just before loading can leave no office time for the steps: file it earlier.
        for _ in range(MAX_DAYS_EARLIER):
            filed = replay.when("file", start) if by_staff else start
            moments = replay.schedule(filed, delays, actions)
            if filed <= replay.now - LATEST and (not moments or moments[-1] <= replay.now - LATEST):
                break
            start -= timedelta(days=1)
        else:
            raise ValueError(f"the calendar has no office time for {name}'s case before {replay.now.isoformat()}")
        office_code, department, login = _window_of(PRESENT_WINDOWS[index % len(PRESENT_WINDOWS)])
        fields = {"name": name, "phone": LANDLINE if by_staff else spelled(numbers.citizen(index), style),
                  "problem_type": problem_type, "service_item": item, "description": description,
                  **({"office_code": office_code} if office_code else {})}
        attach_to, papers = FILES.get(name, (None, ()))
        ticket = replay.file(filed, fields, by=users[login("office")] if by_staff else None,
                             files=incoming(papers) if attach_to == "file" else ())
        for moment, step in zip(moments, steps):
            action, payload = step[0], step[1]
            if action == attach_to:
                payload = {**payload, attachments.FIELD: incoming(papers)}
            if action == "transfer":
                payload = {**payload, "dept": department(payload["dept"])}
            user = users[login(step[2] if len(step) > 2 else "office")] if action not in CITIZEN_STEPS else None
            replay.act(ticket, moment, action, _payload(replay, departments, action, payload, moment), user)
    return len(CASES)


def _seed_recurring(replay: Replay, departments, users, numbers) -> int:
    """一类事 and 并单: the reports of one problem at the city's window (`RECURRING`). The office transfers each to the
    department, merges the second into the first (the same company's), and after the last opens a 主动治理 task from
    their cluster (`RECURRING_TASK`), to which the cases are linked."""
    from tickets import clusters

    office = users["office"]
    department, days, content = RECURRING_TASK
    transfer = {"department_id": departments[department].id, "instructions": "请核实电子营业执照身份核验失败的原因并答复群众。"}
    # Each report on its day; the office's steps at its next office time, those that fit before loading (after a long
    # holiday the latest reports still wait, and so may the task).
    filed, latest = [], None
    for index, (days_ago, name, style, description) in enumerate(RECURRING):
        moment = replay.now - timedelta(days=days_ago, hours=3, minutes=17 * index)
        fields = {"name": name, "phone": spelled(numbers.citizen(len(CASES) + index), style),
                  "problem_type": "cannot_handle", "service_item": RECURRING_ITEM, "description": description}
        filed.append(replay.file(moment, fields))
        step = replay.when("merge" if index == 1 else "accept_and_transfer", moment + STEP)
        if step > replay.now - LATEST:
            continue
        if index == 1:
            replay.act(filed[-1], step, "merge", {"into": filed[0].tracking_no, "note": "同一企业反映的同一问题"}, office)
        else:
            replay.act(filed[-1], step, "accept_and_transfer", transfer, office)
        latest = max(step, latest or step)
    # six reports in two weeks: a 一类事, and the office has it fixed at the root, once it has seen them all
    opened = replay.when("open_governance", max(latest or replay.now, moment) + GAP)
    if latest is not None and opened <= replay.now - LATEST:
        with replay.at(opened):
            clusters.open_governance(replay.session, Actor.of(office), filed[0].cluster_id, departments[department].id,
                                     days, content, now=opened)
        return len(RECURRING) + 1  # and the task
    return len(RECURRING)


def _seed_history(replay: Replay, departments, users, numbers) -> int:
    """Three months of ordinary work before this month, so that last month's report has figures."""
    local = replay.now.astimezone(replay.tz)
    first = datetime(local.year, local.month, 1, tzinfo=replay.tz)
    starts = []
    for _ in range(HISTORY_MONTHS):
        first = (first - timedelta(days=1)).replace(day=1)
        starts.append(first)
    rng = replay.rng
    cases = sorted((_history_case(rng, start) for start in reversed(starts) for _ in range(HISTORY_PER_MONTH)),
                   key=lambda case: case[0])
    for index, (filed, fields, steps) in enumerate(cases):
        fields["phone"] = numbers.citizen(rng.randrange(len(numbers.citizens)))
        office_code, department, login = _window_of(HISTORY_WINDOWS[index % len(HISTORY_WINDOWS)])
        if office_code is not None:
            fields["office_code"] = office_code
        steps = [(hours, action, {**payload, "dept": department(payload["dept"])} if action == "transfer" else payload,
                  login(who) if who else who) for hours, action, payload, who in steps]
        ticket = replay.file(filed, fields)
        hours = [0] + [step[0] for step in steps]
        delays = [timedelta(hours=later - earlier) for earlier, later in zip(hours, hours[1:])]
        moments = replay.schedule(filed, delays, [step[1] for step in steps])
        for moment, (_hours, action, payload, who) in zip(moments, steps):
            if moment > replay.now - LATEST:
                break  # the rest of this case lies in the future: it is open now, at the stage it reached
            replay.act(ticket, moment, action, _payload(replay, departments, action, payload, moment),
                       users.get(who))
    return len(cases)


def _history_case(rng: random.Random, month_start: datetime):
    """One past case: when it was filed, its fields, and its steps as (hours after filing, action, payload, who).

    The hours order the steps and space them out: each step happens its distance in hours after the step
    before, at the first moment its actor could act (see `Replay.when`).
    """
    problem_type, item, description = rng.choice(HISTORY_ITEMS)
    hour = rng.choices(range(24), weights=FILING_HOUR_WEIGHTS)[0]
    filed = month_start + timedelta(days=rng.randrange(0, 27), hours=hour, minutes=rng.randrange(60))
    code, handler = rng.choice(HISTORY_DEPARTMENTS)
    roll, steps = rng.random(), []
    if roll < 0.05:
        steps.append((3, "reject", {"reason": "您反映的事项属于民事纠纷，建议通过人民调解或诉讼途径解决。"}, "office"))
    elif roll < 0.11:
        steps += [(2, "accept", {}, "office"), (5, "resolve", {"content": "已电话告知办理流程和所需材料。"}, "office")]
    else:
        at = 3
        steps += [(2, "accept", {}, "office"), (at, "transfer", {"dept": code}, "office")]
        if roll < 0.18:  # misrouted: returned within the return window (no contact), then sent to the right department
            other_code, other_handler = rng.choice([d for d in HISTORY_DEPARTMENTS if d[0] != code])
            steps += [(at + 20, "return", {"reason": "该事项不属于本部门职责，请改派。"}, handler),
                      (at + 24, "transfer", {"dept": other_code}, "office")]
            at, handler = at + 24, other_handler
        if rng.random() < 0.92:  # 先行联系: most within hours; a few the next day (late); some never recorded
            method, outcome = rng.choice(CONTACTS)
            steps.append((at + rng.choice(CONTACT_HOURS), "record_contact", {"method": method, "outcome": outcome},
                          handler))
        took = rng.choice((20, 30, 46, 70, 94, 118, 140, 166, 190, 260))
        if took > 40 and rng.random() < 0.12:  # asked for more time before the deadline
            steps += [(at + 30, "request_extension", {"working_days": 3, "reason": "需要现场核查。"}, handler),
                      (at + 34, "decide_extension", {"approve": True}, "office")]
        if took > 100 and rng.random() < 0.15:
            steps.append((at + 90, "remind", {"note": "请抓紧办理。"}, "office"))
        at += took
        steps.append((at, "reply", {"content": "已核实办理，结果已告知申请人。"}, handler))
        if rng.random() < 0.08:
            steps += [(at + 3, "send_back", {"reason": "答复未说明办理结果，请补充。"}, "office"),
                      (at + 30, "reply", {"content": "已补充说明办理结果和依据。"}, handler)]
            at += 30
        steps.append((at + 4, "approve", {}, "office"))
    closed_at = steps[-1][0] if KINDS[steps[-1][1]].closes_case else None
    if closed_at is not None and rng.random() < 0.88:
        score = rng.choices((1, 2, 3, 4, 5), weights=(58, 22, 9, 7, 4))[0]
        steps.append((closed_at + rng.choice((1, 2, 4, 6, 9, 20, 26)), "rate", score, None))
        if is_bad_rating(score) and steps[1][1] != "resolve":
            steps += [(closed_at + 30, "record_visit", {"contacted": True, "outcome": "已电话回访，说明整改安排。"},
                       "office"),
                      (closed_at + 80, "reply", {"content": "已重新办理并上门说明。"}, handler),
                      (closed_at + 84, "approve", {}, "office"),
                      (closed_at + 96, "rate", rng.choice((1, 2, 3)), None)]
        elif is_bad_rating(score):
            steps.append((closed_at + 30, "explain", {"content": "已当面说明政策依据。"}, "office"))
    fields = {"name": rng.choice(HISTORY_NAMES), "problem_type": problem_type, "service_item": item,
              "description": description}
    return filed, fields, steps
