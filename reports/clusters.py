"""高频诉求: the month's largest 一类事 (tickets/clusters.py) at the report's scope, with 环比 and what was done.

A cluster is listed when at least CLUSTER_MIN_CASES of its cases were filed in the month (every case counts, merged
ones too, as in the console's list; the office's own 主动治理 tasks do not), the largest first, at most TOP_CLUSTERS;
`previous` is the same cluster's count in the month before (环比), and `governance` its latest 主动治理 task as it
stood when the report was made (its status, department and answer). Kept with the figures, so a published report
shows them as they were.
"""
from __future__ import annotations

from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app

from tickets.clusters import latest_tasks, title
from tickets.models import Channel, Office, Ticket

from .metrics import Month, Scope, owner_at

TOP_CLUSTERS = 10
ANSWER_CLIP = 200  # characters of a task's answer the report keeps


def frequent_clusters(session, month: Month, tz: ZoneInfo, scope: Scope) -> dict:
    """{"min_cases", "total" (clusters that reached it), "items": [{"cluster_id", "title", "service_item",
    "office_code", "office_name", "count", "previous", "mom", "governance"}]}."""
    minimum = int(current_app.config["CLUSTER_MIN_CASES"])
    start, end = month.bounds(tz)
    previous_start, _previous_end = month.shift(-1).bounds(tz)
    # The cases of each month that the scope's windows owned at that month's end (`Scope.owned(at=...)`, as every
    # figure of the report): a case referred up or assigned down later stays where it was counted.
    kinds = (Ticket.cluster_id.is_not(None), Ticket.channel != Channel.proactive.value)
    counted = (*kinds, scope.owned(at=end))
    count = sa.func.count()
    grouped = (sa.select(Ticket.cluster_id, count.label("n"))
               .where(*counted, Ticket.created_at >= start, Ticket.created_at < end)
               .group_by(Ticket.cluster_id).having(count >= minimum)).subquery()
    # one pass over the month's cases: the largest clusters, and (a window function before the limit) how many reached it
    found = session.execute(sa.select(grouped, sa.func.count().over().label("total"))
                            .order_by(grouped.c.n.desc(), grouped.c.cluster_id).limit(TOP_CLUSTERS)).all()
    if not found:
        return {"min_cases": minimum, "total": 0, "items": []}
    total, rows = found[0].total, [(row.cluster_id, row.n) for row in found]
    ids = [cluster_id for cluster_id, _n in rows]
    mine = (*counted, Ticket.cluster_id.in_(ids))
    before = dict(session.execute(
        sa.select(Ticket.cluster_id, sa.func.count())
        .where(*kinds, scope.owned(at=start), Ticket.cluster_id.in_(ids), Ticket.created_at >= previous_start,
               Ticket.created_at < start).group_by(Ticket.cluster_id)).all())
    first_ids = sa.select(sa.func.min(Ticket.id)).where(*mine).group_by(Ticket.cluster_id)
    firsts = {t.cluster_id: t for t in session.scalars(sa.select(Ticket).where(Ticket.id.in_(first_ids)))}
    owners = dict(session.execute(sa.select(Ticket.id, owner_at(end)).where(Ticket.id.in_(first_ids))).all())
    names = {i: (code, name) for i, code, name in session.execute(
        sa.select(Office.id, Office.code, Office.name).where(Office.id.in_(set(owners.values()))))}
    tasks = _tasks(session, ids, scope)
    items = []
    for cluster_id, n in rows:
        first = firsts[cluster_id]
        previous = before.get(cluster_id, 0)
        code, name = names.get(owners.get(first.id), (None, None))
        items.append({"cluster_id": cluster_id, "title": title(first), "service_item": first.service_item,
                      "office_code": code, "office_name": name, "count": n, "previous": previous,
                      "mom": n - previous, "governance": tasks.get(cluster_id)})
    return {"min_cases": minimum, "total": total, "items": items}


def _tasks(session, cluster_ids: list[int], scope: Scope) -> dict[int, dict]:
    """{cluster id: its latest 主动治理 task in the scope}: what was done about it."""
    # (`scope.owned()` leaves the office's own tasks out of every figure; only their ownership is asked here.)
    return {cluster_id: {
        "tracking_no": t.tracking_no, "status": t.status, "department": found["department_name"],
        "opened_at": t.created_at.isoformat(), "closed_at": t.closed_at.isoformat() if t.closed_at else None,
        "answer": _clip(t.public_reply) if t.status == "closed" else None,
        "linked": found["linked"], "notified": found["notified"],
    } for cluster_id, found in latest_tasks(session, cluster_ids, scope.owned(Ticket.office_id)).items()
        for t in (found["task"],)}


def _clip(text: str | None) -> str | None:
    if not text:
        return None
    flat = " ".join(text.split())
    return flat if len(flat) <= ANSWER_CLIP else flat[:ANSWER_CLIP - 1] + "…"
