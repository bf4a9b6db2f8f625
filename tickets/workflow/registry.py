"""What each kind of event in a case's history *is*: one definition per kind, read by every room.

A `Kind` is anything the history records (a filing, a rating, a ladder step, a staff action); an `Action` is a
kind staff take through `perform`, with its rules (who, from which statuses), how its input is parsed, what it
does (its handler), and how the console offers it (button, form inputs, confirmation). The flags are what the
other rooms read instead of keeping their own lists of action names:

- `closes_case`: the case ends with an answer the citizen sees (the report counts it closed; the citizen is texted);
- `starts_survey`: closing opens a satisfaction survey round (the SMS room sends it);
- `answers_bad_rating`: it closes a case a 差评 reopened (the report's 差评 figures);
- `moves_deadlines`: it may start, end or move a deadline (the escalation room re-plans the case's ladder);
- `raises_supervision`: it raises the case's supervision level (the report's supervision figures);
- `lifts_rectification`: it may end a rectification without a new answer (an upheld appeal): when its event's
  `to_status` is closed, the case a 差评 reopened is closed again (the report's closure and 差评整改 figures);
- `rates_survey`: it rates the open survey round (the citizen's `rate`, or `record_rating`, an answer the office
  took by phone): a 差评 reopens the case (the report's closure figures), the supervisor is texted;
- `listed_with_escalations`: the monthly report's list of escalations shows it beside the ladder's steps (批示);
- `public`: it may appear on the citizen's page, with `public_note` saying what the citizen reads of it.

Adding an action is one `@action(...)` definition in `actions.py` (its handler below it) and its tests; a
family of actions with rules of their own may have a module beside it (`merging.py`: 并单).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


from ..models import Role, Status

INPUT_KINDS = ("text", "department", "departments", "days", "yesno", "date", "office", "datetime", "choice", "files",
               "user", "knowledge", "case")


QUICK = "quick_"  # prefix of a submit button's name that chooses a department and sends the form at once


@dataclass(frozen=True)
class Input:
    """One field of an action's console form; its name is the key of the JSON payload the API takes."""

    name: str
    label: object
    kind: str = "text"   # one of INPUT_KINDS (office: the code of an office below the owning one; datetime: local
                         # date and time, now unless changed; choice: one of `options`; case: another case's tracking
                         # number (并单); user: a member of staff who may work the case, offered to those who
                         # may assign others; knowledge: the id of the 知识库 entry the answer started from, a
                         # hidden input the case page's suggestions set)
    required: bool = True
    hint: object = ""
    options: tuple = ()  # ((value, label), ...): a choice's; for yesno when the default approve/refuse does not fit

    def read(self, form, files=None):
        """This field's payload value from a posted form and its files (the workflow validates it)."""
        if self.kind == "files":
            from ..attachments import PART, from_request

            return from_request(files.getlist(PART)) if files is not None else []
        if self.kind == "departments":
            return [int(v) if v.isascii() and v.isdigit() else v for v in form.getlist(self.name) if v]
        if self.kind == "user":
            value = form.get(self.name, "")
            return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else (value or None)
        if self.kind == "yesno":
            return {"yes": True, "no": False}.get(form.get(self.name, ""))
        value = form.get(QUICK + self.name, "") if self.kind == "department" else ""
        value = value or form.get(self.name, "")  # a quick-choice button (the console's 常用部门) wins over the list
        return value if value.strip() else None


def text(name: str, label, required: bool = True, hint="") -> Input:
    return Input(name, label, "text", required, hint)


@dataclass(frozen=True, kw_only=True)
class Kind:
    """A kind of event in a case's history."""

    name: str
    label: object                                   # its line in the history
    public: bool = False                            # may be shown to the citizen
    public_note: Callable | None = None             # (event) -> what the citizen reads; None: the event's own
    closes_case: bool = False
    starts_survey: bool = False
    answers_bad_rating: bool = False
    moves_deadlines: bool = False
    raises_supervision: bool = False                # 催办/督办: the report counts it as supervision
    lifts_rectification: bool = False               # may close a reopened case again with its earlier answer
    rates_survey: bool = False                      # a rating of the open survey round (a 差评 reopens the case)
    listed_with_escalations: bool = False           # in the monthly report's escalation list, without counting as one


@dataclass(frozen=True, kw_only=True)
class Action(Kind):
    """A staff action: a kind with its rules, its parser and handler, and its console form."""

    roles: frozenset[Role]
    statuses: frozenset[Status]
    parse: Callable                                 # (session, ticket, payload) -> clean data, or ValidationFailed
    handle: Callable                                # (session, ticket, actor, data, now) -> Event
    precondition: Callable | None = None            # (session, ticket, now) -> None, or why the state forbids it
    actor_precondition: Callable | None = None      # (session, ticket, actor) -> None, or why it is not this actor's
                                                    # to take now (a case someone else already works: 我来办)
    lead_department_only: bool = False              # a department handler must lead the ticket
    office_without_department: bool = False         # the office acts for a case it resolved itself
    reaches_below: bool = False                     # 上级督办: offices above the owning one may take it too
    changes_state: bool = True                      # claims the row and bumps `version`
    button: object = ""                             # the console's button and form title
    inputs: tuple[Input, ...] = ()
    confirm: object = None                          # asked before an action that ends the case or cannot be undone
    danger: bool = False                            # a refusal or a step back: the button is drawn as one

    def payload_from_form(self, form, files=None) -> dict:
        return {field.name: field.read(form, files) for field in self.inputs}

    @property
    def takes_files(self) -> bool:
        return any(field.kind == "files" for field in self.inputs)


KINDS: dict[str, Kind] = {}
ACTIONS: dict[str, Action] = {}


def event_kind(name: str, label, **flags) -> Kind:
    """Declare a kind of event that is not a staff action (a filing, a rating, a ladder step)."""
    if name in KINDS:
        raise ValueError(f"event kind {name!r} is defined twice")
    kind = KINDS[name] = Kind(name=name, label=label, **flags)
    return kind


def action(name: str, *, roles, statuses, **definition):
    """Declare a staff action; decorates its handler."""
    def register(handle):
        if name in KINDS:
            raise ValueError(f"action {name!r} is defined twice")
        defined = Action(name=name, roles=frozenset(Role(r) for r in roles),
                         statuses=frozenset(Status(s) for s in statuses), handle=handle, **definition)
        KINDS[name] = ACTIONS[name] = defined
        return handle
    return register


def names(**flags) -> tuple[str, ...]:
    """The kinds whose flags have these values, e.g. names(closes_case=True), for SQL `IN (...)` and dispatch."""
    return tuple(k.name for k in KINDS.values() if all(getattr(k, f) == v for f, v in flags.items()))


def label_of(name: str) -> str:
    kind = KINDS.get(name)
    return str(kind.label) if kind is not None else str(name)


def public_note(event) -> str | None:
    """What the citizen reads of a public event."""
    kind = KINDS.get(event.action)
    if kind is not None and kind.public_note is not None:
        return kind.public_note(event)
    return event.public_note


__all__ = ["ACTIONS", "INPUT_KINDS", "KINDS", "Action", "Input", "Kind", "action", "event_kind", "label_of", "names",
           "public_note", "text"]
