"""Bulk actions on a list's selection (the console's queues, `POST /api/v1/staff/tickets/bulk/<action>`): each case goes
through `workflow.perform` with its own version, in its own transaction, and gets its own result line (done, or
refused and why). One refused case never undoes or blocks the others: there is no all-or-nothing.

Unlike an operation, `run` commits: once per case, which is what makes each result final when it is reported.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from . import workflow
from .access import visible_tickets
from .errors import BanjieError, NotFound, ValidationFailed
from .labels import STATUS_LABELS, label
from .models import Ticket
from .validation import Collector, integer, storable

log = logging.getLogger(__name__)

# The actions a selection may take at once: the ones a clerk repeats over a queue. An answer to a citizen (reply,
# resolve, approve) is written case by case.
ACTIONS = ("accept", "accept_and_transfer", "transfer", "remind", "assign")
MAX_ITEMS = 100
TRACKING_NO_MAX = 24


@dataclass(frozen=True)
class Item:
    tracking_no: str
    version: int | None


def parse_items(value) -> list[Item]:
    """The selection: a list of tracking numbers, or of {"tracking_no", "version"?} (the version each case was seen
    at: a case changed since gets `conflict`). At most MAX_ITEMS; else a 422 on `tickets`."""
    check = Collector()
    if not isinstance(value, list) or not value:
        raise ValidationFailed(fields={"tickets": _l("Give a list of tracking numbers.")})
    if len(value) > MAX_ITEMS:
        raise ValidationFailed(fields={"tickets": _l("At most %(n)d cases at a time.", n=MAX_ITEMS)})
    items = []
    for entry in value:
        number, version = (entry, None) if isinstance(entry, str) else (
            (entry.get("tracking_no"), entry.get("version")) if isinstance(entry, dict) else (None, None))
        # a character the database cannot compare (NUL, a lone surrogate) is no tracking number either
        if not isinstance(number, str) or not number.strip() or len(number) > TRACKING_NO_MAX or not storable(number):
            raise ValidationFailed(fields={"tickets": _l("Each entry is a tracking number, or an object with "
                                                         "\"tracking_no\" and, if you like, \"version\".")})
        version = check.field("tickets", integer, version, required=False, minimum=1)
        check.raise_if_errors()
        items.append(Item(number.strip().upper(), version))
    return items


def check_action(action: str) -> None:
    if action not in ACTIONS:
        raise NotFound(_l("Only these actions are taken in bulk: %(names)s.", names=", ".join(ACTIONS)))


def _refused(number: str, error: BanjieError) -> dict:
    body = {"code": error.code, "message": str(error.message)}
    if error.fields:
        body["fields"] = {name: str(message) for name, message in error.fields.items()}
    return {"tracking_no": number, "ok": False, "error": body}


def run(session, actor, action: str, items: list[Item], payload: dict) -> list[dict]:
    """Take `action` with `payload` on each case of `items`, in order; one result per tracking number."""
    check_action(action)
    results, seen = [], set()
    for item in items:
        if item.tracking_no in seen:
            results.append(_refused(item.tracking_no, ValidationFailed(_l("This case is already in the selection."))))
            continue
        seen.add(item.tracking_no)
        ticket = session.scalar(visible_tickets(actor).where(Ticket.tracking_no == item.tracking_no))
        try:
            if ticket is None:
                raise NotFound()
            workflow.perform(session, ticket, actor, action, dict(payload), expected_version=item.version)
            session.commit()
        except BanjieError as error:
            session.rollback()
            results.append(_refused(item.tracking_no, error))
            continue
        except Exception:  # a fault with one case must not hide what became of the others
            session.rollback()
            log.exception("bulk %s failed on one case", action)
            results.append({"tracking_no": item.tracking_no, "ok": False,
                            "error": {"code": "internal_error",
                                      "message": str(_l("Something went wrong with this case; nothing was changed."))}})
            continue
        results.append({"tracking_no": ticket.tracking_no, "ok": True, "status": ticket.status,
                        "status_label": label(STATUS_LABELS, ticket.status), "version": ticket.version})
    return results


def summary(action: str, results: list[dict]) -> dict:
    done = sum(1 for r in results if r["ok"])
    return {"action": action, "done": done, "refused": len(results) - done, "results": results}


__all__ = ["ACTIONS", "MAX_ITEMS", "Item", "check_action", "parse_items", "run", "summary"]
