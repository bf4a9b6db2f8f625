"""The production stack end to end: `make prod` (the Procfile under honcho: gunicorn, two Dramatiq worker processes,
the scheduler, each under deploy/respawn.py) on PostgreSQL, a Redis of its own, the official twilio SDK against the
Twilio test server and a webhook receiver, all on free local ports, driven over HTTP as a 12345 platform would.

1. `make prod` refuses without a database, before starting anything; with one it migrates and starts; /readyz 200.
2. The integration: a staff user and two tokens (one limited to filing, one to actions) and a webhook subscription,
   made with the CLI; a filing sent twice with one Idempotency-Key is one case; accept, transfer.
3. A deadline passes with the clock moved. No fake clock reaches production processes, so the case's handling
   deadline and its ladder steps are moved into the past with SQL, by the same amount (what a week going by would
   have done to them): deterministic, and the sweeper, the outbox and Twilio see an ordinary overdue case. The
   supervisor's 督办 text arrives at the Twilio test server; every status change and the escalation arrive at the
   receiver, signed. /readyz and /metrics answer.
4. Redis stops: /readyz turns 503, filing still works; Redis returns: /readyz 200, and what waited is sent.
5. `kill -9` of a Dramatiq worker process and of the scheduler: both come back (new process ids), /readyz is 200
   again and new work is processed.
At the end nothing is lost or repeated: each text once at Twilio (by provider id), each webhook delivery once at the
receiver (by delivery id), and no phone number in any log line of the stack.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from app import create_app
from tests.helpers import BASE_CONFIG, PG_ADMIN_URL, clear, PG_TEST_DB, free_port, service_missing
from tests.sms_support import ACCOUNT_SID, AUTH_TOKEN, SENDER
from tests.twilio_server import QuietRequestHandler, TwilioTestServer
from tickets.db import db

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
DATABASE = f"{PG_TEST_DB}_stack"
SECRET = "stack-webhook-secret-0123456789"
METRICS_TOKEN = "stack-metrics-token"
CITIZENS = ["+8613900139001", "+8613900139002", "+8613900139003", "+8613900139004"]
SUPERVISOR = "+8613800138009"
WAIT = 60.0  # seconds for any one wait; the whole test takes about 90 s on a quiet two-core machine


def wait_for(what: str, condition, timeout: float = WAIT, logs=None):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}" + (logs() if logs else ""))
        time.sleep(0.2)


# --- processes, as /proc shows them ----------------------------------------------------------------------------------

def process_table() -> dict[int, tuple[int, list[str]]]:
    """pid -> (parent pid, argv) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry)] = (parent, [part for part in argv if part])
    return table


def descendants(pid: int) -> dict[int, tuple[int, list[str]]]:
    table = process_table()
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, argv) in table.items():
            if ppid == parent and child not in found:
                found[child] = (ppid, argv)
                frontier.append(child)
    return found


def dramatiq_workers(tree) -> set[int]:
    """Dramatiq's worker processes: children of a dramatiq main process."""
    return {pid for pid, (parent, argv) in tree.items()
            if "dramatiq" in argv and parent in tree and "dramatiq" in tree[parent][1]}


def schedulers(tree) -> set[int]:
    return {pid for pid, (_, argv) in tree.items()
            if argv and argv[-1].endswith("scheduler.py") and not any("respawn" in part for part in argv)}


# --- what the stack talks to -----------------------------------------------------------------------------------------

class RedisServer:
    """A redis-server of the test's own (so that it can be stopped), without persistence."""

    def __init__(self, log_dir: Path):
        self.port, self.log_dir, self.process = free_port(), log_dir, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        import redis

        with open(self.log_dir / "redis.log", "a") as log:  # the server writes to its own copy of the file
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)

        def answers():
            try:
                return client.ping()
            except redis.exceptions.ConnectionError:
                return False

        wait_for("redis-server to answer", answers, timeout=15)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Receiver:
    """An integration's webhook endpoint: records each request and whether its signature verifies."""

    def __init__(self, secret: str):
        self.secret, self.received, self.lock = secret, [], threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.respond, threaded=True, request_handler=QuietRequestHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/banjie-events"

    def respond(self, environ, start_response):
        request = Request(environ)
        body = request.get_data()
        timestamp = request.headers.get("X-Banjie-Timestamp", "")
        expected = "sha256=" + hmac.new(self.secret.encode(), f"{timestamp}.".encode() + body,
                                        hashlib.sha256).hexdigest()
        with self.lock:
            self.received.append({
                "delivery": request.headers.get("X-Banjie-Delivery"), "event": request.headers.get("X-Banjie-Event"),
                "signed": hmac.compare_digest(expected, request.headers.get("X-Banjie-Signature", "")),
                "body": json.loads(body or b"null")})
        return Response("ok")(environ, start_response)

    def events(self, tracking_no: str) -> list[dict]:
        with self.lock:
            return [r for r in self.received if (r["body"] or {}).get("ticket", {}).get("tracking_no") == tracking_no]

    def changes(self, tracking_no: str) -> list[str]:
        """The statuses the case's `status_changed` deliveries announced, in the order the events happened."""
        found = sorted((r["body"]["event"]["at"], r["body"]["event"]["to_status"]) for r in self.events(tracking_no)
                       if r["event"] == "status_changed")
        return [status for _, status in found]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


# --- the stack -------------------------------------------------------------------------------------------------------

class Stack:
    """`make prod` in a process group of its own, its output in a file, and the ways to reach what it started."""

    def __init__(self, env: dict, tmp_path: Path):
        self.env, self.log_path, self.make = env, tmp_path / "stack.log", None
        self.base = f"http://127.0.0.1:{env['PORT']}"
        self.http = requests.Session()

    def make_prod(self, **extra) -> subprocess.Popen:
        # -o: the suite's venv is installed already (make test did it); the stack must not reinstall packages under a
        # running suite. Everything else is `make prod` as an operator runs it.
        with open(self.log_path, "a") as log:
            return subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed-run", "prod"], cwd=ROOT,
                                    env={**self.env, **extra}, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def start(self) -> None:
        self.make = self.make_prod()

    def logs(self) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n--- the stack's log (last lines) ---\n" + "\n".join(lines[-60:])

    def tree(self):
        return descendants(self.make.pid)

    def ready(self) -> int:
        try:
            return self.http.get(self.base + "/readyz", timeout=5).status_code
        except requests.RequestException:
            return 0

    def stop(self) -> None:
        if self.make is None:
            return
        left = self.tree()
        try:
            os.killpg(self.make.pid, signal.SIGTERM)  # make and honcho; honcho stops each process, each respawn its own
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in left):
            time.sleep(0.2)
        for pid in left:  # whatever did not stop in time (it would hold the port for the next run)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.make.wait(timeout=10)


@pytest.fixture
def services(tmp_path, twilio):
    """A new database, a Redis of the test's own, the Twilio test server, a webhook receiver."""
    try:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{DATABASE}"'))
    except sa.exc.OperationalError as error:
        service_missing("PostgreSQL", str(error).splitlines()[0])
    if subprocess.run(["which", "redis-server"], capture_output=True).returncode != 0:
        service_missing("redis-server", "not installed (apt-get install redis-server)")
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    try:
        with Receiver(SECRET) as receiver:
            yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + DATABASE, redis_server, twilio, receiver
    finally:
        redis_server.stop()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def stack(services, tmp_path):
    database_url, redis_server, twilio, receiver = services
    port = free_port()
    (tmp_path / "metrics").mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("FLASK_", "SMS_", "TWILIO_", "WEBHOOK_", "METRICS_", "READY_", "LOG_", "PROMETHEUS_",
                                  "WEB_", "WORKER_", "MAKE", "MFLAGS"))}
    env.update({
        "DATABASE_URL": database_url, "BROKER_URL": f"{redis_server.url}/0",
        "RATELIMIT_STORAGE_URI": f"{redis_server.url}/1", "SECRET_KEY": "stack-test-secret-key",
        "HOST": "127.0.0.1", "PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": SENDER, "TWILIO_API_BASE": twilio.url, "SMS_QUIET_HOURS": "", "SMS_TEST_NUMBERS": "",
        "SWEEP_INTERVAL_SECONDS": "1", "WEB_WORKERS": "2", "WORKER_PROCESSES": "2", "WORKER_THREADS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "METRICS_TOKEN": METRICS_TOKEN, "LOG_FORMAT": "json",
        "READY_CACHE_SECONDS": "0", "WEBHOOK_BACKOFF_SECONDS": "1", "WEBHOOK_BACKOFF_MAX_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
    })
    stack = Stack(env, tmp_path)
    try:
        yield stack
    finally:
        stack.stop()


def cli_app(env: dict):
    """The app of the stack's settings, in this process, for its CLI commands (as an operator runs them)."""
    return create_app({**BASE_CONFIG, **{name: env[name] for name in (
        "DATABASE_URL", "BROKER_URL", "SECRET_KEY", "PUBLIC_BASE_URL", "SMS_BACKEND", "TWILIO_API_BASE")}})


def run_cli(app, *args) -> str:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, f"flask {' '.join(args)}: {result.output}"
    return result.output


def move_deadline_into_the_past(engine, tracking_no: str) -> None:
    """What a week going by does to a case's handling deadline: its rows and ladder steps moved back in time, by the
    amount that puts the supervisor's step (督办, at the deadline) a moment ago."""
    with engine.begin() as connection:
        ticket_id, due_at = connection.execute(sa.text("SELECT id, due_at FROM ticket WHERE tracking_no = :no"),
                                               {"no": tracking_no}).one()
        deadline = connection.execute(sa.text(
            "SELECT id, round, due_at FROM deadline WHERE ticket_id = :id AND kind = 'handle' AND ended_at IS NULL"),
            {"id": ticket_id}).one()
        shift = connection.scalar(sa.text(
            "SELECT due_at - now() + interval '2 seconds' FROM escalation_step"
            " WHERE ticket_id = :id AND kind = 'handle' AND round = :round AND step = 'supervisor'"),
            {"id": ticket_id, "round": deadline.round})
        connection.execute(sa.text(
            "UPDATE deadline SET started_at = started_at - :shift, due_at = due_at - :shift,"
            " original_due_at = original_due_at - :shift WHERE id = :id"), {"shift": shift, "id": deadline.id})
        connection.execute(sa.text(
            "UPDATE escalation_step SET due_at = due_at - :shift"
            " WHERE ticket_id = :id AND kind = 'handle' AND round = :round AND fired_at IS NULL"
            " AND cancelled_at IS NULL"), {"shift": shift, "id": ticket_id, "round": deadline.round})
        if due_at == deadline.due_at:
            connection.execute(sa.text("UPDATE ticket SET due_at = due_at - :shift WHERE id = :id"),
                               {"shift": shift, "id": ticket_id})


@pytest.fixture
def engine(services):
    engine = sa.create_engine(services[0])
    yield engine
    engine.dispose()


def test_make_prod_runs_the_stack_end_to_end_and_recovers_from_kill_9(stack, services, engine):
    database_url, redis_server, twilio, receiver = services

    # 1. Refused when the database does not answer, before anything starts: no migration, no process.
    refused = stack.make_prod(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/banjie")
    assert refused.wait(timeout=60) != 0
    log = stack.log_path.read_text()
    assert "refused: DATABASE_URL" in log and "does not answer" in log, log
    assert "db upgrade" not in log and "honcho" not in log, log
    stack.start()
    wait_for("/readyz to answer 200", lambda: stack.ready() == 200, timeout=120, logs=stack.logs)

    # 2. The 12345 platform's account, tokens and subscription, with the CLI.
    app = cli_app(stack.env)
    run_cli(app, "departments", "create", "zjj", "--name", "住建局", "--supervisor-phone", SUPERVISOR)
    run_cli(app, "users", "create", "hotline12345", "--role", "office", "--no-password")
    filing_token = run_cli(app, "users", "token", "hotline12345", "--label", "12345", "--scope", "file").strip()
    acting_token = run_cli(app, "users", "token", "hotline12345", "--label", "12345", "--scope", "act").strip()
    run_cli(app, "webhooks", "add", receiver.url, "--events", "created,status_changed,escalated", "--secret", SECRET)
    with app.app_context():
        department_id = db.session.scalar(sa.text("SELECT id FROM department WHERE code = 'zjj'"))
    with app.app_context():
        db.engine.dispose()
    http = stack.http

    def file(phone: str, reference: str, key: str):
        return http.post(stack.base + "/api/v1/tickets", timeout=30, headers={
            "Authorization": f"Bearer {filing_token}", "Idempotency-Key": key}, json={
            "name": "王先生", "phone": phone, "problem_type": "too_slow", "source": "12345",
            "external_ref": reference, "description": "办理不动产登记已经两个月，窗口一直说等通知。"})

    def act(tracking_no: str, action: str, **body):
        answer = http.post(f"{stack.base}/api/v1/staff/tickets/{tracking_no}/{action}", json=body, timeout=30,
                           headers={"Authorization": f"Bearer {acting_token}"})
        assert answer.status_code == 200, answer.text
        return answer.json()

    key = str(uuid.uuid4())
    first, again = file(CITIZENS[0], "GD-20261201-0001", key), file(CITIZENS[0], "GD-20261201-0001", key)
    assert first.status_code == 201, first.text
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["tracking_no"] == first.json()["tracking_no"]
    case = first.json()["tracking_no"]
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM ticket WHERE external_ref = 'GD-20261201-0001'")) == 1
    act(case, "accept")
    act(case, "transfer", department_id=department_id)

    # 3. The deadline passes: the supervisor is texted once, and the receiver hears of everything, signed.
    move_deadline_into_the_past(engine, case)
    wait_for("the 督办 text at Twilio", lambda: twilio.count_for(SUPERVISOR) == 1, logs=stack.logs)

    wait_for("the webhooks of the first case", lambda: receiver.changes(case)[-1:] == ["transferred"]
             and {"created", "escalated"} <= {r["event"] for r in receiver.events(case)}, logs=stack.logs)
    assert all(r["signed"] for r in receiver.received)
    assert stack.ready() == 200
    metrics = http.get(stack.base + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10)
    assert metrics.status_code == 200
    for name in ("banjie_http_requests_total", "banjie_worker_messages_total", "banjie_escalation_sweep_duration"):
        assert name in metrics.text, name
    assert http.get(stack.base + "/metrics", timeout=10).status_code in (401, 403)  # not without the token

    # 4. Redis stops: not ready, yet filing works; Redis returns: ready, and what waited goes out.
    redis_server.stop()
    wait_for("/readyz to say 503", lambda: stack.ready() == 503, timeout=30, logs=stack.logs)
    during = file(CITIZENS[1], "GD-20261201-0002", str(uuid.uuid4()))
    assert during.status_code == 201, during.text
    redis_server.start()
    wait_for("/readyz to be 200 with Redis back", lambda: stack.ready() == 200, logs=stack.logs)

    # 5. kill -9 a worker process and the scheduler: both come back and work goes on.
    tree = stack.tree()
    workers, [scheduler] = dramatiq_workers(tree), schedulers(tree)
    assert len(workers) == 2, tree
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    os.kill(scheduler, signal.SIGKILL)

    def recovered():
        now = stack.tree()
        return (len(dramatiq_workers(now)) == 2 and victim not in dramatiq_workers(now)
                and len(schedulers(now)) == 1 and scheduler not in schedulers(now))

    wait_for("a new worker process and a new scheduler", recovered, logs=stack.logs)
    wait_for("/readyz 200 after the restarts", lambda: stack.ready() == 200, logs=stack.logs)
    after = file(CITIZENS[2], "GD-20261201-0003", str(uuid.uuid4()))
    assert after.status_code == 201, after.text
    act(after.json()["tracking_no"], "accept")

    # Everything went out once: the texts (the receipt filed while Redis was away re-driven), the webhooks.
    def rows(sql):
        with engine.connect() as connection:
            return [(clear(phone, "sms_message.phone") if sql.startswith("SELECT phone") else phone, other)
                    for phone, other in connection.execute(sa.text(sql)).all()]

    wait_for("every text sent", lambda: {phone for phone, sid in rows("SELECT phone, provider_sid FROM sms_message")
                                         if sid} >= set(CITIZENS[:3]) | {SUPERVISOR}
             and all(sid for _, sid in rows("SELECT phone, provider_sid FROM sms_message")), timeout=90,
             logs=stack.logs)
    wait_for("every webhook delivered", lambda: receiver.events(during.json()["tracking_no"])
             and receiver.changes(after.json()["tracking_no"])[-1:] == ["accepted"]
             and {status for _, status in rows("SELECT uuid, status FROM webhook_delivery")} == {"delivered"},
             timeout=90, logs=stack.logs)
    texts = rows("SELECT phone, provider_sid FROM sms_message")
    sids = [message["sid"] for message in twilio.messages]
    assert twilio.duplicates() == {} and len(sids) == len(set(sids)) == len(texts)
    assert {sid for _, sid in texts} == set(sids)
    assert twilio.count_for(SUPERVISOR) == 1
    deliveries = [r["delivery"] for r in receiver.received]
    # At least once with a stable id: a delivery may arrive again only when a worker was killed while sending it,
    # which leaves its first attempt without an answer.
    unanswered = {uuid for uuid, in rows("SELECT d.uuid FROM webhook_delivery d JOIN webhook_attempt a "
                                         "ON a.delivery_id = d.id WHERE a.status_code IS NULL")}
    repeated = {d for d in deliveries if deliveries.count(d) > 1}
    assert repeated <= unanswered, "a webhook delivery arrived twice"
    assert {delivery for delivery, _ in rows("SELECT uuid, status FROM webhook_delivery")} == set(deliveries)
    assert all(r["signed"] for r in receiver.received)
    with engine.connect() as connection:  # every status change of the case after its filing, as its history has them
        history = connection.scalars(sa.text(
            "SELECT e.to_status FROM event e JOIN ticket t ON t.id = e.ticket_id WHERE t.tracking_no = :no"
            " AND e.from_status IS NOT NULL AND e.to_status <> e.from_status ORDER BY e.at, e.id"), {"no": case}).all()
    assert receiver.changes(case) == history == ["accepted", "transferred"]

    log = stack.log_path.read_text(errors="replace")
    leaked = [phone for phone in CITIZENS + [SUPERVISOR] if re.sub(r"^\+86", "", phone) in log]
    assert leaked == [], "phone numbers in the stack's log"
    # every line the stack's processes wrote is one JSON object (LOG_FORMAT=json): the app's, gunicorn's master,
    # dramatiq's main process (booting up; a worker process killed), respawn's (what it started again)
    lines = [match.groups() for match in re.finditer(r"^\d\d:\d\d:\d\d (web|worker|scheduler)\.\d+\s+\| (.*)$", log, re.M)]
    not_json = [f"{name}: {line}" for name, line in lines if not _is_json_object(line)]
    assert lines and not not_json, "\n".join(not_json[:20])
    said = {json.loads(line).get("logger") for _name, line in lines}
    assert {"gunicorn.error", "dramatiq.MainProcess", "banjie.respawn"} <= said, said


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False
