"""Prometheus /metrics: who may read it (this machine unproxied, or the METRICS_TOKEN), requests by endpoint name and
never by path, the database's gauges read at scrape time (cases by status, overdue by `Ticket.overdue`, ladder steps
due, heartbeats, the SMS backlog), the counters of sweeps, texts and reports, a broken metric that never breaks the
action, and multiprocess mode: gunicorn with several workers and separate `dramatiq worker` processes, one host's
figures added up. Runs on SQLite and PostgreSQL (the multiprocess stack on PostgreSQL and Redis)."""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import prometheus_client
import pytest
import requests
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import examples, free_port, open_cases, seed_world, sweep, wait_until
from tests.sms_support import drain, twilio_config
from tickets import telemetry
from tickets.db import db
from tickets.models import Ticket

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_series_from_earlier_tests():
    """This test process's request and job series start empty: the tests before (a route walk, hundreds of endpoints
    by method and status) leave tens of thousands of samples in the process-wide registry, which every scrape here would
    print and parse again (in the full suite a property test's forty scrapes took 97 s, alone 2 s). A test reads
    differences or labels, never a total from before it."""
    for family in (telemetry.HTTP_REQUESTS, telemetry.HTTP_SECONDS,
                   telemetry.WORKER_MESSAGES, telemetry.WORKER_SECONDS):
        family.clear()


def parse(text: str) -> dict:
    """(sample name, sorted label pairs) -> value of an exposition."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def scrape(client, **kwargs) -> dict:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return parse(response.get_data(as_text=True))


def value(samples: dict, metric: str, **labels) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


# --- who may read -------------------------------------------------------------------------------------------------

def test_without_a_token_only_this_machine_unproxied_may_read(client):
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    for refused in ({"environ_base": {"REMOTE_ADDR": "10.1.2.3"}}, {"headers": {"X-Forwarded-For": "203.0.113.9"}},
                    {"headers": {"Forwarded": "for=203.0.113.9"}}, {"headers": {"X-Real-IP": "203.0.113.9"}}):
        response = client.get("/metrics", **refused)
        assert response.status_code == 403, refused
        assert response.get_json()["error"]["code"] == "forbidden" and "banjie_" not in response.get_data(as_text=True)


def test_with_a_token_everyone_must_give_it(make_app):
    client = make_app(METRICS_TOKEN="s3cret-metrics").test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0LW1ldHJpY3M="},
                    {"Authorization": "s3cret-metrics"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
    remote = {"REMOTE_ADDR": "198.51.100.7"}
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics",
                                           "X-Forwarded-For": "1.2.3.4"}, environ_base=remote).status_code == 200


def test_metrics_can_be_switched_off(make_app):
    client = make_app(METRICS_ENABLED=False).test_client()
    assert client.get("/metrics").status_code == 404


# --- requests -----------------------------------------------------------------------------------------------------

def test_requests_are_counted_by_endpoint_name_never_by_path(world):
    filed = world.file()
    before = scrape(world.client)
    for _ in range(3):
        world.client.get(f"/api/v1/tickets/{filed['tracking_no']}", query_string={"code": filed["query_code"]})
    world.client.get("/api/v1/tickets/BJ-NO-SUCH-CASE", query_string={"code": "XXXXXXXX"})
    world.client.get(f"/no/such/{filed['tracking_no']}")
    text = world.client.get("/metrics").get_data(as_text=True)
    after = parse(text)
    labels = {"endpoint": "api.public_ticket", "method": "GET"}
    assert value(after, "banjie_http_requests_total", status="200", **labels) - \
        value(before, "banjie_http_requests_total", status="200", **labels) == 3
    assert value(after, "banjie_http_requests_total", status="404", **labels) >= 1
    assert value(after, "banjie_http_request_duration_seconds_count", **labels) - \
        value(before, "banjie_http_request_duration_seconds_count", **labels) == 4
    assert value(after, "banjie_http_requests_total", endpoint="unmatched", method="GET", status="404") >= 1
    assert filed["tracking_no"] not in text and filed["query_code"] not in text


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF, blacklist_characters="?#%"),
                    min_size=1, max_size=40),
       method=st.sampled_from(["GET", "POST", "PROPFIND", "BREW"]))
def test_property_no_path_or_method_ever_becomes_a_label(client, path, method):
    client.open("/x/" + path, method=method)
    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        for sample in family.samples:
            if sample.name.startswith("banjie_http_"):
                assert sample.labels.get("method") in telemetry.METHODS | {"other"}
                assert "/" not in sample.labels.get("endpoint", "")


# --- the database's gauges ----------------------------------------------------------------------------------------

def test_cases_by_status_and_overdue_are_read_at_scrape_time(world, clock):
    open_cases(world, clock, n=3)  # transferred in March, looked at on 1 April: all overdue
    world.file()
    samples = scrape(world.client)
    with world.app.app_context():
        counts = dict(db.session.execute(sa.select(Ticket.status, sa.func.count()).group_by(Ticket.status)).all())
        overdue = db.session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(Ticket.overdue(clock.now)))
    assert counts == {"transferred": 3, "submitted": 1}
    for status in ("submitted", "accepted", "transferred", "closed", "merged"):
        assert value(samples, "banjie_cases", status=status) == counts.get(status, 0)
    assert value(samples, "banjie_cases_overdue") == overdue == 3


def test_escalation_steps_due_fired_and_sweep_time(world, clock):
    open_cases(world, clock, n=2)
    before = scrape(world.client)
    assert value(before, "banjie_escalation_steps_due") >= 2
    result = sweep(world)
    after = scrape(world.client)
    assert value(after, "banjie_escalation_steps_due") == 0
    for step, count in result.fired.items():
        assert value(after, "banjie_escalation_steps_fired_total", step=step) - \
            value(before, "banjie_escalation_steps_fired_total", step=step) == count
    assert value(after, "banjie_escalation_sweep_duration_seconds_count") - \
        value(before, "banjie_escalation_sweep_duration_seconds_count") == 1
    assert value(after, "banjie_heartbeat_age_seconds", name="sweeper") == 0


def test_texts_queued_sent_failed_and_the_providers_time(make_app, twilio):
    app = make_app(**twilio_config(twilio))
    world = seed_world(app, app.test_client())
    before = scrape(world.client)
    world.file()
    world.file(phone="13900139000")
    middle = scrape(world.client)
    assert value(middle, "banjie_sms_queued_total") - value(before, "banjie_sms_queued_total") == 2
    assert value(middle, "banjie_sms_outbox_pending") == 2
    twilio.fail_next(1, status=400, code=21211)  # the first is refused for good: an invalid number
    drain(app)
    after = scrape(world.client)
    delta = [value(after, name, **labels) - value(before, name, **labels) for name, labels in (
        ("banjie_sms_sent_total", {"backend": "twilio"}), ("banjie_sms_failed_total", {"backend": "twilio"}),
        ("banjie_sms_provider_duration_seconds_count", {"backend": "twilio", "outcome": "sent"}),
        ("banjie_sms_provider_duration_seconds_count", {"backend": "twilio", "outcome": "failed"}))]
    assert delta == [1, 1, 1, 1]
    assert value(after, "banjie_sms_outbox_pending") == 0
    assert value(after, "banjie_worker_messages_total", queue="sms", actor="deliver_sms", outcome="done") >= 2


def test_report_generation_is_timed(world, clock):
    from reports import metrics, operations

    before = scrape(world.client)
    with world.app.app_context():
        operations.get_or_generate(db.session, metrics.Month.parse("2026-10"), trigger=operations.MANUAL)
        db.session.commit()
    after = scrape(world.client)
    assert value(after, "banjie_report_generation_duration_seconds_count") - \
        value(before, "banjie_report_generation_duration_seconds_count") == 1


# --- a metric never breaks the action -----------------------------------------------------------------------------

def test_a_broken_metric_is_logged_once_and_the_filing_goes_on(world, monkeypatch, caplog):
    from notify import outbox

    broken = prometheus_client.Counter("broken_for_the_test", "needs a label it is never given", ["x"],
                                       registry=prometheus_client.CollectorRegistry())
    monkeypatch.setattr(outbox, "SMS_QUEUED", broken)
    telemetry._failed.discard("updating metric broken_for_the_test")
    with caplog.at_level(logging.WARNING, logger="banjie.metrics"):
        for _ in range(3):
            world.file()
    assert [r.getMessage() for r in caplog.records if r.name == "banjie.metrics"] == [
        "updating metric broken_for_the_test failed (further failures of it are not logged)"]
    with world.app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 3


def test_a_failing_reader_leaves_the_rest_of_the_scrape(world, caplog):
    def broken(session, now):
        session.execute(sa.text("SELECT * FROM no_such_table"))
        yield from ()

    telemetry.reading(world.app, "broken-for-the-test", broken)
    telemetry._failed.discard("metric reader broken-for-the-test")  # logged once per process
    with caplog.at_level(logging.WARNING, logger="banjie.metrics"):
        samples = scrape(world.client)
    assert ("banjie_cases_overdue", ()) in samples and ("banjie_sms_outbox_pending", ()) in samples
    assert any("broken-for-the-test" in r.getMessage() for r in caplog.records)


# --- several processes: gunicorn workers and dramatiq workers on one host -----------------------------------------

class Stack:
    """gunicorn (2 workers) and `dramatiq worker` (2 processes) of this checkout, with one PROMETHEUS_MULTIPROC_DIR,
    JSON logs, Redis for the broker, PostgreSQL, the Twilio test server."""

    def __init__(self, tmp_path, env):
        self.tmp_path, self.env, self.processes = tmp_path, env, []
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self):
        bin_ = Path(sys.executable).parent
        self.web_log = open(self.tmp_path / "web.log", "wb")
        self.worker_log = open(self.tmp_path / "worker.log", "wb")
        self.processes.append(subprocess.Popen(
            [str(bin_ / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{self.port}", "--access-logfile", "-",
             "app:create_app()"], cwd=ROOT, env=self.env, stdout=self.web_log, stderr=subprocess.STDOUT,
            start_new_session=True))
        self.processes.append(subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "--processes", "2", "--threads", "2", "worker"], cwd=ROOT,
            env=self.env, stdout=self.worker_log, stderr=subprocess.STDOUT, start_new_session=True))
        wait_until(self._answers, timeout=60)

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.base}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.web_log.close()
        self.worker_log.close()

    def json_lines(self, name: str) -> list[dict]:
        lines = []
        for text in (self.tmp_path / name).read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(text))
            except ValueError:
                pass
        return lines


@pytest.mark.slow  # gunicorn and dramatiq worker processes
def test_one_hosts_processes_are_added_up(postgres_reset, redis_url, twilio, tmp_path):
    from tests.helpers import PG_URL

    postgres_reset()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    worker_metrics = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "DATABASE_URL": PG_URL, "BROKER_URL": redis_url, "SECRET_KEY": "multiprocess-test",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "METRICS_WORKER_ADDRESS": worker_metrics,
           "RATELIMIT_PUBLIC": "off", "SMS_TEST_NUMBERS": "",
           **{k: str(v) for k, v in twilio_config(twilio).items()}}
    env.pop("LOG_FORMAT", None)  # production (a broker) logs JSON by itself
    stack = Stack(tmp_path, env)
    stack.start()
    try:
        filings = 6
        twilio.fail_next(1, status=429)  # one text is retried: the worker logs it, with the filing's request id
        for number in range(filings):
            answer = requests.post(f"{stack.base}/api/v1/tickets", timeout=10, headers={"X-Request-ID": f"file-{number}"},
                                   json={"name": "张三", "phone": f"1380013{8000 + number}", "problem_type": "too_slow",
                                         "description": "营业执照变更一个月没结果。"})
            assert answer.status_code == 201 and answer.headers["X-Request-ID"] == f"file-{number}"
        wait_until(lambda: len(twilio.messages) == filings, timeout=60)
        time.sleep(0.5)  # the workers record the last sends after Twilio answered

        def web_scrape():
            response = requests.get(f"{stack.base}/metrics", timeout=10)
            assert response.status_code == 200
            return parse(response.text)

        samples = web_scrape()
        assert value(samples, "banjie_http_requests_total", endpoint="api.file_ticket", method="POST",
                     status="201") == filings
        assert value(samples, "banjie_sms_queued_total") == filings  # counted in the gunicorn workers
        assert value(samples, "banjie_sms_sent_total", backend="twilio") == filings  # in the dramatiq workers
        assert value(samples, "banjie_worker_messages_total", queue="sms", actor="deliver_sms", outcome="retry") == 1
        assert value(samples, "banjie_cases", status="submitted") == filings
        pids = {name.split("_")[-1] for name in os.listdir(metrics_dir)}
        assert len(pids) >= 3  # at least one gunicorn worker and both dramatiq worker processes wrote their values

        # a workers-only host: the first worker process serves the host's counters (the database's gauges are the web's)
        worker_samples = parse(requests.get(f"http://{worker_metrics}/metrics", timeout=5).text)
        assert value(worker_samples, "banjie_sms_sent_total", backend="twilio") == filings
        assert ("banjie_cases_overdue", ()) not in worker_samples
        assert requests.get(f"http://{worker_metrics}/other", timeout=5).status_code == 404
    finally:
        stack.stop()

    access = [line for line in stack.json_lines("web.log") if line.get("logger") == "gunicorn.access"]
    assert {line["request_id"] for line in access if line["path"] == "/api/v1/tickets"} == \
        {f"file-{number}" for number in range(filings)}
    retried = [line for line in stack.json_lines("worker.log") if "retrying" in line.get("message", "")]
    assert len(retried) == 1 and retried[0]["request_id"].startswith("file-")
    assert "13800138" not in (tmp_path / "worker.log").read_text() + (tmp_path / "web.log").read_text()
