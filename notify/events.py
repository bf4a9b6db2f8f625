"""Which case events make which webhook events, what their payload says, and the reaction that writes a delivery for
each subscription that wants one, in the transaction of the event (an outbox: `notify.deliveries` sends it after the
commit).

An event of the workflow may make several webhook events: an approval is `status_changed` and `closed`. They are read
from the kind's flags (`tickets.workflow.registry`), never from lists of action names kept here:

| webhook event | case events |
|---|---|
| created | the filing (`file`) |
| status_changed | any event whose status differs from the one before it |
| replied | the department's reply (`reply`) |
| closed | `closes_case` kinds, and a `lifts_rectification` kind that closed the case again |
| rated | `rates_survey` kinds (the citizen's rating, one taken by phone) and the default rating |
| escalated | `raises_supervision` kinds (the ladder's `escalate`, a 催办 `remind`) |

Payloads carry no personal data: no name, number, query code, description or internal note; an event's note only
when the citizen may read it too, and then with any phone or ID number in it masked. Which subscriptions want what is read once per WEBHOOK_CACHE_SECONDS per process
(filing is the hot path and must not read it each time): a change made in this process counts at once (after its
commit), one made in another within that time.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale

from tickets import clock, offices
from tickets.db import new_row
from tickets.labels import STATUS_LABELS, label
from tickets.models import Department, Office, Status
from tickets.personal import mask_text
from tickets.workflow import KINDS, public_note
from tickets.workflow.survey import RATE_DEFAULT

from .operations import in_history
from .subscriptions import TARGETS, WebhookDelivery, WebhookSubscription, dumps

log = logging.getLogger("banjie.webhooks")


def event_types_of(event) -> tuple[str, ...]:
    """The webhook events one case event makes (none for most: a note, an assignment)."""
    kind = KINDS[event.action]
    types = []
    if event.action == "file":
        types.append("created")
    if event.from_status is not None and event.from_status != event.to_status:
        types.append("status_changed")
    if event.action == "reply":
        types.append("replied")
    if kind.closes_case or (kind.lifts_rectification and event.to_status == Status.closed.value
                            and event.from_status != Status.closed.value):
        types.append("closed")
    if kind.rates_survey or event.action == RATE_DEFAULT:
        types.append("rated")
    if kind.raises_supervision:
        types.append("escalated")
    return tuple(types)


# --- who wants what (read once per WEBHOOK_CACHE_SECONDS) ---------------------------------------------------------

@dataclass(frozen=True)
class Target:
    subscription_id: int
    event_types: frozenset
    offices: frozenset | None  # the office ids of its scope (an office and those below it); None: every office


@dataclass(frozen=True)
class Targets:
    read_at: float
    targets: tuple
    office_codes: dict
    departments: dict  # id -> (code, name)


def targets(session) -> Targets:
    app = current_app._get_current_object()
    cached = TARGETS.find(app)
    now = time.monotonic()
    if cached is not None and now - cached.read_at < app.config["WEBHOOK_CACHE_SECONDS"]:
        return cached
    rows = session.execute(sa.select(WebhookSubscription.id, WebhookSubscription.event_types,
                                     WebhookSubscription.office_id).where(WebhookSubscription.active.is_(True))
                           .order_by(WebhookSubscription.id)).all()
    found, codes, departments = [], {}, {}
    if rows:
        for subscription_id, types, office_id in rows:
            scope = frozenset(offices.subtree_ids(session, office_id)) if office_id is not None else None
            found.append(Target(subscription_id, frozenset(types or ()), scope))
        codes = dict(session.execute(sa.select(Office.id, Office.code)).all())
        departments = {i: (code, name) for i, code, name in
                       session.execute(sa.select(Department.id, Department.code, Department.name)).all()}
    return TARGETS.set(app, Targets(now, tuple(found), codes, departments))


# --- the payload ---------------------------------------------------------------------------------------------------

def ticket_view(ticket, known: Targets, session=None) -> dict:
    """What a receiver learns of the case: its state, never the citizen (no name, number, code or description).
    Office codes and departments come from the list read with the subscriptions; one made since is read here."""
    department = known.departments.get(ticket.department_id) if ticket.department_id else None
    if ticket.department_id and department is None and session is not None:
        row = session.get(Department, ticket.department_id)
        department = (row.code, row.name) if row is not None else None
    office_code = known.office_codes.get(ticket.office_id)
    if office_code is None and session is not None:
        office_code = session.scalar(sa.select(Office.code).where(Office.id == ticket.office_id))
    with force_locale("zh_CN"):
        status_label = label(STATUS_LABELS, ticket.status)
    return {
        "tracking_no": ticket.tracking_no,
        "status": ticket.status,
        "status_label": status_label,
        "problem_type": ticket.problem_type,
        "channel": ticket.channel,
        "office_code": office_code,
        "department": {"code": department[0], "name": department[1]} if department else None,
        "supervision_level": ticket.supervision_level,
        "due_at": clock.iso(ticket.due_at),
        "created_at": clock.iso(ticket.created_at),
        "closed_at": clock.iso(ticket.closed_at),
        "source": ticket.source,  # the integration that filed it (12345 …) and its own reference, if any
        "external_ref": ticket.external_ref,
    }


def event_view(event) -> dict:
    with force_locale("zh_CN"):
        view = {"kind": event.action, "label": str(KINDS[event.action].label), "from_status": event.from_status,
                "to_status": event.to_status, "at": clock.iso(event.at)}
        if event.public:  # what the citizen's page shows of it, and nothing internal
            note = public_note(event)
            if note:
                # with the numbers in it masked: what the citizen wrote (a withdrawal's reason, an addition) may
                # hold their number, and a receiver learns nothing of the citizen (`ticket_view`)
                view["note"] = mask_text(note)
    data = event.data or {}
    if isinstance(data.get("score"), int) and (KINDS[event.action].rates_survey or event.action == RATE_DEFAULT):
        view["score"] = data["score"]
    return view


# --- the reaction --------------------------------------------------------------------------------------------------

def write_deliveries(event, *, session, ticket, **_) -> None:
    """One delivery per subscription that wants each webhook event this case event makes, in its transaction.

    Nothing is read when no subscription wants it (the usual case: filing pays nothing). A filing's event already has
    its id; another's is written first so that the delivery can name it (as the SMS room's texts do)."""
    types = event_types_of(event)
    if not types:
        return
    known = targets(session)
    wanted = [(target, kind) for kind in types for target in known.targets
              if kind in target.event_types and (target.offices is None or ticket.office_id in target.offices)]
    if not wanted or in_history(session):
        return  # the demo's replayed past is never sent anywhere
    if event.id is None:
        session.flush()
    now = clock.now()
    try:
        occurred_at, ticket_part, event_part = clock.iso(event.at), ticket_view(ticket, known, session), event_view(event)
        rows = []
        for target, kind in wanted:
            key = str(uuid.uuid4())
            body = {"id": key, "type": kind, "occurred_at": occurred_at, "ticket": ticket_part, "event": event_part}
            rows.append(new_row(WebhookDelivery, uuid=key, subscription_id=target.subscription_id, event_type=kind,
                                ticket_id=ticket.id, event_id=event.id, body=dumps(body), created_at=now,
                                not_before=now))
    except Exception:  # a payload that cannot be made must not stop the action it reports
        log.exception("could not write the webhook deliveries of event %s (%s) of ticket %s", event.id, event.action,
                      ticket.id)
        return
    session.add_all(rows)


def register(reactions) -> None:
    """Every kind of event may make a webhook event (a status change is one whatever the kind)."""
    reactions.on(*KINDS, write_deliveries)
