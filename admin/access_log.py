"""管理 → 访问日志: the administrators' search of the personal-data access log (tickets/privacy/access.py).

Who saw or exported whose whole number, when, on which case and why; filtered by user, case, kind and local date
range, newest first, a page at a time. The log holds no numbers or names; nor does this page. Administrators only:
the log spans every window, its lines name staff of all of them, and it is how the administrators answer for the
data's protection (the role sets' ADMIN_ROLES; leaders see their own windows' cases, not who looked at them).
"""
from __future__ import annotations

import sqlalchemy as sa
from flask import request
from flask_admin import BaseView, expose
from flask_babel import lazy_gettext as _l

from tickets import clock
from tickets.db import db
from tickets.labels import label
from tickets.models import ADMIN_ROLES, AccessKind, User
from tickets.privacy import access as privacy

from .base import RoleGuard, refuse_url_parameters
from .management import CATEGORY

PAGE_SIZE = 50
MAX_PAGE = 10_000
KIND_LABELS = {
    AccessKind.view_phone.value: _l("Whole number shown"),
    AccessKind.view_name.value: _l("Whole name shown"),
    AccessKind.export.value: _l("Export with whole numbers"),
    AccessKind.citizen_export.value: _l("Citizen downloaded their data"),
    AccessKind.anonymise.value: _l("Anonymised"),
    AccessKind.rotate_key.value: _l("Re-encrypted under a new key"),
}
VIA_LABELS = {"console": _l("console"), "api": _l("API")}
# Who, for a line without a member of staff (`AccessLog.actor`)
ACTOR_LABELS = {"cli": _l("command line"), "scheduler": _l("scheduled job"), "citizen": _l("the citizen")}


def _page() -> int:
    raw = request.args.get("page", "")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) <= 5 and 0 < int(raw) <= MAX_PAGE else 1


def describe(line) -> str:
    """What a line's `detail` says, in words: how it was shown (and as the handler), what an export covered."""
    detail = line.detail or {}
    parts = []
    if detail.get("via"):
        parts.append(str(label(VIA_LABELS, detail["via"])))
    if detail.get("handler"):
        parts.append(str(_l("as the case's handler")))
    if detail.get("what"):
        parts.append(str(detail["what"]))
    filters = detail.get("filters")
    if isinstance(filters, dict) and filters:
        parts.append(", ".join(f"{key}={value}" for key, value in sorted(filters.items())))
    parts.extend(_run(detail))
    return " · ".join(parts)


def _run(detail: dict) -> list[str]:
    """What a line of anonymisation or key rotation says: which cases or key, why, and whether the run began, ended
    or was stopped before the end (tickets/privacy/access.py `record_run_start`; the counts are in `count`)."""
    parts = []
    before = detail.get("closed_before")
    if isinstance(before, str):
        # the command's local date as given, or the scheduler's cut-off instant (RETENTION_DAYS before it ran) read
        # in local time to the minute: its date alone would be a day early for most of the day
        parts.append(str(_l("cases ended before %(date)s", date=before if len(before) == 10 else clock.iso_text(before))))
    if isinstance(detail.get("retention_days"), int):
        parts.append(str(_l("kept %(days)d days", days=detail["retention_days"])))
    if detail.get("request"):
        parts.append(str(_l("at the citizen's request")))
    if detail.get("by_citizen"):  # sent by the citizen from the case page or the API
        parts.append(str(_l("requested by the citizen online")))
    if isinstance(detail.get("requested_at"), str):  # a request recorded earlier, carried out by the scheduler
        parts.append(str(_l("request recorded %(date)s", date=clock.iso_text(detail["requested_at"]))))
    if isinstance(detail.get("key_id"), str):
        parts.append(str(_l("key %(key)s", key=detail["key_id"])))
    if detail.get("reindex"):
        parts.append(str(_l("indexes recomputed")))
    if detail.get("started"):
        eligible = detail.get("eligible")
        parts.append(str(_l("run began, at most %(cases)d cases", cases=eligible) if isinstance(eligible, int)
                         else _l("run began")))
    elif detail.get("finished") is True:
        parts.append(str(_l("finished")))
    elif detail.get("finished") is False:
        parts.append(str(_l("stopped before the end; run it again for the rest")))
    return parts


class AccessLogView(RoleGuard, BaseView):
    """/admin/access-log: the search form and one page of lines."""

    roles = ADMIN_ROLES

    @expose("/")
    def index(self):
        refuse_url_parameters(request.args)  # the pager hands them back to url_for
        search, errors = privacy.parse_search(request.args)
        page = _page()
        rows = db.session.execute(privacy.search(search).limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).all()
        users = db.session.execute(sa.select(User.id, User.username, User.display_name).order_by(User.username)).all()
        args = {key: value for key, value in request.args.items() if key != "page"}
        return self.render("admin/privacy/access_log.html", rows=rows[:PAGE_SIZE], more=len(rows) > PAGE_SIZE,
                           page=page, args=args, search=search, errors=errors, users=users,
                           kinds=[(kind.value, label(KIND_LABELS, kind.value)) for kind in AccessKind],
                           kind_label=lambda value: label(KIND_LABELS, value), describe=describe,
                           actor_label=lambda value: label(ACTOR_LABELS, value) if value else "—",
                           local_text=clock.local_text)


def register(admin) -> None:
    admin.add_view(AccessLogView(name=_l("Access log"), endpoint="access_log", url="/admin/access-log",
                                 category=CATEGORY))
