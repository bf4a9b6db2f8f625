"""Migration 0013 (the default rating) on SQLite and PostgreSQL: a database at 0012 with surveys in every state
upgrades without rewriting the past, the sweep then defaults only what closes after it, and the way down and up
again works."""
from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from notify import closing
from tests.helpers import TZ
from tickets.db import db
from tickets.schema import downgrade_database, upgrade_database


def resolved(world) -> str:
    filed = world.file()
    world.act("office", filed["tracking_no"], "accept")
    world.act("office", filed["tracking_no"], "resolve", content="已答复。")
    return filed


def columns(app, table: str) -> set[str]:
    with app.app_context():
        return {c["name"] for c in sa.inspect(db.engine).get_columns(table)}


def surveys(app) -> dict[str, tuple]:
    with app.app_context():
        rows = db.session.execute(sa.text(
            "SELECT t.tracking_no, s.score, s.defaulted, s.swept_at IS NOT NULL, s.channel FROM survey s"
            " JOIN ticket t ON t.id = s.ticket_id")).all()
        db.session.close()
    return {no: (score, bool(defaulted), bool(swept), channel) for no, score, defaulted, swept, channel in rows}


def test_upgrading_to_0013_settles_the_past_as_it_was(world, clock):
    """The migration runs on the database's own clock (now, really): the cases are dated around it."""
    app = world.app
    upgrade_time = datetime.now(TZ).replace(microsecond=0)
    clock.now = upgrade_time - timedelta(days=10)
    closed_before = resolved(world)["tracking_no"]              # closed 3 days before the upgrade, unanswered
    rated = resolved(world)
    world.client.post(f"/api/v1/tickets/{rated['tracking_no']}/rating?code={rated['query_code']}", json={"score": 2})
    clock.now = upgrade_time - timedelta(days=1)
    open_then = resolved(world)["tracking_no"]                  # closes 6 days after the upgrade
    clock.now = upgrade_time
    try:
        with app.app_context():
            downgrade_database("0012")
            db.engine.dispose()
        assert not {"defaulted", "swept_at"} & columns(app, "survey")
        assert "default_unanswered" not in columns(app, "office") and "code" not in columns(app, "service_item")
        with app.app_context():
            upgrade_database()
            db.engine.dispose()
        before = surveys(app)
        assert before[closed_before] == (None, False, True, None)  # closed under the old rule: settled, unrated
        assert before[rated["tracking_no"]] == (2, False, False, "web")
        assert before[open_then] == (None, False, False, None)
        with app.app_context():
            assert db.session.scalar(sa.text("SELECT count(*) FROM office WHERE default_unanswered")) == 1
            db.session.close()

        clock.advance(days=7)
        with app.app_context():
            result = closing.close_surveys(db.session, clock())
        assert (result.defaulted, result.left_unrated) == (1, 0)  # only the one that closed after the upgrade
        after = surveys(app)
        assert after[open_then] == (3, True, True, "default") and after[closed_before] == before[closed_before]

        with app.app_context():
            downgrade_database("0012")
            db.engine.dispose()
        with app.app_context():  # a default rating was never the citizen's: it goes with the column that said so
            scores = dict(db.session.execute(sa.text(
                "SELECT t.tracking_no, s.score FROM survey s JOIN ticket t ON t.id = s.ticket_id")).all())
            db.session.close()
        assert scores == {closed_before: None, rated["tracking_no"]: 2, open_then: None}
    finally:
        with app.app_context():
            upgrade_database()
            db.engine.dispose()
    assert {"defaulted", "swept_at"} <= columns(app, "survey")
