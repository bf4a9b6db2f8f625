"""Human labels for the codes of the contract. Translated through the message catalogs (zh_CN first)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

STATUS_LABELS = {
    "submitted": _l("Awaiting acceptance"),
    "accepted": _l("Accepted"),
    "rejected": _l("Not accepted"),
    "transferred": _l("In progress"),
    "returned": _l("Returned"),
    "replied": _l("Awaiting review"),
    "closed": _l("Closed"),
    "rectifying": _l("Being rectified"),
    "withdrawn": _l("Withdrawn"),
    "merged": _l("Merged"),
}

PROBLEM_TYPE_LABELS = {
    "cannot_handle": _l("Could not get it done"),
    "too_slow": _l("Too slow"),
    "too_hard": _l("Too difficult"),
    "other": _l("Other"),
}

SCORE_LABELS = {
    1: _l("Very satisfied"),
    2: _l("Satisfied"),
    3: _l("Basically satisfied"),
    4: _l("Dissatisfied"),
    5: _l("Very dissatisfied"),
}

ROLE_LABELS = {
    "admin": _l("Administrator"),
    "office": _l("Office staff"),
    "department": _l("Department handler"),
    "supervisor": _l("Supervisor"),
    "leader": _l("Leader"),
}

# A case's supervision level (ticket.supervision_level; the 督办 ladder's `level`): 1 催办, 2 督办, 3 挂牌督办.
SUPERVISION_LABELS = {0: "", 1: _l("Reminded"), 2: _l("Supervised"), 3: _l("Listed for supervision")}
# How a case reached the office (ticket.channel; models.Channel).
CHANNEL_LABELS = {
    "web": _l("Online"),
    "api": _l("Online (app or portal)"),
    "window": _l("Walk-in at the window"),
    "phone": _l("Phone call"),
    "hotline": _l("12345 hotline"),
    "proactive": _l("Proactive task (主动治理)"),
}

# What an API token may do (ApiToken.scope, tickets/access.py); a token without a scope may do all its account may.
TOKEN_SCOPE_LABELS = {
    "file": _l("File cases only"),
    "read": _l("Read only"),
    "act": _l("Staff actions only"),
}
ALL_SCOPES_LABEL = _l("Everything the account may do")

# How a survey round was rated (Survey.channel): the citizen on the web or by SMS, the office by phone
# (`record_rating`), or by default when the survey closed unanswered.
RATING_CHANNEL_LABELS = {
    "sms": _l("SMS"),
    "web": _l("Web"),
    "phone": _l("By phone (recorded by the office)"),
    "default": _l("Default (unanswered)"),
}

DEADLINE_LABELS = {
    "accept": _l("Acceptance"),
    "handle": _l("Handling"),
    "return": _l("Return window"),
    "review": _l("Review"),
    "rectify": _l("Rectification"),
    "contact": _l("First contact"),
}

# 申诉复核: where a department's appeal of a 差评 stands (Appeal.outcome).
APPEAL_OUTCOME_LABELS = {
    "pending": _l("Awaiting decision"),
    "upheld": _l("Upheld"),
    "rejected": _l("Rejected"),
}


def label(mapping, code) -> str:
    value = mapping.get(code)
    return str(value) if value is not None else str(code)


def scope_text(scope: str | None) -> str:
    """What an API token may do, in words (its scope, or none: all its account may)."""
    return label(TOKEN_SCOPE_LABELS, scope) if scope else str(ALL_SCOPES_LABEL)


def supervision_text(level: int) -> str:
    """A supervision level in words; "" for none."""
    return label(SUPERVISION_LABELS, level)
