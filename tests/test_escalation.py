"""The 督办 ladder with a movable clock: each step fires once, at its working-day time, with its SMS."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from escalation import sweeper
from escalation.ladder import ladder_from_config
from escalation.models import EscalationStep
from notify.models import SmsMessage
from tests.helpers import (
    HANDLER_PHONE,
    OFFICE_PHONE,
    escalations,
    give_phones,
    local,
    open_cases,
    seed_world,
    steps,
    sweep,
    transferred_case,
)
from tickets import workflow
from tickets.db import db
from tickets.models import Ticket


def messages(world) -> list[tuple[str, str]]:
    with world.app.app_context():
        return [(m.template, m.phone) for m in db.session.scalars(sa.select(SmsMessage).where(
            SmsMessage.template.in_(["escalation_warning", "escalation_supervisor", "escalation_leader",
                                     "office_reminder"])).order_by(SmsMessage.id))]


def test_ladder_fires_each_step_once_at_its_working_day_time(world, clock):
    give_phones(world)
    case = transferred_case(world, clock)
    planned = steps(world, case)
    assert planned[("handle", 1, "warning")] == (local(2026, 11, 20, 0, 0), False, False)
    assert planned[("handle", 1, "supervisor")] == (local(2026, 11, 23, 23, 59, 59), False, False)
    assert planned[("handle", 1, "leader")] == (local(2026, 11, 25, 23, 59, 59), False, False)
    # accepted and transferred the same morning: the office's reminder is no longer needed
    assert planned[("accept", 1, "office_reminder")][2]

    clock.set(2026, 11, 19, 23, 59)
    assert sum(sweep(world).fired.values()) == 0
    clock.set(2026, 11, 20, 0, 0)
    assert sweep(world).fired == {"warning": 1}
    assert sweep(world).fired == {}
    assert messages(world) == [("escalation_warning", HANDLER_PHONE)]

    clock.set(2026, 11, 23, 23, 59, 58)
    assert sweep(world).fired == {}
    clock.set(2026, 11, 23, 23, 59, 59)
    assert sweep(world).fired == {"supervisor": 1}
    clock.set(2026, 11, 25, 12, 0)  # one and a half working days late: not yet the leader's turn
    assert sweep(world).fired == {}
    clock.set(2026, 11, 26, 0, 0)
    result = sweep(world)
    assert result.fired == {"leader": 1} and result.sms == 1
    clock.set(2026, 12, 1, 9, 0)
    assert sweep(world).fired == {}

    assert messages(world) == [("escalation_warning", HANDLER_PHONE), ("escalation_supervisor", "+8613900000001"),
                               ("escalation_leader", "+8613900000002")]
    assert [(e["level"], e["step"], e["kind"], e["round"]) for e in escalations(world, case)] == [
        (1, "warning", "handle", 1), (2, "supervisor", "handle", 1), (3, "leader", "handle", 1)]
    assert all(not e["public"] and e["actor_role"] == "system" for e in escalations(world, case))
    assert world.ticket("office", case)["supervision_level"] == 3
    with world.app.app_context():
        body = db.session.scalar(sa.select(SmsMessage.body).where(SmsMessage.template == "escalation_leader"))
    assert case in body and "2026-11-23 23:59" in body and "2个工作日" in body and "市场监督管理局" in body


def test_weekend_and_holiday_offsets(world, clock):
    # Transferred Tuesday 2026-09-29 with 2 working days: Sep 30, then Oct 1-7 off: due Thursday Oct 8.
    clock.set(2026, 9, 29, 10, 0)
    case = world.file()["tracking_no"]
    world.act("office", case, "accept")
    world.act("office", case, "transfer", department_id=world.departments["A"], working_days=2)
    planned = steps(world, case)
    assert planned[("handle", 1, "warning")][0] == local(2026, 9, 30, 0, 0)
    assert planned[("handle", 1, "supervisor")][0] == local(2026, 10, 8, 23, 59, 59)
    # Oct 9 (Fri) and Oct 10 (a make-up Saturday) are the two working days after it
    assert planned[("handle", 1, "leader")][0] == local(2026, 10, 10, 23, 59, 59)


def test_one_day_deadline_has_no_warning_before_it_started(world, clock):
    case = world.file()["tracking_no"]
    world.act("office", case, "accept")
    world.act("office", case, "transfer", department_id=world.departments["A"], working_days=1)
    assert ("handle", 1, "warning") not in steps(world, case)


def test_extension_moves_unfired_steps(world, clock):
    case = transferred_case(world, clock)
    clock.set(2026, 11, 20, 9, 0)
    sweep(world)  # the warning fires
    world.act("dept_a", case, "request_extension", working_days=3, reason="需要现场核查")
    world.act("office", case, "decide_extension", approve=True)
    planned = steps(world, case)
    assert planned[("handle", 1, "warning")][1]  # fired stays fired
    assert planned[("handle", 1, "supervisor")] == (local(2026, 11, 26, 23, 59, 59), False, False)
    assert planned[("handle", 1, "leader")] == (local(2026, 11, 30, 23, 59, 59), False, False)
    clock.set(2026, 11, 24, 9, 0)
    assert sweep(world).fired == {}


def test_reply_cancels_and_send_back_restores(world, clock):
    give_phones(world)
    case = transferred_case(world, clock)
    world.act("dept_a", case, "reply", content="已办理完毕。")
    planned = steps(world, case)
    assert all(cancelled for (kind, _, _), (_, _, cancelled) in planned.items() if kind == "handle")
    assert planned[("review", 1, "office_reminder")] == (local(2026, 11, 17, 23, 59, 59), False, False)
    clock.set(2026, 11, 18, 9, 0)
    assert sweep(world).fired == {"office_reminder": 1}
    assert messages(world) == [("office_reminder", OFFICE_PHONE)]
    assert escalations(world, case) == []  # a reminder to the office does not raise supervision
    world.act("office", case, "send_back", reason="请补充办理依据。")
    planned = steps(world, case)
    assert planned[("handle", 1, "supervisor")] == (local(2026, 11, 23, 23, 59, 59), False, False)
    world.act("dept_a", case, "reply", content="已补充。")
    world.act("office", case, "approve")
    clock.set(2026, 12, 31, 9, 0)
    assert sweep(world).fired == {}
    assert all(fired or cancelled for _, fired, cancelled in steps(world, case).values())


def test_return_cancels_and_new_round_starts(world, clock):
    case = transferred_case(world, clock)
    world.act("dept_a", case, "return", reason="不属于本部门职责。")
    planned = steps(world, case)
    assert all(planned[("handle", 1, s)][2] for s in ("warning", "supervisor", "leader"))
    assert planned[("accept", 2, "office_reminder")][1:] == (False, False)
    world.act("office", case, "transfer", department_id=world.departments["B"])
    planned = steps(world, case)
    assert planned[("handle", 2, "supervisor")][1:] == (False, False)
    assert planned[("accept", 2, "office_reminder")][2]


def test_remind_works_alongside(world, clock):
    case = transferred_case(world, clock)
    world.act("office", case, "remind")
    clock.set(2026, 11, 24, 9, 0)
    sweep(world)
    assert world.ticket("office", case)["supervision_level"] == 2
    # the warning's moment (before the deadline of 11-23) had passed by this sweep: called off, not escalated
    assert [e["level"] for e in escalations(world, case)] == [2]


def test_sweep_command_and_heartbeat(world, clock):
    transferred_case(world, clock)
    clock.set(2026, 11, 24, 9, 0)
    result = world.app.test_cli_runner().invoke(args=["escalation", "sweep"])
    assert result.exit_code == 0 and "fired 1 step(s) (supervisor 1); 1 cancelled (moment_passed: warning 1)" \
        in result.output, result.output
    with world.app.app_context():
        row = sweeper.last_run(db.session)
        assert row.at == clock.now and row.data["fired"] == 1 and row.data["cancelled"] == 1
        assert not sweeper.is_stale(row, clock.now, 30)
        assert sweeper.is_stale(row, clock.advance(seconds=91), 30)


def test_closed_behind_the_ladders_back_is_not_escalated(world, clock):
    """A step left pending by a deadline ended outside the workflow is cancelled, not fired, and says why."""
    case = transferred_case(world, clock)
    with world.app.app_context():
        db.session.execute(sa.update(Ticket).where(Ticket.tracking_no == case).values(status="closed"))
        db.session.commit()
    clock.set(2026, 11, 30, 9, 0)
    result = sweep(world)
    assert result.fired == {} and result.cancelled == 3 and messages(world) == []
    assert result.cancelled_why == {("case_closed", "warning"): 1, ("case_closed", "supervisor"): 1,
                                    ("case_closed", "leader"): 1}
    assert all(cancelled for _, fired, cancelled in steps(world, case).values() if not fired)


def test_ladder_is_configurable(make_app, clock):
    """A ladder without the warning, and the leader told the day after the deadline."""
    app = make_app(ESCALATION_LADDER=json.dumps({"handle": [
        {"step": "supervisor", "level": 2, "offset": 0, "audience": "supervisor", "template": "escalation_supervisor"},
        {"step": "leader", "level": 3, "offset": 1, "audience": "leader", "template": "escalation_leader"}]}))
    world = seed_world(app, app.test_client())
    case = transferred_case(world, clock)
    planned = {key: value for key, value in steps(world, case).items() if key[0] == "handle"}
    assert planned == {("handle", 1, "supervisor"): (local(2026, 11, 23, 23, 59, 59), False, False),
                       ("handle", 1, "leader"): (local(2026, 11, 24, 23, 59, 59), False, False)}


def test_bad_ladder_is_refused():
    with pytest.raises(ValueError):
        ladder_from_config({"handle": [{"step": "x", "level": 5, "offset": 0, "audience": "supervisor",
                                        "template": "escalation_supervisor"}]})
    with pytest.raises(ValueError):
        ladder_from_config('{"handle": [{"step": "x", "level": 1, "offset": 0, "audience": "mayor", "template": "t"}]}')


@pytest.mark.parametrize("configured", [
    '[1]', '{"handle": 1}', '{"handle": [1]}', '{"handle": [{"x": 1}]}', '{"handle": [{"level": 1}]}',
    '{"handle": [{"step": "x", "level": "2", "offset": 0, "audience": "office", "template": "escalation_supervisor"}]}',
    '{"handle": [{"step": "x", "level": true, "offset": 0, "audience": "office", "template": "escalation_supervisor"}]}',
    '{"handle": [{"step": "x", "level": 1, "offset": "0", "audience": "office", "template": "escalation_supervisor"}]}',
    '{"handle": [{"step": "x", "level": 1, "offset": 0, "audience": "office", "template": ["escalation_supervisor"]}]}',
    '{"handle": [{"step": "x", "level": 1, "offset": 0, "audience": ["office"], "template": "escalation_supervisor"}]}',
    '{"handle": [{"step": ["x"], "level": 1, "offset": 0, "audience": "office", "template": "escalation_supervisor"}]}',
    '{"handle": ', '{"handle": [{"step": "x", "level": 1, "share": "1", "audience": "office", "template": "escalation_supervisor"}]}',
])
def test_a_ladder_of_any_wrong_shape_is_refused_with_a_message_naming_the_setting(configured):
    """Start-up says what is wrong with the setting (a ValueError naming ESCALATION_LADDER, or the JSON's own
    message), never a TypeError from deep inside."""
    with pytest.raises(ValueError) as refused:
        ladder_from_config(configured)
    assert "ESCALATION_LADDER" in str(refused.value) or isinstance(refused.value, json.JSONDecodeError)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("config", [{"ESCALATION_BATCH_SIZE": 0}, {"ESCALATION_BATCH_SIZE": -5},
                                    {"SWEEP_INTERVAL_SECONDS": 0}, {"SWEEP_INTERVAL_SECONDS": -1}])
def test_a_sweep_that_could_fire_nothing_or_a_scheduler_that_would_never_pause_stops_start_up(make_app, config):
    [(name, value)] = config.items()
    with pytest.raises(ValueError, match=f"^{name} must be a whole number from 1 to"):
        make_app(**config)


def test_a_batch_of_none_is_refused_not_taken_for_the_configured_size(world, clock):
    """`batch_size=0` given is not `batch_size` left out: a sweep of batches of none would fire nothing and still write
    its heartbeat."""
    open_cases(world, clock, n=1)
    clock.set(2026, 5, 4, 10, 0)
    with world.app.app_context():
        with pytest.raises(ValueError, match="batch size must be 1 or more"):
            sweeper.sweep(db.session, clock(), batch_size=0)
        assert sweeper.last_run(db.session) is None


def test_the_scheduler_loop_refuses_an_interval_without_a_pause(app, monkeypatch):
    import threading

    from escalation import scheduler

    app.config["SWEEP_INTERVAL_SECONDS"] = 0  # changed after start-up, past create_app's check
    ticks, stop, refused = [], threading.Event(), []
    monkeypatch.setattr(scheduler, "tick", lambda _app: ticks.append(1) or (len(ticks) >= 100 and stop.set()))

    def run():
        try:
            scheduler.run(app, stop)
        except ValueError as error:
            refused.append(str(error))

    loop = threading.Thread(target=run, daemon=True)
    loop.start()
    loop.join(2)
    stop.set()
    assert ticks == [] and refused == ["SWEEP_INTERVAL_SECONDS must be 1 or more, not 0"], len(ticks)


def test_scheduler_process_needs_a_broker(app):
    result = app.test_cli_runner().invoke(args=["escalation", "scheduler"])
    assert result.exit_code != 0 and "BROKER_URL" in result.output


def test_bad_rating_starts_the_rectification_ladder(world, clock):
    case = transferred_case(world, clock)
    world.act("dept_a", case, "reply", content="已办理完毕。")
    world.act("office", case, "approve")
    with world.app.app_context():
        ticket = db.session.scalar(sa.select(Ticket).where(Ticket.tracking_no == case))
        workflow.rate(db.session, ticket, 5, "没有解决")
        db.session.commit()
    planned = steps(world, case)
    # fifteen working days from Monday 2026-11-16: Monday 2026-12-07
    assert planned[("rectify", 1, "supervisor")] == (local(2026, 12, 7, 23, 59, 59), False, False)
    assert planned[("rectify", 1, "warning")][0] == local(2026, 12, 4, 0, 0)


def test_plan_command_backfills_cases_opened_before_the_ladder(world, clock):
    case = transferred_case(world, clock)
    with world.app.app_context():
        db.session.execute(sa.delete(EscalationStep))  # as if filed before migration 0004
        db.session.commit()
    runner = world.app.test_cli_runner()
    assert "planned the ladder of 1 open case(s)" in runner.invoke(args=["escalation", "plan"]).output
    planned = steps(world, case)
    assert planned[("handle", 1, "supervisor")] == (local(2026, 11, 23, 23, 59, 59), False, False)
    assert "of 1 open case(s)" in runner.invoke(args=["escalation", "plan"]).output
    assert steps(world, case) == planned  # idempotent
