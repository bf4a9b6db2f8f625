"""Outbound webhooks against a real local HTTP receiver (tests/webhook_receiver.py): signatures that verify as the
README says, every event of a case walk once, retries with backoff, failure and 重新发送, office scope, the console
for administrators only, the CLI, and bad subscription input (hypothesis) answered with messages, never a 500.

Deliveries are sent in this process (`pump`, the worker's own `deliver`, with the test clock moved over each backoff)
on SQLite and PostgreSQL; over Redis by a Dramatiq worker in one test; and by real `dramatiq` worker processes, one of
them killed in mid-request, in tests/test_webhooks_crash.py.
"""
from __future__ import annotations

import re
import time
from datetime import timedelta

import dramatiq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify import deliveries
from notify.deliveries import RetryLater, deliver, signature
from notify.state import WEBHOOK_ENQUEUE
from notify.subscriptions import (EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookSubscription,
                                  create_subscription)
from tests.helpers import csrf_of, examples, free_port, stop_worker, sweep
from tests.webhook_receiver import WebhookReceiver, verify
from tickets import clock as app_clock
from tickets.broker import broker as broker_of
from tickets.clock import set_clock
from tickets.db import db
from tickets.models import Event, Ticket
from tickets.workflow import KINDS

PERSONAL = ("张三", "13800138000", "138 0013 8000", "8000")  # world.file()'s citizen; and the query code, per case


def subscribe(app, url, events=EVENT_TYPES, **data) -> tuple[int, str]:
    with app.app_context():
        subscription, secret = create_subscription(db.session, {"url": url, "event_types": list(events), **data},
                                                   by=None, now=app_clock.now())
        db.session.commit()
        return subscription.id, secret


def rows(app, model=WebhookDelivery, **where):
    with app.app_context():
        query = sa.select(model).order_by(model.id)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return list(db.session.scalars(query))


def pump(app, clock=None, rounds: int = 200) -> list[str]:
    """Send every waiting delivery in this process as a worker would, in the order written; with `clock`, move it over
    each backoff (no sleeping). What each attempt came to."""
    results = []
    with app.app_context():
        for _ in range(rounds):
            waiting = db.session.execute(sa.select(WebhookDelivery.id, WebhookDelivery.not_before)
                                         .where(WebhookDelivery.status.in_(("pending", "sending")))
                                         .order_by(WebhookDelivery.not_before, WebhookDelivery.id)).all()
            db.session.rollback()
            if not waiting:
                break
            delivery_id, not_before = waiting[0]
            if not_before > app_clock.now():
                assert clock is not None, "a delivery waits for its backoff and no clock was given to move"
                clock.now = not_before + timedelta(milliseconds=1)
            try:
                results.append(deliver(delivery_id))
            except RetryLater:
                results.append("retry")
    return results


def attempt_rows(page: str) -> int:
    """Rows of a delivery page's table of attempts."""
    table = re.search(r'id="delivery-attempts">.*?<tbody>(.*?)</tbody>', page, re.S)
    return table.group(1).count("<tr>") if table else 0


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


def subscribed(world, receiver, events=EVENT_TYPES, **data) -> int:
    subscription_id, receiver.secret = subscribe(world.app, receiver.url, events, **data)
    return subscription_id


# --- what is sent ------------------------------------------------------------------------------------------------

def test_a_filing_is_posted_signed_with_its_headers_and_no_personal_data(world, receiver):
    subscribed(world, receiver)
    filed = world.file()
    assert pump(world.app) == ["delivered"]
    [request] = receiver.received
    assert request.verified  # the README's snippet accepts it
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Banjie-Event"] == "created"
    payload = request.json
    assert headers["X-Banjie-Delivery"] == payload["id"] and re.fullmatch(r"[0-9a-f-]{36}", payload["id"])
    timestamp = headers["X-Banjie-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    assert headers["X-Banjie-Signature"] == signature(receiver.secret, int(timestamp), request.body)
    assert not verify("another-secret-000", headers, request.body)
    assert not verify(receiver.secret, headers, request.body + b" ")
    stale = {**headers, "X-Banjie-Timestamp": str(int(timestamp) - 301)}
    assert not verify(receiver.secret, stale, request.body)  # a replay after the tolerance fails
    assert payload["type"] == "created" and payload["occurred_at"].endswith("+08:00")
    ticket = payload["ticket"]
    assert ticket["tracking_no"] == filed["tracking_no"] and ticket["status"] == "submitted"
    assert ticket["status_label"] == "待受理" and ticket["office_code"] == "root" and ticket["department"] is None
    assert ticket["supervision_level"] == 0 and ticket["due_at"].endswith("+08:00")
    assert {"source", "external_ref"} <= ticket.keys()
    assert payload["event"]["kind"] == "file" and payload["event"]["to_status"] == "submitted"
    text = request.body.decode()
    for personal in (*PERSONAL, filed["query_code"]):
        assert personal not in text
    [delivery] = rows(world.app)
    assert delivery.status == "delivered" and delivery.uuid == payload["id"] and delivery.body.encode() == request.body
    [attempt] = rows(world.app, WebhookAttempt)
    assert attempt.status_code == 200 and attempt.duration_ms is not None and '"ok": true' in attempt.response_excerpt


def test_every_status_change_of_a_case_walk_arrives_once(world, receiver, clock):
    subscribed(world, receiver)
    filed = world.file()
    no = filed["tracking_no"]
    world.act("office", no, "accept")
    world.act("office", no, "transfer", department_id=world.departments["A"])
    world.act("dept_a", no, "return", reason="不属于本部门职责。")
    world.act("office", no, "transfer", department_id=world.departments["B"])
    world.act("office", no, "remind", note="请尽快办理。")
    clock.advance(days=12)
    sweep(world)  # the ladder: overdue, 督办 and 挂牌督办 (an internal escalate event)
    world.act("dept_b", no, "reply", content="已办理完毕。")
    world.act("office", no, "send_back", reason="请补充办理依据。")
    world.act("dept_b", no, "reply", content="已补充办理依据。")
    world.act("office", no, "approve")
    rated = world.client.post(f"/api/v1/tickets/{no}/rating?code={filed['query_code']}", json={"score": 5})
    assert rated.status_code == 200, rated.get_json()
    world.act("dept_b", no, "reply", content="已整改。")
    world.act("office", no, "approve")
    assert "rejected" not in pump(world.app, clock)
    assert receiver.duplicates() == {}

    with world.app.app_context():
        events = list(db.session.scalars(sa.select(Event).join(Ticket).where(Ticket.tracking_no == no)
                                          .order_by(Event.id)))
    changes = [(e.from_status, e.to_status) for e in events if e.from_status and e.from_status != e.to_status]
    arrived = [(r.json["event"]["from_status"], r.json["event"]["to_status"]) for r in receiver.of_type("status_changed")]
    assert arrived == changes and len(changes) == 11
    assert all(r.verified for r in receiver.received)
    assert [r.json["event"]["kind"] for r in receiver.of_type("replied")] == ["reply"] * 3
    assert [r.json["ticket"]["status"] for r in receiver.of_type("closed")] == ["closed", "closed"]
    [rating] = receiver.of_type("rated")
    assert rating.json["event"]["score"] == 5 and rating.json["ticket"]["status"] == "rectifying"
    escalated = receiver.of_type("escalated")
    assert [r.json["event"]["kind"] for r in escalated][0] == "remind" and escalated[-1].json["event"]["kind"] == "escalate"
    assert escalated[-1].json["ticket"]["supervision_level"] >= 2
    assert [r.json["ticket"]["department"]["code"] for r in receiver.of_type("replied")] == ["B"] * 3
    for request in receiver.received:  # internal notes never leave: the reminder's note was internal
        assert "请尽快办理" not in request.body.decode() and filed["query_code"] not in request.body.decode()
        assert "note" not in request.json["event"] or KINDS[request.json["event"]["kind"]].public
    assert len(receiver.received) == len(rows(world.app))


def test_a_receiver_answering_500_then_200_gets_the_same_delivery_again(world, receiver, clock):
    subscribed(world, receiver, ["created"])
    receiver.statuses = [500]
    world.file()
    assert pump(world.app, clock) == ["retry", "delivered"]
    first, second = receiver.received
    assert first.delivery == second.delivery and first.body == second.body
    assert first.status == 500 and second.status == 200 and second.verified
    [delivery] = rows(world.app)
    assert delivery.status == "delivered" and delivery.attempts == 2 and delivery.last_status_code == 200
    failed, ok = rows(world.app, WebhookAttempt)
    assert failed.status_code == 500 and failed.error == "HTTP 500" and '"status": 500' in failed.response_excerpt
    assert ok.status_code == 200 and ok.error is None


def test_what_the_citizen_wrote_reaches_a_receiver_without_the_numbers_in_it(world, receiver):
    """A withdrawal's reason is public (the citizen's page shows it), so its event carries it as its note: with the
    number the citizen put in it masked, as a payload carries no number."""
    subscribed(world, receiver, ["status_changed"])
    filed = world.file()
    withdrawn = world.client.post(f"/api/v1/tickets/{filed['tracking_no']}/withdraw?code={filed['query_code']}",
                                  json={"reason": "不办了，有事打我电话139 0000 1111"})
    assert withdrawn.status_code == 200, withdrawn.get_json()
    assert pump(world.app) == ["delivered"]
    [request] = receiver.received
    assert request.json["event"]["note"].startswith("不办了，有事打我电话")
    assert "1111" not in request.body.decode() and "***" in request.json["event"]["note"]


@pytest.mark.parametrize("charset", ["x-no-such-codec", "hex", "base64", "utf-16", "gb18030"])
def test_whatever_charset_a_receiver_names_its_answer_settles_the_delivery(world, receiver, clock, charset):
    """A charset Python does not know, or a codec that is no text encoding, raised while its excerpt was read: after
    the claim, so the delivery stayed `sending` and was sent again after every lease, past the attempts allowed."""
    subscribed(world, receiver, ["created"])
    receiver.content_type = f"application/json; charset={charset}"
    world.file()
    assert pump(world.app, clock) == ["delivered"]
    [delivery] = rows(world.app)
    assert delivery.status == "delivered" and delivery.attempts == 1 and len(receiver.received) == 1
    [attempt] = rows(world.app, WebhookAttempt)
    assert attempt.status_code == 200 and attempt.error is None and attempt.response_excerpt


def test_a_receiver_that_is_down_is_retried_with_backoff_then_failed_and_resent_from_the_console(make_app, clock,
                                                                                                  receiver):
    from tests.helpers import seed_world

    app = make_app(WEBHOOK_MAX_ATTEMPTS=4, WEBHOOK_BACKOFF_SECONDS=10, WEBHOOK_BACKOFF_MAX_SECONDS=30)
    world = seed_world(app, app.test_client())
    down = f"http://127.0.0.1:{free_port()}/hook"
    subscription_id, _secret = subscribe(app, down, ["created"])
    world.file()
    starts = []
    with app.app_context():
        for _ in range(4):
            starts.append(app_clock.now())
            [delivery] = rows(app)
            assert delivery.not_before <= app_clock.now()
            try:
                assert deliver(delivery.id) == "failed"
            except RetryLater:
                [delivery] = rows(app)
                clock.now = delivery.not_before
    waits = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
    # 10, 20, 30 s (the cap), each less up to half of it at random
    for wait, full in zip(waits, (10, 20, 30)):
        assert full / 2 <= wait <= full, waits
    [delivery] = rows(app)
    assert delivery.status == "failed" and delivery.attempts == 4
    assert all(a.status_code is None and a.error.startswith("connection failed") for a in rows(app, WebhookAttempt))
    assert down not in " ".join(a.error for a in rows(app, WebhookAttempt))

    admin = world.console("admin")
    listing = admin.get("/admin/webhook-deliveries/?flt0_0=failed").get_data(as_text=True)
    assert f'/admin/webhook-deliveries/{delivery.id}"' in listing
    page = admin.get(f"/admin/webhook-deliveries/{delivery.id}").get_data(as_text=True)
    assert "connection failed" in page and attempt_rows(page) == 4 and 'id="resend"' in page
    # the receiver is up now: point the subscription at it, then send again from the console
    edit = admin.get(f"/admin/webhooks/{subscription_id}/edit").get_data(as_text=True)
    saved = admin.post(f"/admin/webhooks/{subscription_id}/edit",
                       data={"csrf_token": csrf_of(edit), "url": receiver.url, "event_types": ["created"],
                             "office_id": "", "label": "12345"})
    assert saved.status_code == 302, saved.get_data(as_text=True)
    enqueued = []
    WEBHOOK_ENQUEUE.set(app, enqueued.append)
    resent = admin.post(f"/admin/webhook-deliveries/{delivery.id}/resend", data={"csrf_token": csrf_of(page)})
    assert resent.status_code == 302 and enqueued == [delivery.id]
    with app.app_context():
        receiver.secret = db.session.get(WebhookSubscription, subscription_id).secret
    assert pump(app, clock) == ["delivered"]
    [request] = receiver.received
    assert request.delivery == delivery.uuid and request.verified
    [again] = rows(app)
    assert again.status == "delivered" and again.attempts == 1 and again.resent_at is not None
    assert len(rows(app, WebhookAttempt)) == 5
    page = admin.get(f"/admin/webhook-deliveries/{delivery.id}").get_data(as_text=True)
    assert "HTTP 200" in page and attempt_rows(page) == 5


def test_redirects_are_not_followed_and_other_schemes_are_never_requested(world, receiver, clock):
    subscription_id = subscribed(world, receiver, ["created"])
    receiver.statuses = [302]
    world.file()
    assert pump(world.app, clock, rounds=1) == ["retry"]
    [attempt] = rows(world.app, WebhookAttempt)
    assert attempt.status_code == 302 and "not followed" in attempt.error
    assert len(receiver.received) == 1  # nothing went to the Location
    with world.app.app_context():  # a row changed behind the rules' back is still never requested
        db.session.get(WebhookSubscription, subscription_id).url = "file:///etc/passwd"
        db.session.commit()
    with world.app.app_context():
        [delivery] = rows(world.app)
        clock.now = delivery.not_before
        with pytest.raises(RetryLater):
            deliver(delivery.id)
    assert rows(world.app, WebhookAttempt)[-1].error.startswith("refused")


def test_an_enqueue_failure_never_fails_the_action_and_the_redrive_sends_it(world, receiver, caplog):
    subscribed(world, receiver, ["status_changed"])
    no = world.file()["tracking_no"]
    WEBHOOK_ENQUEUE.set(world.app, lambda delivery_id: (_ for _ in ()).throw(ConnectionError("broker down")))
    world.act("office", no, "accept")  # 200: the broker's outage is the re-drive's business
    assert "the re-drive will send it" in caplog.text
    [delivery] = rows(world.app)
    assert delivery.status == "pending"
    with world.app.app_context():
        assert deliveries.redrive(app_clock.now() + timedelta(seconds=31)) == [delivery.id]
        assert deliveries.backlog(db.session, app_clock.now() + timedelta(seconds=31)) == (1, 31.0)
    runner = world.app.test_cli_runner()
    assert "delivered: 1" in runner.invoke(args=["webhooks", "redrive"]).output
    assert receiver.counts() == {delivery.uuid: 1}


def test_a_disabled_subscription_gets_nothing_new_and_its_waiting_deliveries_fail(world, receiver):
    subscription_id = subscribed(world, receiver, ["created"])
    world.file()
    with world.app.app_context():
        from notify.subscriptions import set_active

        set_active(db.session, db.session.get(WebhookSubscription, subscription_id), False, now=app_clock.now())
        db.session.commit()
    world.file()  # nothing written for it any more
    assert pump(world.app) == ["disabled"]
    assert receiver.received == [] and rows(world.app)[0].last_error == "the subscription is disabled"


def test_a_subscription_scoped_to_an_office_gets_its_subtree_only(network, receiver):
    world = network.world
    subscribed(world, receiver, ["created"], office_code="c1")
    for office in ("root", "c1", "t11", "t12", "c2", "t21"):
        network.file(office)
    pump(world.app)
    assert sorted(r.json["ticket"]["office_code"] for r in receiver.received) == ["c1", "t11", "t12"]


def test_a_delivery_over_redis_by_a_dramatiq_worker_with_real_backoff(make_app, redis_url, receiver):
    from tests.helpers import seed_world

    app = make_app(BROKER_URL=redis_url, WEBHOOK_BACKOFF_SECONDS=0.2, WEBHOOK_TIMEOUT_SECONDS=2)
    set_clock(app, None)
    world = seed_world(app, app.test_client())
    subscribed(world, receiver, ["created", "status_changed"])
    receiver.statuses = [503, 500]
    broker = broker_of(app)
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=2, queues={"webhooks"})
    worker.start()
    try:
        no = world.file()["tracking_no"]
        world.act("office", no, "accept")
        receiver.wait_for(4, timeout=20)
        deadline = time.monotonic() + 10
        while {d.status for d in rows(app)} != {"delivered"} and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop_worker(worker)
        broker.close()
    assert {d.status for d in rows(app)} == {"delivered"}
    assert sorted(receiver.counts().values()) in ([1, 3], [2, 2])  # two failures, each retried after its backoff
    retried = [r for r in receiver.received if receiver.counts()[r.delivery] > 1]
    assert retried[-1].arrived - retried[0].arrived >= 0.1


# --- the console -------------------------------------------------------------------------------------------------

def test_the_console_makes_a_subscription_shows_its_secret_once_and_pings_it(world, receiver):
    admin = world.console("admin")
    form = admin.get("/admin/webhooks/new").get_data(as_text=True)
    made = admin.post("/admin/webhooks/new", data={"csrf_token": csrf_of(form), "url": receiver.url,
                                                   "event_types": ["created", "closed"], "office_id": "",
                                                   "label": "12345热线平台"})
    page = made.get_data(as_text=True)
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="webhook-secret">([^<]+)<', page).group(1)
    assert secret.startswith("bjwh_") and len(secret) > 40
    receiver.secret = secret
    [subscription] = rows(world.app, WebhookSubscription)
    assert subscription.event_types == ["created", "closed"] and subscription.created_by == world.users["admin"]
    for path in ("/admin/webhooks/", f"/admin/webhooks/{subscription.id}/edit", "/admin/webhook-deliveries/"):
        shown = admin.get(path)
        assert shown.status_code == 200 and secret not in shown.get_data(as_text=True), path
    listing = admin.get("/admin/webhooks/").get_data(as_text=True)
    pinged = admin.post(f"/admin/webhooks/{subscription.id}/ping", data={"csrf_token": csrf_of(listing)})
    assert pinged.status_code == 302 and "/admin/webhook-deliveries/" in pinged.headers["Location"]
    assert secret not in str(pinged.headers)
    assert pump(world.app) == ["delivered"]
    [ping] = receiver.received
    assert ping.verified and ping.json["type"] == "ping" and ping.json["subscription"]["id"] == subscription.id
    page = admin.get(pinged.headers["Location"]).get_data(as_text=True)
    assert "HTTP 200" in page and ping.json["id"] in page
    renewed = admin.post(f"/admin/webhooks/{subscription.id}/secret", data={"csrf_token": csrf_of(listing)})
    new_secret = re.search(r'id="webhook-secret">([^<]+)<', renewed.get_data(as_text=True)).group(1)
    assert new_secret != secret and rows(world.app, WebhookSubscription)[0].secret == new_secret
    disabled = admin.post(f"/admin/webhooks/{subscription.id}/disable", data={"csrf_token": csrf_of(listing)})
    assert disabled.status_code == 302 and not rows(world.app, WebhookSubscription)[0].active


def test_only_administrators_reach_the_webhook_pages(world):
    sub_id, _ = subscribe(world.app, "https://hotline.example.gov.cn/banjie")
    with world.app.app_context():
        from notify.subscriptions import send_test

        delivery_id = send_test(db.session, db.session.get(WebhookSubscription, sub_id), now=app_clock.now()).id
        db.session.commit()
    gets = ("/admin/webhooks/", "/admin/webhooks/new", f"/admin/webhooks/{sub_id}/edit", "/admin/webhook-deliveries/",
            f"/admin/webhook-deliveries/{delivery_id}")
    posts = ("/admin/webhooks/new", f"/admin/webhooks/{sub_id}/edit", f"/admin/webhooks/{sub_id}/disable",
             f"/admin/webhooks/{sub_id}/enable", f"/admin/webhooks/{sub_id}/secret", f"/admin/webhooks/{sub_id}/ping",
             f"/admin/webhook-deliveries/{delivery_id}/resend")
    for who in ("office", "dept_a", "supervisor", "leader"):
        client = world.console(who)
        token = csrf_of(client.get("/admin/").get_data(as_text=True))  # the sign-out form's
        menu = client.get("/admin/").get_data(as_text=True)
        assert "/admin/webhooks" not in menu and "/admin/webhook-deliveries" not in menu
        for path in gets:
            assert client.get(path).status_code in (403, 404), (who, path)
        for path in posts:
            assert client.post(path, data={"csrf_token": token, "url": "http://x.example"}).status_code in (403, 404)
    anonymous = world.app.test_client()
    for path in gets:
        assert anonymous.get(path).status_code == 302
    [subscription] = rows(world.app, WebhookSubscription)
    assert subscription.active and subscription.url == "https://hotline.example.gov.cn/banjie"
    admin = world.console("admin")
    for path in gets:
        page = admin.get(path)
        assert page.status_code == 200, path
        assert "13800138000" not in page.get_data(as_text=True)
    assert admin.get("/admin/webhook-deliveries/99999").status_code == 404
    assert admin.get("/admin/webhooks/99999/edit").status_code == 404


@settings(max_examples=examples(60), deadline=None, suppress_health_check=list(HealthCheck))
@given(url=st.one_of(st.text(max_size=80), st.sampled_from(
           ["ftp://x.example/", "http://", "http://user:pw@x.example/", "http://x.example:99999/", "https://[::1/",
            "http://x.example/#top", "javascript:alert(1)", "http://例子.测试/hook", "http://x.example/\u2028",
            "https://x.example/" + "a" * 2100])),
       events=st.lists(st.one_of(st.sampled_from(EVENT_TYPES), st.text(max_size=12)), max_size=4),
       office=st.one_of(st.just(""), st.text(max_size=12), st.sampled_from(["0", "-1", "99999999999", "1"])),
       label=st.text(max_size=120), secret=st.text(max_size=140))
def test_bad_subscription_input_is_a_form_message_never_a_500(admin_form, url, events, office, label, secret):
    client, token = admin_form
    answer = client.post("/admin/webhooks/new", data={"csrf_token": token, "url": url, "event_types": events,
                                                      "office_id": office, "label": label, "secret": secret})
    assert answer.status_code in (200, 400, 422), answer.status_code
    page = answer.get_data(as_text=True)
    if answer.status_code == 422:
        assert 'class="invalid-feedback d-block"' in page
    if answer.status_code == 200:  # made: the secret page
        assert 'id="webhook-secret"' in page


@pytest.fixture
def admin_form(world):
    client = world.console("admin")
    return client, csrf_of(client.get("/admin/webhooks/new").get_data(as_text=True))


def test_form_messages_say_what_is_wrong(world):
    admin = world.console("admin")
    token = csrf_of(admin.get("/admin/webhooks/new").get_data(as_text=True))
    answer = admin.post("/admin/webhooks/new?lang=zh_CN", data={"csrf_token": token, "url": "ftp://x.example/",
                                                                "event_types": [], "office_id": "777",
                                                                "secret": "short"})
    assert answer.status_code == 422
    errors = dict(re.findall(r'id="error-([a-z_]+)">([^<]+)<', answer.get_data(as_text=True)))
    assert set(errors) == {"url", "event_types", "office_id", "secret"}
    assert rows(world.app, WebhookSubscription) == []


# --- the command line --------------------------------------------------------------------------------------------

def test_the_cli_adds_lists_tests_and_disables(world, receiver):
    runner = world.app.test_cli_runner()
    added = runner.invoke(args=["webhooks", "add", receiver.url, "--events", "created,status_changed",
                                "--office", "root", "--label", "12345"])
    assert added.exit_code == 0, added.output
    receiver.secret = re.search(r"secret \(shown once\): (\S+)", added.output).group(1)
    listed = runner.invoke(args=["webhooks", "list"]).output
    assert receiver.url in listed and "created,status_changed" in listed and receiver.secret not in listed
    tested = runner.invoke(args=["webhooks", "test", "1", "--now"])
    assert tested.exit_code == 0 and "delivered HTTP 200" in tested.output, tested.output
    assert receiver.received[0].verified and receiver.received[0].json["type"] == "ping"
    assert "disabled" in runner.invoke(args=["webhooks", "disable", "1"]).output
    assert "1 disabled" in runner.invoke(args=["webhooks", "list"]).output.replace("   1 ", "1 ")
    # a receiver that takes its token in the address: the list never prints it (`production.masked`)
    keyed = runner.invoke(args=["webhooks", "add", receiver.url + "?token=s3cr3t-t0ken", "--events", "created"])
    assert keyed.exit_code == 0, keyed.output
    listed = runner.invoke(args=["webhooks", "list"]).output
    assert "s3cr3t-t0ken" not in listed and "token=***" in listed, listed
    for args, message in ((["webhooks", "add", "ftp://x", "--events", "created"], "URL: "),
                          (["webhooks", "add", receiver.url, "--events", "nope"], "--events: "),
                          (["webhooks", "add", receiver.url, "--events", "created", "--office", "zz"], "--office: "),
                          (["webhooks", "test", "99"], "no webhook subscription 99"),
                          (["webhooks", "test", "1"], "请启用后再发送测试")):
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert "delivered" in runner.invoke(args=["webhooks", "status"]).output


def test_nothing_is_read_or_written_for_events_no_subscription_wants(world):
    no = world.file()["tracking_no"]
    world.act("office", no, "note", content="内部备注")
    assert rows(world.app) == []
    subscribe(world.app, "http://127.0.0.1:9/hook", ["closed"])
    world.act("office", no, "accept")
    assert rows(world.app) == []


def test_a_payload_that_cannot_be_made_never_stops_the_action(world, monkeypatch, caplog):
    from notify import events

    subscribe(world.app, "http://127.0.0.1:9/hook", ["created", "status_changed"])

    def broken(ticket, known, session=None):
        raise ValueError("a bug")

    monkeypatch.setattr(events, "ticket_view", broken)
    no = world.file()["tracking_no"]
    world.act("office", no, "accept")
    assert rows(world.app) == [] and world.ticket("office", no)["status"] == "accepted"
    assert "could not write the webhook deliveries" in caplog.text and "13800138000" not in caplog.text
