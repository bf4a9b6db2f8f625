"""The text messages Banjie sends: one key each, who gets it, the variables it may use, and a sample.

The default wording is a Jinja file in templates/notify/sms/<key>.txt; an administrator's edit (an
`SmsTemplate` row) replaces it. Templates render in a sandbox, so an edited text can read the variables
it is given and nothing else.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

DEFAULTS_DIR = Path(__file__).resolve().parent.parent / "templates" / "notify" / "sms"

# A Chinese text message is 70 characters; longer ones travel as 67-character parts. Three parts at most.
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


_TICKET = {"tracking_no": "BJ20261123-0001"}

KINDS: dict[str, MessageKind] = {k.key: k for k in (
    MessageKind("receipt", _l("Filing receipt"), "citizen", {**_TICKET, "query_code": "K7P2M9QX"}),
    MessageKind("rejected", _l("Case not accepted"), "citizen",
                {**_TICKET, "reason": "您反映的事项属于涉法涉诉信访，依法应通过上诉、申请再审等司法途径解决。"}),
    MessageKind("transferred", _l("Case transferred"), "citizen",
                {**_TICKET, "department": "人力资源和社会保障局", "due": "2026-11-30"}),
    MessageKind("extended", _l("Handling deadline extended"), "citizen",
                {**_TICKET, "department": "人力资源和社会保障局", "due": "2026-12-07"}),
    MessageKind("closed", _l("Reply and closure"), "citizen",
                {**_TICKET, "reply": "已联系申请人补正材料，养老保险关系转移已于今日办结，请留意到账短信。"}),
    MessageKind("survey", _l("Satisfaction survey"), "citizen", {**_TICKET, "days": 3}, survey=True),
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
    MessageKind("office_reminder", _l("Office deadline reminder"), "office",
                {**_TICKET, "deadline": "受理", "due": "2026-11-24 23:59"}),
    MessageKind("report_ready", _l("Monthly report ready"), "leader", {"month": "2026年10月", "closure_rate": "95.8%"}),
)}


def segments(text: str) -> int:
    """How many SMS parts a Chinese (UCS-2) text needs."""
    return 1 if len(text) <= SINGLE_SEGMENT else math.ceil(len(text) / SEGMENT)


def _clip(value, length: int = 40) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= length else text[: length - 1] + "…"


_environment = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=False)
_environment.filters["clip"] = _clip


@functools.lru_cache(maxsize=None)
def default_text(key: str) -> str:
    return (DEFAULTS_DIR / f"{key}.txt").read_text(encoding="utf-8").strip()


def signature() -> str:
    return f"【{current_app.config['OFFICE_NAME']}】"


@functools.lru_cache(maxsize=256)
def _compiled(source: str):
    return _environment.from_string(source)


def render_text(source: str, context: dict) -> str:
    """The message body: the office's signature and the rendered text on one line each squeezed to single spaces."""
    body = _compiled(source).render(**context)
    return signature() + " ".join(body.split())


class TemplateProblem(ValueError):
    pass


def check_text(key: str, source: str) -> str:
    """The sample rendering of an edited text, or TemplateProblem with a message for the editor."""
    if not source.strip():
        raise TemplateProblem(_l("The text cannot be empty."))
    try:
        rendered = render_text(source, KINDS[key].sample)
    except TemplateError as error:
        raise TemplateProblem(_l("The text cannot be used: %(error)s", error=str(error))) from error
    if len(rendered) > MAX_LENGTH:
        raise TemplateProblem(_l("With the sample values the message has %(n)d characters; %(max)d at most.",
                                 n=len(rendered), max=MAX_LENGTH))
    return rendered
