"""The text messages Banjie sends: one key each, who gets it, the variables it may use, and a sample.

The default wording is a Jinja file in templates/notify/sms/<key>.txt; an administrator's edit (an
`SmsTemplate` row) replaces it. Templates render in a sandbox (notify/sandbox.py), so an edited text can
read the variables it is given and nothing else, and does bounded work. An edit is saved only when it
renders with the sample and with empty and very long values of every variable; an edit that still cannot
be used for a message (one saved before a rule existed, a value no check foresaw) never holds the action
up: the default wording goes out instead and the log says so (`compose`).
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l

from .sandbox import TemplateProblem, check_source, render, sms_length, usable

log = logging.getLogger("banjie.sms")

DEFAULTS_DIR = Path(__file__).resolve().parent.parent / "templates" / "notify" / "sms"

# A Chinese text message is 70 characters; longer ones travel as 67-character parts. Three parts at most. Characters
# as the provider bills them (UCS-2: UTF-16 code units, `sms_length`): an emoji or a rare character (CJK Extension B,
# e.g. 𠀀) counts as two.
SINGLE_SEGMENT = 70
SEGMENT = 67
MAX_SEGMENTS = 3
MAX_LENGTH = SEGMENT * MAX_SEGMENTS


@dataclass(frozen=True)
class MessageKind:
    key: str
    label: object
    audience: str
    sample: dict = field(default_factory=dict)
    survey: bool = False  # part of the satisfaction survey: not sent to numbers that opted out
    free_text: tuple = ()  # variables people write (any length): the text must shorten them (|clip)
    immediate: bool = False  # the citizen is waiting for it (a new query code): quiet hours do not hold it
    required: tuple = ()  # variables the text must show: without them the message is useless (the query code)
    secret: bool = False  # carries the citizen's query code: staff never see its text (the console's SMS log)


_TICKET = {"tracking_no": "BJ20261123-0001"}

KINDS: dict[str, MessageKind] = {k.key: k for k in (
    MessageKind("receipt", _l("Filing receipt"), "citizen", {**_TICKET, "query_code": "K7P2M9QX"},
                required=("tracking_no", "query_code"), secret=True),
    MessageKind("query_code", _l("New query code (找回查询码)"), "citizen", {**_TICKET, "query_code": "K7P2M9QX"},
                immediate=True, required=("tracking_no", "query_code"), secret=True),
    MessageKind("rejected", _l("Case not accepted"), "citizen",
                {**_TICKET, "reason": "您反映的事项属于涉法涉诉信访，依法应通过上诉、申请再审等司法途径解决。"},
                free_text=("reason",)),
    MessageKind("transferred", _l("Case transferred"), "citizen",
                {**_TICKET, "department": "人力资源和社会保障局", "due": "2026-11-30"}),
    MessageKind("extended", _l("Handling deadline extended"), "citizen",
                {**_TICKET, "department": "人力资源和社会保障局", "due": "2026-12-07"}),
    MessageKind("merged", _l("Case merged (并单)"), "citizen", _TICKET),
    MessageKind("split", _l("Case handled on its own again"), "citizen", _TICKET),
    MessageKind("closed", _l("Reply and closure"), "citizen",
                {**_TICKET, "reply": "已联系申请人补正材料，养老保险关系转移已于今日办结，请留意到账短信。"},
                free_text=("reply",)),
    # 主动治理: the office's own task opened from a 一类事 was answered; each linked case's citizen hears it once
    MessageKind("governance_answer", _l("Fixed at the root: linked cases (主动治理)"), "citizen",
                {**_TICKET, "answer": "已协调市场监管局统一线上办理流程，营业执照变更现可一次办结。"},
                free_text=("answer",)),
    # default_label: what an unanswered survey will be recorded as (基本满意), "" where the office does not default
    MessageKind("survey", _l("Satisfaction survey"), "citizen", {**_TICKET, "days": 7, "default_label": "基本满意"},
                survey=True),
    MessageKind("survey_thanks", _l("Thanks for a rating"), "citizen", {**_TICKET, "score_label": "满意"},
                survey=True),
    MessageKind("survey_thanks_bad", _l("Thanks for a bad rating (case reopened)"), "citizen",
                {**_TICKET, "score_label": "不满意"}, survey=True),
    MessageKind("survey_unclear", _l("Survey reply not understood"), "citizen", _TICKET, survey=True),
    MessageKind("survey_closed", _l("Survey already closed"), "citizen", _TICKET),
    MessageKind("opted_out", _l("Opted out of surveys"), "citizen", {}),
    MessageKind("bad_rating_supervisor", _l("Bad rating: supervisor"), "supervisor",
                {**_TICKET, "department": "人力资源和社会保障局", "score_label": "不满意", "due": "2026-12-14"}),
    MessageKind("remind_handler", _l("Reminder to the department (催办)"), "handler",
                {**_TICKET, "department": "人力资源和社会保障局", "due": "2026-11-30"}),
    MessageKind("escalation_warning", _l("Deadline tomorrow: handler"), "handler",
                {**_TICKET, "department": "人力资源和社会保障局", "due": "2026-11-30 23:59"}),
    MessageKind("escalation_supervisor", _l("Overdue: supervisor (督办)"), "supervisor",
                {**_TICKET, "department": "人力资源和社会保障局", "due": "2026-11-30 23:59", "days_overdue": 0}),
    MessageKind("escalation_leader", _l("Overdue: leader (挂牌督办)"), "leader",
                {**_TICKET, "department": "人力资源和社会保障局", "due": "2026-11-30 23:59", "days_overdue": 2}),
    MessageKind("contact_warning", _l("First contact due soon: handler"), "handler",
                {**_TICKET, "department": "人力资源和社会保障局", "due": "2026-11-24 10:00"}),
    MessageKind("contact_supervisor", _l("First contact missed: supervisor"), "supervisor",
                {**_TICKET, "department": "人力资源和社会保障局", "due": "2026-11-24 10:00", "hours_overdue": 0}),
    MessageKind("instruction_handler", _l("Leader's instruction (批示): handler"), "handler",
                {**_TICKET, "department": "人力资源和社会保障局", "instruction": "请分管负责同志牵头，三个工作日内办结并回复群众。"},
                free_text=("instruction",)),
    MessageKind("supplement_handler", _l("Citizen added information: handler"), "handler",
                {**_TICKET, "department": "人力资源和社会保障局"}),
    MessageKind("office_reminder", _l("Office deadline reminder"), "office",
                {**_TICKET, "deadline": "受理", "due": "2026-11-24 23:59"}),
    MessageKind("report_ready", _l("Monthly report ready"), "leader", {"month": "2026年10月", "closure_rate": "95.8%"}),
)}


def segments(text: str) -> int:
    """How many SMS parts a Chinese (UCS-2) text needs."""
    length = sms_length(text)
    return 1 if length <= SINGLE_SEGMENT else math.ceil(length / SEGMENT)


@functools.lru_cache(maxsize=None)
def default_text(key: str) -> str:
    return (DEFAULTS_DIR / f"{key}.txt").read_text(encoding="utf-8").strip()


def signature() -> str:
    return f"【{current_app.config['OFFICE_NAME']}】"


def render_text(source: str, context: dict) -> str:
    """The message body: the office's signature and the rendered text on one line each squeezed to single spaces."""
    return signature() + " ".join(render(source, context).split())


def compose(key: str, custom: str | None, context: dict) -> str:
    """The text to send: the administrator's wording, or the default when that wording cannot make this message.

    Whatever goes wrong with an edited text (a check it no longer passes, an error on these values, a
    result over MAX_LENGTH), the action that sends it completes: the default goes out and a warning names
    the message and the kind of problem, never the number or the values.
    """
    if custom:
        try:
            if not usable(custom, frozenset(KINDS[key].sample)):
                raise TemplateProblem("it fails the template check")
            text = render_text(custom, context)
            if sms_length(text) <= MAX_LENGTH:
                return text
            problem = f"{sms_length(text)} characters, {MAX_LENGTH} at most"
        except Exception as error:  # noqa: BLE001 - an action never fails because of a text
            problem = str(error) if isinstance(error, TemplateProblem) else type(error).__name__
        log.warning("SMS template %r cannot be used for this message (%s); the default text was sent", key, problem)
    return render_text(default_text(key), context)


LONG_VALUE = "测" * 500  # longer than any message; a name or date is far shorter, a citizen's reply may not be
LONG_WIDE_VALUE = "😀" * 500  # as long, in characters that count twice (`sms_length`): an emoji-laden reply


def check_text(key: str, source: str) -> str:
    """The sample rendering of an edited text, or TemplateProblem with a message for the editor.

    Refused: what the sandbox does not render (loops, calls, unknown variables and filters ...), a text
    longer than MAX_LENGTH with the sample, one that fails with an empty or a very long value of any
    variable (so a text that works only on the sample is refused here, not when a case is closed), one that
    does not shorten a variable people write (a reply, a reason), and one that leaves out a variable the message
    exists to carry (`required`: the receipt's query code).
    """
    kind = KINDS[key]
    if not source.strip():
        raise TemplateProblem(_l("The text cannot be empty."))
    check_source(source, kind.sample)
    rendered = _rendered(source, kind.sample, lambda error: _l("The text cannot be used: %(error)s", error=error))
    if sms_length(rendered) > MAX_LENGTH:
        raise TemplateProblem(_l("With the sample values the message has %(n)d characters; %(max)d at most.",
                                 n=sms_length(rendered), max=MAX_LENGTH))
    missing = [name for name in kind.required if str(kind.sample[name]) not in rendered]
    if missing:
        raise TemplateProblem(_l("The text must show %(names)s: without it the citizen cannot use the message.",
                                 names=", ".join("{{ %s }}" % name for name in missing)))
    for name, value in sorted(kind.sample.items()):
        empty, *long = (0, -1, 10**6) if isinstance(value, int) else ("", LONG_VALUE, LONG_WIDE_VALUE)
        _rendered(source, {**kind.sample, name: empty}, lambda error: _l(
            "With an empty “%(name)s” the text cannot be used: %(error)s", name=name, error=error))
        for extreme in long:
            text = _rendered(source, {**kind.sample, name: extreme}, lambda error: _l(
                "With a long “%(name)s” the text cannot be used: %(error)s", name=name, error=error))
            if name in kind.free_text and sms_length(text) > MAX_LENGTH:
                raise TemplateProblem(_l("“%(name)s” can be long: shorten it with a filter, e.g. "
                                         "{{ %(name)s|clip(40) }}.", name=name))
    return rendered


def _rendered(source: str, values: dict, say) -> str:
    """The rendering, or TemplateProblem(say(what went wrong)): every failure is the editor's to hear, as a 422."""
    try:
        return render_text(source, values)
    except TemplateProblem:
        raise
    except Exception as error:  # noqa: BLE001 - OverflowError, TypeError, ZeroDivisionError, MemoryError ...
        raise TemplateProblem(say(f"{type(error).__name__}: {error}"[:200])) from None
