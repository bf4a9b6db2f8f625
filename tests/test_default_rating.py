"""The default rating (好差评): a survey left unanswered when it closes is recorded as 基本满意 by the closing sweep.

The sweep settles only what has closed, once (twice is a no-op; two at once on PostgreSQL split the work), tells
the truth when it runs late, leaves the surveys of an office that does not default unrated, and goes on past a
survey that fails. A rating after the default is refused, by the web and by SMS.
"""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from app import create_app
from notify import closing, tasks
from notify.models import SmsMessage
from notify.survey import handle_inbound
from tests.helpers import BASE_CONFIG, local, page_csrf
from tickets import offices, workflow
from tickets.clock import set_clock
from tickets.db import db
from tickets.errors import InvalidTransition
from tickets.models import Event, Office, Survey, Ticket
from tickets.schedule import JOBS

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def resolved(world, **filing) -> dict:
    """A case the office resolved itself now (its survey opens now); the filing's answer (number and code)."""
    filed = world.file(**filing)
    world.act("office", filed["tracking_no"], "accept")
    world.act("office", filed["tracking_no"], "resolve", content="已当场答复。")
    return filed


def survey_of(world, tracking_no, round_=1) -> Survey:
    with world.app.app_context():
        return db.session.scalar(sa.select(Survey).join(Ticket, Ticket.id == Survey.ticket_id)
                                 .where(Ticket.tracking_no == tracking_no, Survey.round == round_))


def events_of(world, tracking_no, action="rate_default") -> list[Event]:
    with world.app.app_context():
        return list(db.session.scalars(sa.select(Event).join(Ticket, Ticket.id == Event.ticket_id)
                                       .where(Ticket.tracking_no == tracking_no, Event.action == action)))


def sweep(world, clock, **kwargs) -> closing.CloseResult:
    with world.app.app_context():
        return closing.close_surveys(db.session, clock(), **kwargs)


def set_default(world, code: str, value: bool) -> None:
    with world.app.app_context():
        offices.by_code(db.session, code).default_unanswered = value
        db.session.commit()


@SQLITE
def test_the_sweep_defaults_what_closed_once_and_tells_when(world, clock):
    early = resolved(world)                                     # survey: Mon 16 Nov 09:00 → Mon 23 Nov 09:00
    clock.advance(days=2)
    late = resolved(world)                                      # → Wed 25 Nov 09:00
    answered = resolved(world)
    rate = world.client.post(f"/api/v1/tickets/{answered['tracking_no']}/rating?code={answered['query_code']}",
                             json={"score": 2})
    assert rate.status_code == 200
    before = world.ticket("office", early["tracking_no"])["version"]

    clock.set(2026, 11, 23, 8, 59)                              # a minute before the first closes: nothing is due
    assert sweep(world, clock).settled == 0
    clock.set(2026, 11, 24, 15, 30)                             # a day and a half late for `early`, before `late`
    result = sweep(world, clock)
    assert (result.defaulted, result.left_unrated, result.failed) == (1, 0, [])

    survey = survey_of(world, early["tracking_no"])
    closes_at = local(2026, 11, 23, 9, 0)
    assert (survey.score, survey.defaulted, survey.channel, survey.comment) == (3, True, "default", None)
    assert survey.rated_at == closes_at and survey.swept_at == clock()  # rated when it closed, settled when swept
    (event,) = events_of(world, early["tracking_no"])
    assert (event.at, event.actor_role, event.actor_id, event.public) == (closes_at, "system", None, True)
    assert (event.from_status, event.to_status) == ("closed", "closed")
    assert event.data == {"score": 3, "round": 1, "channel": "default", "defaulted": True,
                          "swept_at": clock().isoformat()}
    # the case stays closed, no staff form turns stale, nobody is texted
    staff = world.ticket("office", early["tracking_no"])
    assert (staff["status"], staff["version"]) == ("closed", before)
    assert survey_of(world, late["tracking_no"]).score is None
    assert survey_of(world, answered["tracking_no"]).defaulted is False

    # the citizen reads it as a default, in the timeline and the rating
    public = world.client.get(f"/api/v1/tickets/{early['tracking_no']}?code={early['query_code']}").get_json()
    assert public["rating"]["defaulted"] is True and public["rating"]["score"] == 3
    assert public["rating"]["rated_at"] == "2026-11-23T09:00:00+08:00"
    step = public["timeline"][-1]
    assert (step["at"], step["label"]) == ("2026-11-23T09:00:00+08:00", "默认评价")
    assert step["note"] == "评价期内未评价，系统默认评价为：基本满意"
    browser = world.app.test_client()
    token = page_csrf(browser, "/track")
    assert browser.post("/track", data={"tracking_no": early["tracking_no"], "code": early["query_code"],
                                        "csrf_token": token}).status_code == 303
    page = browser.get(f"/track/{early['tracking_no']}").get_data(as_text=True)
    assert "评价期内未评价，系统默认评价为：<strong>基本满意</strong>" in page and "您的评价：" not in page  # not read as a rating the citizen gave
    mine = world.client.get(f"/api/v1/tickets/{answered['tracking_no']}?code={answered['query_code']}").get_json()
    assert mine["rating"]["defaulted"] is False

    # twice is a no-op; later, the other one closes and is defaulted in its turn
    assert sweep(world, clock).settled == 0 and len(events_of(world, early["tracking_no"])) == 1
    clock.set(2026, 12, 1, 9)
    assert sweep(world, clock).defaulted == 1
    assert survey_of(world, late["tracking_no"]).rated_at == local(2026, 11, 25, 9, 0)
    assert sweep(world, clock).settled == 0


@SQLITE
def test_an_office_that_does_not_default_leaves_the_survey_unrated(network, clock):
    world = network.world
    set_default(world, "c1", False)
    filed = world.file(office_code="c1")
    world.act("office_c1", filed["tracking_no"], "accept")
    world.act("office_c1", filed["tracking_no"], "resolve", content="已答复。")
    township = world.file(office_code="t11")  # below c1, but its own window decides: it defaults
    world.act("office_t11", township["tracking_no"], "accept")
    world.act("office_t11", township["tracking_no"], "resolve", content="已答复。")
    clock.advance(days=8)
    result = sweep(world, clock)
    assert (result.defaulted, result.left_unrated) == (1, 1)
    survey = survey_of(world, filed["tracking_no"])
    assert (survey.score, survey.rated_at, survey.defaulted, survey.swept_at) == (None, None, False, clock())
    assert events_of(world, filed["tracking_no"]) == []
    assert survey_of(world, township["tracking_no"]).defaulted is True
    # closed all the same: a late rating is refused
    late = world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/rating?code={filed['query_code']}",
                             json={"score": 1})
    assert late.status_code == 409
    assert sweep(world, clock).settled == 0  # settled: never looked at again


def texts(world, template) -> list[str]:
    with world.app.app_context():
        return list(db.session.scalars(sa.select(SmsMessage.body).where(SmsMessage.template == template)
                                       .order_by(SmsMessage.id)))


@SQLITE
def test_a_rating_after_the_default_is_refused_by_web_and_sms(world, clock):
    filed = resolved(world)
    clock.advance(days=7, minutes=1)
    assert sweep(world, clock).defaulted == 1
    response = world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/rating?code={filed['query_code']}",
                                 json={"score": 5})
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "invalid_transition"
    with world.app.app_context():  # two replies by SMS (what the webhook does with them)
        for sid in ("SM-late-1", "SM-late-2"):
            assert handle_inbound(db.session, sid=sid, phone="+8613800138000", body="5").outcome == "closed"
            db.session.commit()
    survey = survey_of(world, filed["tracking_no"])
    assert (survey.score, survey.defaulted) == (3, True)
    assert world.ticket("office", filed["tracking_no"])["status"] == "closed"
    assert len(texts(world, "survey_closed")) == 1  # told once that the survey is over


@SQLITE
def test_a_rating_that_races_the_sweep_is_refused(world, clock):
    """The citizen's page was read while the survey was open; the sweep settles it before the rating is written:
    the rating finds the round taken and is refused, never overwriting the default."""
    filed = resolved(world)
    clock.advance(days=7, seconds=-1)
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == filed["tracking_no"]))
        assert workflow.open_survey_for(db.session, ticket, clock()) is not None
        db.session.commit()
        with world.app.app_context():  # meanwhile, in another session, the survey closes and is swept
            clock.advance(seconds=2)
            assert closing.close_surveys(db.session, clock()).defaulted == 1
        clock.advance(seconds=-2)  # the rating's request started before the survey closed
        with pytest.raises(InvalidTransition):
            workflow.rate(db.session, ticket, 1)
        db.session.rollback()
    assert survey_of(world, filed["tracking_no"]).score == 3


@SQLITE
def test_one_failing_survey_does_not_stop_the_batch(world, clock, monkeypatch, caplog):
    numbers = [resolved(world)["tracking_no"] for _ in range(4)]
    broken = survey_of(world, numbers[1]).id
    real = workflow.default_rating

    def default_rating(session, survey, ticket, swept_at):
        event = real(session, survey, ticket, swept_at)
        if survey.id == broken:
            session.flush()
            raise RuntimeError("boom")
        return event

    monkeypatch.setattr(workflow, "default_rating", default_rating)
    clock.advance(days=8)
    result = sweep(world, clock, batch_size=3)
    assert (result.defaulted, result.failed, result.batches) == (3, [broken], 2)
    assert "closing survey" in caplog.text and "boom" in caplog.text
    failed = survey_of(world, numbers[1])
    assert (failed.score, failed.defaulted, failed.swept_at) == (None, False, None)  # untouched, left for later
    assert events_of(world, numbers[1]) == []
    assert all(survey_of(world, n).defaulted for n in numbers if n != numbers[1])
    monkeypatch.setattr(workflow, "default_rating", real)
    assert sweep(world, clock).defaulted == 1 and survey_of(world, numbers[1]).defaulted


@SQLITE
def test_cli_scheduler_job_and_actor(world, clock, monkeypatch):
    for _ in range(5):
        resolved(world)
    clock.advance(days=8)
    monkeypatch.setattr(closing, "BATCH_SIZE", 2)  # more due than a batch: a progress bar
    runner = world.app.test_cli_runner()
    result = runner.invoke(args=["evaluation", "close-surveys"])
    assert result.exit_code == 0, result.output
    assert "closing surveys" in result.output
    assert "5 closed survey(s) settled: 5 recorded as 基本满意 by default, 0 left unrated" in result.output
    again = runner.invoke(args=["evaluation", "close-surveys"])
    assert again.exit_code == 0 and "0 closed survey(s) settled" in again.output
    # the scheduler's job enqueues the actor, which sweeps
    assert JOBS.get(world.app)["survey-closing"] is tasks.schedule_survey_closing
    resolved(world)
    clock.advance(days=8)
    with world.app.app_context():
        tasks.close_surveys.fn()
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Survey).where(Survey.defaulted)) == 6


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_sweeps_default_each_survey_once(world, clock, database_url):
    numbers = [resolved(world)["tracking_no"] for _ in range(20)]
    clock.advance(days=8)
    apps = []
    for _ in range(3):
        app = create_app({**BASE_CONFIG, "DATABASE_URL": database_url})
        set_clock(app, clock)
        apps.append(app)
    results, errors, start = [], [], threading.Barrier(len(apps))

    def run(app):
        try:
            with app.app_context():
                start.wait()
                results.append(closing.close_surveys(db.session, clock(), batch_size=2))
                db.engine.dispose()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sum(r.defaulted for r in results) == len(numbers) and all(r.failed == [] for r in results)
    with world.app.app_context():
        per_case = dict(db.session.execute(
            sa.select(Event.ticket_id, sa.func.count()).where(Event.action == "rate_default")
            .group_by(Event.ticket_id)).all())
        assert len(per_case) == len(numbers) and set(per_case.values()) == {1}
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Survey).where(Survey.defaulted)) == 20


@SQLITE
def test_the_open_period_is_seven_natural_days_by_default(app):
    assert app.config["SURVEY_OPEN_DAYS"] == 7
    with app.app_context():
        assert db.session.get(Office, offices.root_id(db.session)).default_unanswered is True


@SQLITE
def test_the_survey_text_says_what_silence_counts_as(network, clock):
    world = network.world
    set_default(world, "c2", False)
    for code in ("root", "c2"):
        filed = world.file(**({} if code == "root" else {"office_code": code}))
        who = "office" if code == "root" else "office_c2"
        world.act(who, filed["tracking_no"], "accept")
        world.act(who, filed["tracking_no"], "resolve", content="已答复。")
    bodies = texts(world, "survey")
    assert bodies[0].endswith("7天内有效，逾期未评价视为基本满意。回复TD退订评价短信。")
    assert bodies[1].endswith("7天内有效。回复TD退订评价短信。")
