"""Closing the satisfaction surveys: every round left unanswered when it closed is settled once, in batches.

At an office that defaults (`Office.default_unanswered`, the case's owning office; on by default, as the
provincial 好差评 rules have it) the round is recorded as 基本满意 (3), `defaulted`
(`tickets.workflow.default_rating`); elsewhere it stays unrated, and is only marked settled (`swept_at`).

Like the escalation sweeper: a claim marks up to a batch of due rounds settled in the transaction that acts on
them, and each batch commits, until nothing is due. On PostgreSQL the claim locks the rounds it takes
(`FOR UPDATE SKIP LOCKED`), so two sweeps at once split the work; on SQLite the claiming UPDATE takes the
database's write lock and a second sweep finds the rounds settled. The claim only takes rounds nobody rated
and nobody settled (and a rating only takes an open round that nobody rated: `tickets.workflow.survey._take`),
so each round is settled exactly once, by one sweep, and never after a citizen's answer. A sweep that runs late
tells the truth: the rating and its event carry the round's closing time; the event's data says when the sweep
ran. A round whose default fails is left unsettled for the next sweep and the rest of its batch goes on.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from tickets import clock, workflow
from tickets.db import in_batches
from tickets.models import Office, Survey, Ticket

log = logging.getLogger(__name__)

BATCH_SIZE = 500
DUE = sa.and_(Survey.rated_at.is_(None), Survey.swept_at.is_(None))  # ix_survey_unsettled's condition


@dataclass
class CloseResult:
    defaulted: int = 0
    left_unrated: int = 0       # the owning office does not default
    failed: list = field(default_factory=list)  # survey ids whose default raised (left for the next sweep)
    batches: int = 0
    seconds: float = 0.0

    @property
    def settled(self) -> int:
        return self.defaulted + self.left_unrated

    def summary(self) -> str:
        text = (f"{self.settled} closed survey(s) settled: {self.defaulted} recorded as 基本满意 by default, "
                f"{self.left_unrated} left unrated (the office does not default)")
        if self.failed:
            text += f"; {len(self.failed)} failed and left for the next sweep (ids {', '.join(map(str, self.failed))})"
        return text + f"; {self.batches} batch(es) in {self.seconds * 1000:.0f} ms"


def due_count(session, now: datetime) -> int:
    """How many closed rounds wait to be settled (what a sweep now would take)."""
    return session.scalar(sa.select(sa.func.count()).select_from(Survey).where(DUE, Survey.closes_at <= now))


def claim(session, now: datetime, limit: int, skip=()) -> list[int]:
    """Mark up to `limit` closed, unanswered, unsettled rounds settled (`swept_at`) in this transaction and return
    their ids, earliest closing first; `skip`: ids not to take (those that failed in this sweep)."""
    due = sa.select(Survey.id).where(DUE, Survey.closes_at <= now)
    if skip:
        due = due.where(Survey.id.not_in(skip))
    due = due.order_by(Survey.closes_at, Survey.id).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        # Lock, then update the locked ids: inside `UPDATE ... IN (subquery)` PostgreSQL may rescan a SKIP LOCKED
        # subquery and take more than `limit` rows (escalation/sweeper.py). A round a citizen is rating this
        # instant is locked by that rating's UPDATE: skipped, and found rated by the next sweep.
        ids = list(session.scalars(due.with_for_update(skip_locked=True)))
        if not ids:
            return []
        chosen = ids
    else:
        # One statement: it takes SQLite's write lock before reading, so a second sweep waits, then finds these
        # rounds settled.
        chosen = due.scalar_subquery()
    return list(session.scalars(
        sa.update(Survey).where(Survey.id.in_(chosen), DUE).values(swept_at=now)
        .returning(Survey.id).execution_options(synchronize_session=False)))


def settle(session, survey_ids: list[int], now: datetime, result: CloseResult) -> None:
    """Default each claimed round of an office that defaults; the others stay unrated (already marked settled).

    Each default runs in a savepoint: one that fails is rolled back, unmarked (left for the next sweep) and
    logged, and the batch goes on."""
    rows = session.execute(
        sa.select(Survey, Ticket, Office.default_unanswered)
        .join(Ticket, Ticket.id == Survey.ticket_id).join(Office, Office.id == Ticket.office_id)
        .where(Survey.id.in_(survey_ids)).order_by(Survey.closes_at, Survey.id)
        .execution_options(populate_existing=True)).all()
    for survey, ticket, defaults in rows:
        if not defaults:
            result.left_unrated += 1
            continue
        try:
            with session.begin_nested():
                workflow.default_rating(session, survey, ticket, now)
        except Exception:  # noqa: BLE001 - one round must not stop the batch; the next sweep tries it again
            log.exception("closing survey %s: the default rating failed; left for the next sweep", survey.id)
            session.expire(survey)
            session.execute(sa.update(Survey).where(Survey.id == survey.id).values(swept_at=None)
                            .execution_options(synchronize_session=False))
            result.failed.append(survey.id)
            continue
        result.defaulted += 1


def close_surveys(session, now: datetime, *, batch_size: int | None = None, progress=lambda done: None) -> CloseResult:
    """Settle every round closed by `now`, one committed batch at a time (`progress(n)` after each batch)."""
    batch_size = batch_size or BATCH_SIZE
    result, started = CloseResult(), time.perf_counter()
    result.batches = in_batches(session, lambda: claim(session, now, batch_size, skip=result.failed),
                                lambda ids: settle(session, ids, now, result), after=lambda ids: progress(len(ids)))
    result.seconds = time.perf_counter() - started
    if result.batches:
        log.info("survey closing: %s", result.summary())
    return result


def close_on_time(session, until: datetime) -> CloseResult:
    """For a replayed past (the demo): settle every round closed by `until`, each at its own closing time, as a
    sweep running on time would have. Never commits."""
    result = CloseResult()
    while True:
        first = session.scalar(sa.select(sa.func.min(Survey.closes_at)).where(DUE, Survey.closes_at <= until))
        if first is None:
            return result
        ids = claim(session, first, limit=100_000)
        if not ids:  # another sweep holds them (PostgreSQL's SKIP LOCKED): it settles them, not us
            return result
        with clock.at(first):  # anything it writes is dated then too
            settle(session, ids, first, result)
        session.flush()
