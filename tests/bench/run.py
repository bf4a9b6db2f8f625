"""Filing benchmark: POST /api/v1/tickets under gunicorn against PostgreSQL, with concurrent clients.

`make bench` runs it. For each gunicorn configuration it starts the real stack (gunicorn + the app +
PostgreSQL database `banjie_bench` (`--database`), dropped and rebuilt at the start of every run, + Redis
for the broker and the rate limiter, as in production), warms it up, then measures

  * filing:  POST /api/v1/tickets with a varied mainland mobile number, every answer must be 201;
  * ceiling: GET /api/v1/problem-types (no database) on the same stack, every answer must be 200;
  * bare:    the same POSTs, clients and wrk script against tests/bench/bare_app.py, a minimal Flask app
             served by the same gunicorn configuration whose POST does one INSERT of a ticket-wide row
             into the same database and a commit with psycopg: the most a filing endpoint can do here.
             The product's tickets/s divided by the bare app's is the ratio the goal is set on.

Each phase is bounded by a request count and a duration, whichever ends first. Load comes from `wrk`
(with tests/bench/wrk_filing.lua) when it is installed, else from Python threads that each keep one
HTTP/1.1 connection open. Both run on this machine against 127.0.0.1, so the client shares the CPUs
with gunicorn and PostgreSQL; the CPU split printed under each table says how much it took.

After each filing phase the database is checked: the new tickets must match the 201s received, every
tracking number received must be in the database, and no tracking number may repeat; for the product
also that every filing wrote its acceptance deadline, its filing event, its receipt SMS row and its
escalation step, and enqueued the receipt on the Redis broker.

With `--photo` (or `--photo-only`, which `make bench-photo` runs) the product's server also measures

  * photo:   POST /api/v1/tickets as multipart/form-data, the same fields plus one 12-megapixel phone photo
             (a JPEG of about 3.0 MB with EXIF and GPS, made once at the start), every answer must be 201;

and reads each gunicorn worker's peak resident memory (VmHWM) before its first photo and after the phase. The
database must then hold, for every 201, exactly one attachment with its re-encoded file and its thumbnail.

The goal (issue 11, item 20): the product files at least a quarter of what the bare app files, with
p99 < 60 ms, at 16 concurrent clients, in the production configuration (`--setup production`).
Results also go to bench-results/filing.json (bench-results/filing-photo.json with --photo-only). Exit status 1
on any non-201/200 answer or failed check, 2 when the stack cannot be set up; with --check-goal also 1 when the
recommended configuration misses the goal.
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BIN = ROOT / ".venv" / "bin"
WRK_SCRIPT = HERE / "wrk_filing.lua"
WRK_PHOTO_SCRIPT = HERE / "wrk_photo.lua"  # the photo phase's multipart filings; builds on wrk_filing.lua
RESULTS = ROOT / "bench-results" / "filing.json"
PHOTO_RESULTS = ROOT / "bench-results" / "filing-photo.json"
BARE_APP = "bare_app:create_app()"  # tests/bench/bare_app.py, imported with --pythonpath tests/bench
DEFAULT_DB = os.environ.get("BANJIE_BENCH_DB", "banjie_bench")
DEFAULT_ADMIN_URL = os.environ.get("BANJIE_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# The benchmark's own Redis database (flushed before each configuration): broker and rate-limit counts.
DEFAULT_REDIS_URL = os.environ.get("BANJIE_BENCH_REDIS", "redis://127.0.0.1:6379/5")
# Production limits, high enough that 16 clients from one address never reach them: each request still
# makes its round trip to the limiter's Redis, as in production.
BENCH_LIMIT = "1000000/minute"
DEFAULT_CONFIGS = ["sync:4", "gthread:2x4", "gthread:3x4", "gthread:4x2"]
# What we recommend for production on a 2-core host; tests/bench/README.md gives the reasons.
RECOMMENDED = "sync:4"
GOAL_RATIO, GOAL_P99_MS, GOAL_CLIENTS = 0.25, 60.0, 16  # product tickets/s >= 0.25 x bare, p99 < 60 ms

FILING_PATH = "/api/v1/tickets"
CEILING_PATH = "/api/v1/problem-types"
NAMES = ["张三", "李四", "王五", "赵六", "陈晓明", "刘芳", "周杰", "吴敏"]
DESCRIPTIONS = ["营业执照变更办了一个月还没有结果，窗口说系统有问题。",
                "社保转移材料交了三次，每次都说缺一样东西。",
                "不动产登记预约不上，网上一直显示没有号。"]
PROBLEM_TYPES = ["too_slow", "cannot_handle", "too_hard", "other"]
# Mainland mobile prefixes; 154 is unallocated. run.py checks them with the app's own parser before use.
MOBILE_PREFIXES = [str(p) for p in itertools.chain(range(130, 140), range(150, 160), range(180, 190)) if p != 154]


# --- configuration ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    worker_class: str
    workers: int
    threads: int

    @classmethod
    def parse(cls, spec: str) -> "Config":
        """`sync:4` (4 sync workers) or `gthread:2x4` (2 workers of 4 threads)."""
        match = re.fullmatch(r"(sync|gthread):(\d+)(?:x(\d+))?", spec.strip())
        if not match:
            raise argparse.ArgumentTypeError(f"config {spec!r}: expected sync:<workers> or gthread:<workers>x<threads>")
        kind, workers, threads = match.group(1), int(match.group(2)), int(match.group(3) or 1)
        if kind == "sync" and threads != 1:
            raise argparse.ArgumentTypeError(f"config {spec!r}: sync workers have one thread")
        if workers < 1 or threads < 1:
            raise argparse.ArgumentTypeError(f"config {spec!r}: workers and threads must be >= 1")
        return cls(kind, workers, threads)

    @property
    def label(self) -> str:
        return f"sync:{self.workers}" if self.worker_class == "sync" else f"gthread:{self.workers}x{self.threads}"

    @property
    def description(self) -> str:
        if self.worker_class == "sync":
            return f"{self.workers} sync workers"
        return f"{self.workers} gthread workers x {self.threads} threads"

    def gunicorn_args(self) -> list[str]:
        args = ["-w", str(self.workers), "-k", self.worker_class]
        if self.worker_class == "gthread":
            args += ["--threads", str(self.threads)]
        return args


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (connections); default 16")
    parser.add_argument("--requests", type=int, default=6000, help="requests per measured phase; default 6000")
    parser.add_argument("--duration", type=float, default=15.0,
                        help="seconds per measured phase at most (whichever of --requests/--duration ends first); "
                             "default 15")
    parser.add_argument("--warmup", type=int, default=300, help="filing requests before measuring; default 300")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, metavar="SPEC",
                        help="gunicorn configurations: sync:<workers> or gthread:<workers>x<threads>, space or "
                             f"comma separated; default {' '.join(DEFAULT_CONFIGS)}")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator: wrk when installed (auto), or Python threads with keep-alive")
    parser.add_argument("--database-url", default=DEFAULT_ADMIN_URL,
                        help="admin connection to PostgreSQL; the benchmark database is created next to it "
                             f"(default {DEFAULT_ADMIN_URL}, or $BANJIE_BENCH_PG_ADMIN)")
    parser.add_argument("--database", default=DEFAULT_DB,
                        help=f"name of the benchmark database, dropped and rebuilt (default {DEFAULT_DB}, or "
                             "$BANJIE_BENCH_DB)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis database for the broker and the rate limiter, flushed before each configuration "
                             f"(default {DEFAULT_REDIS_URL}, or $BANJIE_BENCH_REDIS)")
    parser.add_argument("--setup", choices=("production", "embedded"), default="production",
                        help="production (default): BROKER_URL and RATELIMIT_STORAGE_URI on Redis, the public limits "
                             f"on at {BENCH_LIMIT}; embedded: no broker, limits off, counts in memory")
    parser.add_argument("--connection-close", action="store_true",
                        help="a new connection for every request (like many citizens filing once each) instead of "
                             "one keep-alive connection per client")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the GET /api/v1/problem-types phase")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare Flask + psycopg phase (and the ratio)")
    parser.add_argument("--photo", action="store_true",
                        help="also measure filing with one 12-megapixel photo (multipart/form-data, about 3.0 MB) on "
                             "the product's server, after its other phases, with each worker's peak memory")
    parser.add_argument("--photo-only", action="store_true",
                        help="only the photo phase (no JSON filing phase, ceiling or bare app); `make bench-photo`")
    parser.add_argument("--photo-warmup", type=int, default=16,
                        help="photo filings before the photo phase is measured (after the worker memory is read); "
                             "default 16")
    parser.add_argument("--photo-client", choices=("python", "wrk", "same"), default="python",
                        help="load generator of the photo phase: Python threads (default: plain closed-loop "
                             "latencies), wrk with tests/bench/wrk_photo.lua, or the same as --client")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"JSON results (default {RESULTS.relative_to(ROOT)}, with --photo-only "
                             f"{PHOTO_RESULTS.relative_to(ROOT)})")
    parser.add_argument("--check-goal", action="store_true",
                        help=f"exit 1 when {RECOMMENDED} files less than {GOAL_RATIO:g} x the bare app or p99 >= "
                             f"{GOAL_P99_MS:g} ms")
    args = parser.parse_args(argv)
    specs = [s for item in args.configs for s in item.split(",") if s.strip()]
    try:
        args.configs = [Config.parse(s) for s in specs]
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if args.clients < 1 or args.requests < 1 or args.duration <= 0 or args.warmup < 0 or args.photo_warmup < 0:
        parser.error("--clients, --requests and --duration must be positive, --warmup and --photo-warmup not negative")
    args.photo = args.photo or args.photo_only
    if args.output is None:
        args.output = PHOTO_RESULTS if args.photo_only else RESULTS
    return args


# --- database -----------------------------------------------------------------------------------------

def libpq_url(url: str) -> str:
    """psycopg wants postgresql://; SQLAlchemy-style postgresql+psycopg:// is accepted on the command line."""
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(libpq_url(url))
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def pg_connect(url: str):
    import psycopg
    return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5)


def recreate_database(admin_url: str, name: str) -> str:
    with pg_connect(admin_url) as connection:
        version = connection.execute("SHOW server_version").fetchone()[0]
        force = " WITH (FORCE)" if connection.info.server_version >= 130000 else ""
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')
        connection.execute(f'CREATE DATABASE "{name}"')
    return version


# Settings the benchmark decides; anything else of the app's (SETTINGS in app.py) is left at its default, so a
# value in the caller's environment cannot change what is measured.
# The benchmark's encryption keys (tickets/privacy/crypto.py): production refuses to start without them; fixed, not
# secret, so the product's filing encrypts and indexes as a deployment's does.
BENCH_PRIVACY = {"PRIVACY_KEYS": "bench1:YmFuamllLWJlbmNoLW5vdC1hLXNlY3JldC0zMmJ5dGU=",
                 "PRIVACY_INDEX_KEY": "YmFuamllLWJlbmNoLWluZGV4LW5vdC1hLXNlY3JldDM="}
APP_SETTINGS = ("DATABASE_URL", "BROKER_URL", "SECRET_KEY", *BENCH_PRIVACY, "RATELIMIT_PUBLIC", "RATELIMIT_LOOKUP",
                "RATELIMIT_STORAGE_URI", "SMS_BACKEND", "SMS_QUIET_HOURS", "PROXY_COUNT", "FLASK_DEBUG",
                "LOG_FORMAT", "LOG_LEVEL", "METRICS_ENABLED", "METRICS_TOKEN", "PROMETHEUS_MULTIPROC_DIR")


def app_settings(database_url: str, setup: str, redis_url: str) -> dict:
    """The app's configuration under test (printed and written to the results)."""
    settings = {"DATABASE_URL": database_url.replace("postgresql://", "postgresql+psycopg://", 1),
                "SECRET_KEY": "banjie-bench-not-a-secret", **BENCH_PRIVACY}
    if setup == "production":
        settings.update({"BROKER_URL": redis_url, "RATELIMIT_STORAGE_URI": redis_url,
                         "RATELIMIT_PUBLIC": BENCH_LIMIT, "RATELIMIT_LOOKUP": BENCH_LIMIT})
    else:
        settings.update({"BROKER_URL": "", "RATELIMIT_PUBLIC": "off"})
    return settings


def app_env(settings: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in APP_SETTINGS}
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def build_schema(settings: dict) -> None:
    # The demo office is loaded without a broker: its texts must not wait in the benchmark's Redis.
    env = app_env(settings | {"BROKER_URL": ""})
    flask = [str(BIN / "flask"), "--app", "app"]
    for command in (["db", "upgrade"], ["seed-demo"]):
        done = subprocess.run(flask + command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise SetupError(f"flask {' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    sys.path.insert(0, str(HERE))
    from bare_app import TABLE_SQL
    with pg_connect(settings["DATABASE_URL"]) as connection:
        connection.execute(TABLE_SQL)


def flush_redis(redis_url: str) -> None:
    import redis
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.exceptions.RedisError as error:
        raise SetupError(f"Redis at {redis_url}: {error}") from error
    finally:
        client.close()


def queued_receipts(redis_url: str) -> int:
    """Messages waiting on the broker's `sms` queue (no worker runs during the benchmark)."""
    import redis
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3)
    try:
        return client.hlen("dramatiq:sms.msgs")  # dramatiq's RedisBroker: namespace:queue.msgs holds the messages
    finally:
        client.close()


def ticket_count(db_url: str, table: str = "ticket") -> int:
    with pg_connect(db_url) as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


# What each filing must write besides its ticket (issue 11, item 20), counted before and after each filing phase.
FILING_ROWS = {
    "acceptance deadlines": "SELECT count(*) FROM deadline WHERE kind = 'accept'",
    "filing events": "SELECT count(*) FROM event WHERE action = 'file'",
    "receipt SMS rows": "SELECT count(*) FROM sms_message WHERE template = 'receipt'",
    "acceptance escalation steps": "SELECT count(*) FROM escalation_step WHERE kind = 'accept'",
}


def filing_rows(db_url: str) -> dict:
    with pg_connect(db_url) as connection:
        return {name: connection.execute(sql).fetchone()[0] for name, sql in FILING_ROWS.items()}


def settled_ticket_count(db_url: str, table: str = "ticket", timeout: float = 10.0) -> int:
    """The ticket count once it stops moving (wrk may leave a few filings in flight when it stops)."""
    last, stable_since, deadline = ticket_count(db_url, table), time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = ticket_count(db_url, table)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 0.6:
            break
    return last


def pg_db_stats(db_url: str) -> dict:
    with pg_connect(db_url) as connection:
        row = connection.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, sessions FROM pg_stat_database WHERE datname = "
            "current_database()").fetchone()
    return dict(zip(("xact_commit", "xact_rollback", "tup_inserted", "sessions"), row))


def check_filings(db_url: str, before: int, result: "PhaseResult", in_flight_allowance: int,
                  table: str = "ticket") -> dict:
    """New tickets vs 201s received, received numbers present, and no duplicate tracking number anywhere."""
    after = settled_ticket_count(db_url, table)
    created = after - before
    received = result.tracking_nos
    with pg_connect(db_url) as connection:
        total, distinct = connection.execute(f"SELECT count(*), count(DISTINCT tracking_no) FROM {table}").fetchone()
        found = connection.execute(f"SELECT count(*) FROM {table} WHERE tracking_no = ANY(%s)", (received,)).fetchone()[0]
    ok_201 = result.statuses.get(201, 0)
    unanswered = created - ok_201
    checks = {
        "tickets_before": before, "tickets_after": after, "tickets_created": created, "responses_201": ok_201,
        "tracking_nos_received": len(received), "tracking_nos_received_distinct": len(set(received)),
        "tracking_nos_received_in_db": found, "tickets_in_db": total, "tracking_nos_in_db_distinct": distinct,
        # wrk cut off by its -d duration leaves up to one request per connection in flight: filed, unanswered.
        "filed_but_unanswered_when_client_stopped": unanswered,
    }
    problems = []
    if not 0 <= unanswered <= in_flight_allowance:
        allowed = f" (at most {in_flight_allowance} may be in flight when wrk's -d ends)" if in_flight_allowance else ""
        problems.append(f"{created} tickets created but {ok_201} answered 201{allowed}")
    if len(received) != ok_201:
        problems.append(f"{ok_201} answers were 201 but {len(received)} carried a tracking number")
    if len(set(received)) != len(received):
        problems.append(f"{len(received) - len(set(received))} tracking numbers were handed out twice")
    if found != len(set(received)):
        problems.append(f"{len(set(received)) - found} tracking numbers received are not in the database")
    if distinct != total:
        problems.append(f"{total - distinct} duplicate tracking numbers in the database")
    checks["ok"] = not problems
    checks["problems"] = problems
    return checks


def check_filing_rows(db_url: str, rows_before: dict, created: int, redis_url: str | None, queued_before: int,
                      checks: dict) -> dict:
    """Every filing wrote each of FILING_ROWS once and, with a broker, enqueued its receipt after the commit."""
    rows_after = filing_rows(db_url)
    written = {name: rows_after[name] - rows_before[name] for name in FILING_ROWS}
    checks["rows_written"] = written
    for name, count in written.items():
        if count != created:
            checks["problems"].append(f"{created} tickets but {count} new {name}")
    if redis_url:
        queued = queued_receipts(redis_url) - queued_before
        checks["receipts_enqueued"] = queued
        if queued != written["receipt SMS rows"]:
            checks["problems"].append(f"{written['receipt SMS rows']} receipts written but {queued} enqueued")
    checks["ok"] = not checks["problems"]
    return checks


class SetupError(RuntimeError):
    pass


# --- gunicorn -----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn serving the product (`app:create_app()`) or, with `bare=True`, tests/bench/bare_app.py."""

    def __init__(self, config: Config, env: dict, bare: bool = False, extra_args: tuple = ()):
        self.config, self.env, self.bare, self.extra_args = config, env, bare, list(extra_args)
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-gunicorn-{config.worker_class}-", suffix=".log",
                                               delete=False)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Gunicorn":
        app = ["--pythonpath", str(HERE), BARE_APP] if self.bare else ["app:create_app()"]
        command = [str(BIN / "gunicorn"), *self.config.gunicorn_args(), "-b", f"127.0.0.1:{self.port}",
                   "--log-level", "warning", *self.extra_args, *app]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", CEILING_PATH)
                if connection.getresponse().status == 200:
                    connection.close()
                    # Every worker must be up, not just the first one to accept.
                    if len(self.worker_pids()) >= self.config.workers:
                        return
                connection.close()
            except OSError:
                pass
            time.sleep(0.2)
        raise SetupError(f"gunicorn did not answer on port {self.port} within {timeout:.0f} s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: the master and its workers only
                self.proc.wait(timeout=5)
        self.log.close()

    def cleanup_log(self) -> None:
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


# --- CPU accounting -----------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mib(pid: int) -> float:
    """Resident memory of a process in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def memory_mib(pid: int) -> dict:
    """A process's resident memory now (VmRSS) and at its peak (VmHWM), MiB; {} when it is gone."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line[2:5].lower()] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out


def workers_memory(server: "Gunicorn") -> dict:
    """Each gunicorn worker's {"rss", "hwm"} (MiB), by pid."""
    return {pid: memory_mib(pid) for pid in server.worker_pids()}


def _postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def _machine_cpu() -> tuple[float, float, float]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) / CLK_TCK, idle / CLK_TCK, fields[7] / CLK_TCK  # total, idle, steal


def _backend_of(pid: int, database: str) -> bool:
    """Whether a postgres process is a backend connected to `database` (its title names the database)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return f" {database} " in title


def cpu_snapshot(server: Gunicorn, database: str | None = None) -> dict:
    total, idle, steal = _machine_cpu()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once reaped
    pg = {pid: _proc_cpu(pid) for pid in _postgres_pids()}
    return {
        # Other tenants' databases on the same server count under "postgres"; this database's own backends here.
        "postgres_db": {pid: cpu for pid, cpu in pg.items() if database and _backend_of(pid, database)},
        "time": time.monotonic(), "machine_total": total, "machine_idle": idle, "machine_steal": steal,
        "gunicorn": sum(_proc_cpu(pid) for pid in [server.proc.pid, *server.worker_pids()]),
        "workers": {pid: _proc_cpu(pid) for pid in server.worker_pids()},
        "postgres": pg,
        "client": time.process_time() + children.ru_utime + children.ru_stime,
    }


def cpu_split(before: dict, after: dict) -> dict:
    """Cores used by each party during the phase (2.0 = both cores of a 2-core machine busy)."""
    wall = after["time"] - before["time"]
    pg = sum(v - before["postgres"].get(pid, 0.0) for pid, v in after["postgres"].items())
    pg_db = sum(v - before["postgres_db"].get(pid, 0.0) for pid, v in after["postgres_db"].items())
    busy = (after["machine_total"] - before["machine_total"]) - (after["machine_idle"] - before["machine_idle"])
    per = lambda seconds: round(seconds / wall, 2) if wall > 0 else 0.0  # noqa: E731
    return {"gunicorn": per(after["gunicorn"] - before["gunicorn"]), "postgres": per(pg),
            "client": per(after["client"] - before["client"]), "machine_busy": per(busy),
            "steal": per(after["machine_steal"] - before["machine_steal"]),
            # Each worker is one process, so one core at most (the GIL); uneven numbers mean uneven load.
            "per_worker": sorted((per(v - before["workers"].get(pid, 0.0)) for pid, v in after["workers"].items()),
                                 reverse=True),
            "cpu_seconds": {"gunicorn": round(after["gunicorn"] - before["gunicorn"], 3), "postgres": round(pg, 3),
                            "postgres_this_database": round(pg_db, 3),
                            "client": round(after["client"] - before["client"], 3)}}


# --- load generators ----------------------------------------------------------------------------------

@dataclass
class PhaseResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict
    transport_errors: int
    tracking_nos: list
    # False when wrk was cut off by --duration with requests still in flight (their tickets exist unanswered).
    drained: bool = True

    def errors(self, expected: int) -> int:
        return self.transport_errors + sum(n for code, n in self.statuses.items() if code != expected)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def random_phone(rng: random.Random) -> str:
    number = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
    return f"{number[:3]} {number[3:7]} {number[7:]}"


def filing_body(rng: random.Random) -> bytes:
    return json.dumps({"name": rng.choice(NAMES), "phone": random_phone(rng), "problem_type": rng.choice(PROBLEM_TYPES),
                       "description": rng.choice(DESCRIPTIONS)}, ensure_ascii=False).encode()


def check_prefixes() -> None:
    sys.path.insert(0, str(ROOT))
    from tickets.phones import normalise_mobile
    rng = random.Random(1)
    for prefix in MOBILE_PREFIXES:
        for _ in range(20):
            number = prefix + f"{rng.randrange(10**8):08d}"
            if normalise_mobile(f"{number[:3]} {number[3:7]} {number[7:]}") is None:
                raise SetupError(f"the app refuses generated mobile number {number}")


# --- filing with a photo -------------------------------------------------------------------------------

PHONE_PLACEHOLDER = b"138 0000 0000"  # the length of random_phone()'s numbers; replaced in every request


@dataclass(frozen=True)
class Upload:
    """The photo phase's multipart/form-data body, built once: `head` + a phone number + `tail`."""
    head: bytes
    tail: bytes
    content_type: str
    part: str            # the file's part name, as tickets/attachments.py names it
    photo_bytes: int
    photo_pixels: tuple
    path: Path           # the whole body with PHONE_PLACEHOLDER, for wrk
    phone_at: int        # 1-based offset of the placeholder in `path` (Lua's string.sub)


def upload_part_name() -> str:
    """The multipart part name the app reads files from: `PART` of tickets/attachments.py (`files[]`), or the older
    `FIELD` (`attachments`) when the code has no PART."""
    sys.path.insert(0, str(ROOT))
    from tickets import attachments
    return getattr(attachments, "PART", None) or attachments.FIELD


PHOTO_QUALITY = 88  # about 3.0 MB for the 12-megapixel photo below (tests/bench/attachments.py's 92: about 3.5 MB)


def make_photo() -> tuple[str, bytes]:
    """A 12-megapixel phone photo as tests/bench/attachments.py makes it (`make("jpeg12")`): 4032x3024 noise over a
    gradient, EXIF with a GPS position and orientation 6 (a portrait shot, turned upright by the app), saved at JPEG
    quality PHOTO_QUALITY: about 3.0 MB, a phone's usual size for 12 megapixels."""
    from PIL import Image
    import io
    width, height = 4032, 3024
    noise = Image.effect_noise((width // 4, height // 4), 64).convert("RGB").resize((width, height))
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 17.0)}
    exif[0x0112] = 6
    out = io.BytesIO()
    Image.blend(noise, gradient, 0.5).save(out, "JPEG", quality=PHOTO_QUALITY, exif=exif)
    return "IMG_0001.jpg", out.getvalue()


def build_upload(folder: Path) -> Upload:
    from PIL import Image
    import io
    name, photo = make_photo()
    with Image.open(io.BytesIO(photo)) as image:
        pixels = image.size
    part = upload_part_name()
    boundary = "----BanjieBench" + "".join(random.Random(7).choice("0123456789abcdef") for _ in range(24))

    def field(key: str, value: str) -> bytes:
        return (f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n').encode()

    head = field("name", NAMES[0]) + field("problem_type", PROBLEM_TYPES[0]) + field("description", DESCRIPTIONS[0]) \
        + f'--{boundary}\r\nContent-Disposition: form-data; name="phone"\r\n\r\n'.encode()
    tail = (f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="{part}"; filename="{name}"\r\n'
            f'Content-Type: image/jpeg\r\n\r\n').encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    path = folder / "photo-body.bin"
    path.write_bytes(head + PHONE_PLACEHOLDER + tail)
    return Upload(head, tail, f"multipart/form-data; boundary={boundary}", part, len(photo), pixels, path,
                  len(head) + 1)


# Per ticket filed in the photo phase: its attachments and how they are described. The stored bytes are read apart
# (PHOTO_BYTES_SQL): the store holds them encrypted (issue 19), so they are opened with the benchmark's key to be
# compared with the row's length and SHA-256.
PHOTO_CHECK_SQL = """
SELECT t.tracking_no, count(a.id),
       count(*) FILTER (WHERE a.content_type = 'image/jpeg' AND a.source = 'citizen' AND a.visible_to_citizen
                        AND a.event_id IS NOT NULL),
       min(a.width), min(a.height), min(a.size), max(a.size)
  FROM ticket t
  LEFT JOIN attachment a ON a.ticket_id = t.id
 WHERE t.tracking_no = ANY(%s)
 GROUP BY t.tracking_no
"""
# The file and thumbnail of each attachment of those tickets (ATTACHMENT_STORAGE=database, the default), row by row.
PHOTO_BYTES_SQL = """
SELECT t.tracking_no, a.size, a.sha256, b.data, th.data
  FROM ticket t
  JOIN attachment a ON a.ticket_id = t.id
  LEFT JOIN attachment_blob b ON b.key = a.blob_key
  LEFT JOIN attachment_blob th ON th.key = a.thumb_key
 WHERE t.tracking_no = ANY(%s)
"""


def stored_photos(db_url: str, received: list[str]) -> tuple[set, set, list[int]]:
    """The tickets whose file is stored as its row says (opened with the benchmark's key: length and SHA-256), those
    whose thumbnail is a JPEG smaller than the file, and the thumbnails' sizes; one row in memory at a time."""
    import hashlib

    from tickets.privacy.crypto import KeyRing

    ring = KeyRing.from_config(BENCH_PRIVACY)
    stored, thumbs, sizes = set(), set(), []
    with pg_connect(db_url) as connection, connection.transaction(), \
            connection.cursor(name="bench_photos") as cursor:  # a server-side cursor lives in a transaction
        cursor.execute(PHOTO_BYTES_SQL, (received,))
        for no, size, sha, data, thumb in cursor:
            data = ring.decrypt_bytes(data, "attachment_blob.data") if data is not None else None
            thumb = ring.decrypt_bytes(thumb, "attachment_blob.data") if thumb is not None else None
            if data is not None and len(data) == size and hashlib.sha256(data).hexdigest() == sha:
                stored.add(no)
            if thumb is not None:
                sizes.append(len(thumb))
                if thumb[:3] == b"\xff\xd8\xff" and data is not None and len(thumb) < len(data):
                    thumbs.add(no)
    return stored, thumbs, sizes


def attachment_counts(db_url: str) -> dict:
    with pg_connect(db_url) as connection:
        return {"attachments": connection.execute("SELECT count(*) FROM attachment").fetchone()[0],
                "blobs": connection.execute("SELECT count(*) FROM attachment_blob").fetchone()[0]}


def check_photos(db_url: str, before: dict, result: "PhaseResult", checks: dict, upload: Upload) -> dict:
    """Every 201 of the photo phase: exactly one attachment, its file and thumbnail in the store, the file's length
    and SHA-256 as recorded, the photo upright (EXIF orientation 6 applied); no attachment or blob besides."""
    received = result.tracking_nos
    with pg_connect(db_url) as connection:
        rows = connection.execute(PHOTO_CHECK_SQL, (received,)).fetchall()
    files, thumbnails, thumbnail_sizes = stored_photos(db_url, received)
    after = attachment_counts(db_url)
    created = {k: after[k] - before[k] for k in after}
    one = sum(1 for r in rows if r[1] == 1)
    stored = sum(1 for r in rows if r[1] == 1 and r[0] in files)
    thumbs = sum(1 for r in rows if r[1] == 1 and r[0] in thumbnails)
    described = sum(1 for r in rows if r[1] == 1 and r[2] == 1)
    # orientation 6: the stored photo is the sent one turned upright
    upright = sum(1 for r in rows if r[1] == 1 and (r[3], r[4]) == (upload.photo_pixels[1], upload.photo_pixels[0]))
    kept = [r for r in rows if r[1] == 1]
    photo = {"tickets_checked": len(rows), "with_exactly_one_attachment": one, "file_stored_as_recorded": stored,
             "thumbnail_stored": thumbs, "row_as_expected": described, "upright": upright,
             "attachments_created": created["attachments"], "blobs_created": created["blobs"],
             "kept_bytes": [min((r[5] for r in kept), default=0), max((r[6] for r in kept), default=0)],
             "thumbnail_bytes": [min(thumbnail_sizes, default=0), max(thumbnail_sizes, default=0)]}
    checks["photos"] = photo
    n = len(received)
    for what in ("with_exactly_one_attachment", "file_stored_as_recorded", "thumbnail_stored", "row_as_expected",
                 "upright"):
        if photo[what] != n:
            checks["problems"].append(f"{n} photo filings answered 201 but {photo[what]} {what.replace('_', ' ')}")
    if len(rows) != n:
        checks["problems"].append(f"{n} tracking numbers received but {len(rows)} tickets found")
    # Filed but unanswered (wrk cut off by its -d) would add attachments without a 201: allowed like the tickets.
    extra = checks["tickets_created"] - checks["responses_201"]
    if created["attachments"] != n + extra or created["blobs"] != 2 * (n + extra):
        checks["problems"].append(f"{n + extra} photo filings but {created['attachments']} attachment rows and "
                                  f"{created['blobs']} blobs created (expected one and two each)")
    checks["ok"] = not checks["problems"]
    return checks


def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))  # nearest rank
    return sorted_values[int(rank) - 1]


def python_load(port: int, mode: str, clients: int, max_requests: int, duration: float,
                close: bool = False, upload: Upload | None = None) -> PhaseResult:
    """`clients` threads, each with one keep-alive HTTP/1.1 connection (reopened if the server closes it).

    A request is only started while the count and the time allow, so none is left in flight. Mode `photo` sends
    `upload`'s multipart body with a different phone number each time (its parts written one after the other, not
    joined into a new 3 MB string per request).
    """
    tickets = itertools.count()
    start_gate = threading.Barrier(clients + 1)
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    transport_errors = [0]
    tracking: list[str] = []
    deadline = [0.0]
    headers = {"Content-Type": "application/json"}
    get_headers = {}
    if close:  # http.client reopens the connection by itself on the next request
        headers["Connection"] = get_headers["Connection"] = "close"
    if mode == "photo":
        photo_length = str(len(upload.head) + len(PHONE_PLACEHOLDER) + len(upload.tail))
        photo_headers = {"Content-Type": upload.content_type, "Content-Length": photo_length,
                         **({"Connection": "close"} if close else {})}

    def send_photo(connection, rng) -> None:
        connection.putrequest("POST", FILING_PATH, skip_accept_encoding=True)
        for key, value in photo_headers.items():
            connection.putheader(key, value)
        connection.endheaders(upload.head + random_phone(rng).encode())
        connection.send(upload.tail)

    def client(seed: int) -> None:
        rng = random.Random(seed)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, my_statuses, my_tracking, my_errors = [], {}, [], 0
        start_gate.wait()
        try:
            while next(tickets) < max_requests and time.perf_counter() < deadline[0]:
                body = filing_body(rng) if mode == "post" else None
                t0 = time.perf_counter()
                try:
                    if mode == "post":
                        connection.request("POST", FILING_PATH, body, headers)
                    elif mode == "photo":
                        send_photo(connection, rng)
                    else:
                        connection.request("GET", CEILING_PATH, headers=get_headers)
                    response = connection.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException):
                    my_errors += 1
                    connection.close()
                    continue
                mine.append(time.perf_counter() - t0)
                my_statuses[response.status] = my_statuses.get(response.status, 0) + 1
                if mode in ("post", "photo") and response.status == 201:
                    my_tracking.append(json.loads(data)["tracking_no"])
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)
                tracking.extend(my_tracking)
                transport_errors[0] += my_errors
                for code, n in my_statuses.items():
                    statuses[code] = statuses.get(code, 0) + n

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline[0] = started + duration
    start_gate.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    ms = lambda s: round(s * 1000, 2)  # noqa: E731
    return PhaseResult(len(latencies), elapsed, ms(percentile(latencies, 50)), ms(percentile(latencies, 90)),
                       ms(percentile(latencies, 99)), ms(latencies[-1] if latencies else 0.0), statuses,
                       transport_errors[0], tracking)


def wrk_load(port: int, mode: str, clients: int, max_requests: int, duration: float,
             close: bool = False, upload: Upload | None = None) -> PhaseResult:
    """wrk with tests/bench/wrk_filing.lua: one wrk thread (plenty for a few thousand requests/s) driving
    `clients` connections; the script ends the run once `max_requests` responses are in. Mode `photo`: the
    same with tests/bench/wrk_photo.lua, which sends `upload`'s body (read from its file) with varied phones."""
    # -d is only a safety net: the script stops sending at `duration`, waits for the answers, then ends wrk.
    script, script_mode, extra = WRK_SCRIPT, mode, []
    if mode == "photo":
        script, script_mode = WRK_PHOTO_SCRIPT, "post"
        extra = [str(upload.path), str(upload.phone_at), str(len(PHONE_PLACEHOLDER)), upload.content_type]
    command = ["wrk", "-t", "1", "-c", str(clients), "-d", f"{int(duration) + 40}s", "--timeout", "30s",
               "-s", str(script), f"http://127.0.0.1:{port}", "--", script_mode, str(max_requests),
               ",".join(MOBILE_PREFIXES), "close" if close else "keep-alive", str(duration), *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 90)
    line = next((l for l in done.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise SetupError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line[len("BENCH_JSON "):])
    errors = data["errors"]
    us = lambda v: round(v / 1000, 2)  # noqa: E731
    return PhaseResult(data["requests"], data["span_us"] / 1e6, us(data["latency_us"]["p50"]),
                       us(data["latency_us"]["p90"]), us(data["latency_us"]["p99"]), us(data["latency_us"]["max"]),
                       {int(k): v for k, v in data["statuses"].items()},
                       errors["connect"] + errors["read"] + errors["write"] + errors["timeout"], data["tracking_nos"],
                       drained=data["stopped_by_count"])


# --- machine ------------------------------------------------------------------------------------------

def machine_info(pg_version: str, client: str) -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip())
    except (OSError, ValueError):
        nproc = len(os.sched_getaffinity(0))
    info = {"nproc": nproc, "cpu_model": model, "postgresql": pg_version, "python": platform.python_version(),
            "kernel": platform.release(), "load_generator": client}
    try:
        quota = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota[0] != "max":
            info["cgroup_cpu_limit"] = round(int(quota[0]) / int(quota[1]), 2)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import gunicorn
        info["gunicorn"] = gunicorn.__version__
    except ImportError:
        pass
    if client == "wrk":
        info["wrk"] = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()[0].strip()
    info["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    return info


# --- the run ------------------------------------------------------------------------------------------

def measure(server: Gunicorn, name: str, mode: str, expected: int, args, load, db_url: str) -> dict:
    """One measured phase against a running server, with its CPU split and, for filings, the database checks.
    The photo phase first reads each worker's memory, then files `--photo-warmup` photos (not measured)."""
    table = "bench_bare_ticket" if server.bare else "ticket"
    filing = mode in ("post", "photo")
    product_filing = filing and not server.bare
    upload = args.upload if mode == "photo" else None
    extra: dict = {}
    if mode == "photo":
        load = photo_load(args, load)
        extra["client"] = "wrk (tests/bench/wrk_photo.lua)" if load is wrk_load else "Python threads (http.client)"
        extra["memory_before_photos"] = workers_memory(server)
        if args.photo_warmup:
            warm = python_load(server.port, "photo", args.clients, args.photo_warmup, 120, args.connection_close,
                               upload=upload)
            extra["photo_warmup"] = {"requests": warm.requests, "errors": warm.errors(201),
                                     "statuses": {str(k): v for k, v in sorted(warm.statuses.items())}}
        attachments_before = attachment_counts(db_url)
    before_count = ticket_count(db_url, table)
    if product_filing:
        rows_before = filing_rows(db_url)
        queued_before = queued_receipts(args.redis_url) if args.broker else 0
    cpu_before = cpu_snapshot(server, args.database)
    phase = load(server.port, mode, args.clients, args.requests, args.duration, args.connection_close, upload=upload)
    cpu_after = cpu_snapshot(server, args.database)
    if mode == "photo":
        extra["memory_after"] = workers_memory(server)
    endpoint = {"post": f"POST {FILING_PATH}", "get": f"GET {CEILING_PATH}",
                "photo": f"POST {FILING_PATH} + {upload.photo_bytes / 1e6:.1f} MB photo" if upload else ""}[mode]
    entry = {"endpoint": endpoint + (" (bare Flask + psycopg)" if server.bare else ""), "clients": args.clients,
             "requests": phase.requests, "seconds": round(phase.seconds, 2), "rps": round(phase.rps, 1),
             "p50_ms": phase.p50_ms, "p90_ms": phase.p90_ms, "p99_ms": phase.p99_ms, "max_ms": phase.max_ms,
             "errors": phase.errors(expected), "statuses": {str(k): v for k, v in sorted(phase.statuses.items())},
             "transport_errors": phase.transport_errors, "cpu_cores": cpu_split(cpu_before, cpu_after),
             "worker_rss_mib": [rss_mib(pid) for pid in server.worker_pids()],
             "loadavg_after": Path("/proc/loadavg").read_text().split()[:3]} | extra
    if filing:
        allowance = 0 if phase.drained else args.clients
        entry["db_check"] = check_filings(db_url, before_count, phase, allowance, table)
        if product_filing:
            check_filing_rows(db_url, rows_before, entry["db_check"]["tickets_created"],
                              args.redis_url if args.broker else None, queued_before, entry["db_check"])
        if mode == "photo":
            check_photos(db_url, attachments_before, phase, entry["db_check"], upload)
    return entry


def photo_load(args, load):
    """The photo phase's load generator (--photo-client): Python threads by default. At 5-20 filings/s either
    client costs little, and Python's latencies are the closed loop's own, without wrk's correction for
    coordinated omission, which adds samples whenever an answer takes twice the mean (answers queued behind
    four busy workers often do)."""
    if args.photo_client == "python":
        return python_load
    if args.photo_client == "wrk" and shutil.which("wrk"):
        return wrk_load
    return load


def serve_phases(server: Gunicorn, phases, args, load, db_url: str, result: dict) -> None:
    """Start `server`, warm it up with filings, measure `phases` (name, mode, expected status), stop it."""
    table = "bench_bare_ticket" if server.bare else "ticket"
    try:
        with server:
            # PostgreSQL publishes a backend's counters late (up to 10 s when idle, at the latest when it exits),
            # so the per-filing figures span the whole server's life and are read after gunicorn has stopped.
            pg_start, tickets_start = pg_db_stats(db_url), ticket_count(db_url, table)
            if args.warmup:
                warm = python_load(server.port, "post", args.clients, args.warmup, 60, args.connection_close)
                result.setdefault("warmup", {})["bare" if server.bare else "product"] = {
                    "requests": warm.requests, "errors": warm.errors(201),
                    "statuses": {str(k): v for k, v in sorted(warm.statuses.items())}}
            for name, mode, expected in phases:
                result["phases"][name] = measure(server, name, mode, expected, args, load, db_url)
        filed = ticket_count(db_url, table) - tickets_start
        time.sleep(0.2)  # exiting backends flush their statistics
        pg_end = pg_db_stats(db_url)
        filing = "bare" if server.bare else "filing"
        if filed and filing in result["phases"]:
            result["phases"][filing]["postgres_per_filing"] = {
                key: round((pg_end[key] - pg_start[key]) / filed, 3) for key in pg_end
            } | {"filings": filed}
            photo = result["phases"].get("photo")
            if filing == "filing" and photo:  # the server's whole life: its photo filings are in these figures too
                result["phases"][filing]["postgres_per_filing"]["photo_filings_included"] = \
                    photo["db_check"]["tickets_created"] + photo.get("photo_warmup", {}).get("requests", 0)
        if "Traceback" in server.log_tail(200):
            result.setdefault("gunicorn_log_tail", {})["bare" if server.bare else "product"] = server.log_tail(40)
    finally:
        server.cleanup_log()


def run_config(config: Config, args, env: dict, bare_env: dict, db_url: str, load) -> dict:
    result: dict = {"config": config.label, "description": config.description, "phases": {}}
    if args.broker:
        flush_redis(args.redis_url)  # the limiter's counts and the queued receipts of the previous configuration
    product = [] if args.photo_only else [("filing", "post", 201)]
    if not args.no_ceiling and not args.photo_only:
        product.append(("ceiling", "get", 200))
    if args.photo:  # last: the JSON phases' figures stay those of a server that has not handled a photo yet
        product.append(("photo", "photo", 201))
    serve_phases(Gunicorn(config, env), product, args, load, db_url, result)
    if not args.no_bare and not args.photo_only:
        serve_phases(Gunicorn(config, bare_env, bare=True), [("bare", "post", 201)], args, load, db_url, result)
        filing, bare = result["phases"].get("filing"), result["phases"].get("bare")
        if filing and bare and bare["rps"] > 0:
            result["ratio_to_bare"] = round(filing["rps"] / bare["rps"], 3)
    return result


def goal_met(result: dict) -> bool | None:
    """Filing at >= GOAL_RATIO of the bare app's rate with p99 < GOAL_P99_MS, without errors; None without a bare run."""
    filing, ratio = result["phases"].get("filing"), result.get("ratio_to_bare")
    if filing is None or ratio is None:
        return None
    return filing["clients"] >= GOAL_CLIENTS and ratio >= GOAL_RATIO and filing["p99_ms"] < GOAL_P99_MS \
        and filing["errors"] == 0


def print_db_check(name: str, check: dict) -> None:
    verdict = "OK" if check["ok"] else "FAILED: " + "; ".join(check["problems"])
    extra = (f", {check['filed_but_unanswered_when_client_stopped']} filed but unanswered when wrk's duration ended"
             if check["filed_but_unanswered_when_client_stopped"] else "")
    rows = ""
    if "rows_written" in check:
        rows = "; per ticket also " + ", ".join(f"{n} {what}" for what, n in check["rows_written"].items())
        if "receipts_enqueued" in check:
            rows += f", {check['receipts_enqueued']} receipts enqueued on the broker"
    photos = ""
    if "photos" in check:
        p = check["photos"]
        photos = (f"; photos: {p['with_exactly_one_attachment']}/{p['tickets_checked']} tickets with exactly one "
                  f"attachment, {p['file_stored_as_recorded']} with its file stored (length and SHA-256 as recorded), "
                  f"{p['thumbnail_stored']} with its thumbnail, {p['upright']} upright; {p['attachments_created']} "
                  f"attachment rows and {p['blobs_created']} blobs created; kept "
                  f"{p['kept_bytes'][0] / 1e6:.2f}-{p['kept_bytes'][1] / 1e6:.2f} MB, thumbnails "
                  f"{p['thumbnail_bytes'][0] / 1e3:.0f}-{p['thumbnail_bytes'][1] / 1e3:.0f} KB")
    print(f"  {name} db check: {check['tickets_created']} rows created for {check['responses_201']} answers 201{extra}; "
          f"{check['tracking_nos_received_distinct']}/{check['tracking_nos_received']} tracking numbers distinct, "
          f"all in the db: {check['tracking_nos_received_in_db'] == check['tracking_nos_received_distinct']}; "
          f"{check['tracking_nos_in_db_distinct']}/{check['tickets_in_db']} distinct in the table{rows}{photos} "
          f"-> {verdict}")


def print_config(result: dict, best: bool) -> None:
    mark = "   <== best" if best else ""
    recommended = "   [recommended default]" if result["config"] == RECOMMENDED else ""
    print(f"\n{result['config']} ({result['description']}){mark}{recommended}")
    header = f"  {'endpoint':<50} {'clients':>7} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for phase in result["phases"].values():
        print(f"  {phase['endpoint']:<50} {phase['clients']:>7} {phase['requests']:>8} {phase['rps']:>8.1f} "
              f"{phase['p50_ms']:>8.1f} {phase['p99_ms']:>8.1f} {phase['errors']:>6}")
    for name, phase in result["phases"].items():
        cpu = phase["cpu_cores"]
        workers = "+".join(f"{w:.2f}" for w in cpu["per_worker"])
        print(f"  {name}: CPU cores used: gunicorn {cpu['gunicorn']:.2f} ({workers}), postgres {cpu['postgres']:.2f}, "
              f"load generator {cpu['client']:.2f}, whole machine {cpu['machine_busy']:.2f}"
              + (f" (steal {cpu['steal']:.2f})" if cpu["steal"] >= 0.01 else "")
              + f"; load average after {' '.join(phase['loadavg_after'])}"
              + (f"; non-2xx/transport: {phase['statuses']} / {phase['transport_errors']}" if phase["errors"] else ""))
    for name, phase in result["phases"].items():
        if phase.get("worker_rss_mib"):
            print(f"  {name}: worker memory after the phase (RSS MiB): "
                  + " + ".join(f"{m:.0f}" for m in phase["worker_rss_mib"])
                  + f" = {sum(phase['worker_rss_mib']):.0f}")
    if any(p["cpu_cores"]["per_worker"] and min(p["cpu_cores"]["per_worker"]) < 0.1
           and max(p["cpu_cores"]["per_worker"]) > 0.3 for p in result["phases"].values()):
        print("  note: a worker sat (nearly) idle: gthread keeps each keep-alive connection on the worker that "
              "accepted it, and the 16 connections were not spread evenly")
    photo = result["phases"].get("photo")
    if photo:
        before, after = photo["memory_before_photos"], photo["memory_after"]
        print(f"  photo: load generator {photo['client']}; worker memory, MiB (VmHWM is the peak since the worker "
              f"started; 'before' is read before the first photo):")
        for pid in sorted(set(before) | set(after)):
            b, a = before.get(pid, {}), after.get(pid, {})
            print(f"    worker {pid}: peak {b.get('hwm', 0):.0f} before the photos -> {a.get('hwm', 0):.0f} after "
                  f"(+{a.get('hwm', 0) - b.get('hwm', 0):.0f}); resident {b.get('rss', 0):.0f} -> {a.get('rss', 0):.0f}"
                  + ("" if b and a else "  (not there before and after: restarted?)"))
        peaks = [a["hwm"] for a in after.values() if a]
        if peaks:
            print(f"    peak per worker {min(peaks):.0f}-{max(peaks):.0f} MiB, all {len(peaks)} workers' peaks "
                  f"together {sum(peaks):.0f} MiB")
        warm = photo.get("photo_warmup")
        if warm and warm.get("errors"):
            print(f"  photo warm-up: {warm['errors']} of {warm['requests']} filings failed {warm['statuses']}")
    for name in ("filing", "photo", "bare"):
        phase = result["phases"].get(name)
        if not phase:
            continue
        per = phase.get("postgres_per_filing", {})
        ms_cpu = {k: 1000 * v / max(1, phase["requests"]) for k, v in phase["cpu_cores"]["cpu_seconds"].items()}
        own = ms_cpu.get("postgres_this_database")
        print(f"  {name} per request: {ms_cpu['gunicorn']:.2f} ms gunicorn CPU, {ms_cpu['postgres']:.2f} ms postgres CPU"
              + (f" (of which {own:.2f} ms in this database's backends)" if own is not None else "")
              + (f"; over all {per['filings']} filings of this server: {per['xact_commit']:.2f} transactions, "
                 f"{per['tup_inserted']:.2f} rows inserted (TOAST rows included), {per['sessions']:.3f} new "
                 f"PostgreSQL connections" if per else "")
              + (f" ({per['photo_filings_included']} of those filings had a photo)"
                 if per.get("photo_filings_included") else ""))
        print_db_check(name, phase["db_check"])
    filing, bare = result["phases"].get("filing"), result["phases"].get("bare")
    if filing and bare:
        met = goal_met(result)
        print(f"  product / bare: {filing['rps']:.1f} / {bare['rps']:.1f} tickets/s = {result['ratio_to_bare']:.3f}; "
              f"goal (>= {GOAL_RATIO:g} of the bare app, p99 < {GOAL_P99_MS:g} ms at {GOAL_CLIENTS} clients): "
              f"{'MET' if met else 'MISSED'}")
    for who, warm in result.get("warmup", {}).items():
        if warm.get("errors"):
            print(f"  {who} warm-up: {warm['errors']} of {warm['requests']} filings failed {warm['statuses']}")
    for who, tail in result.get("gunicorn_log_tail", {}).items():
        print(f"  gunicorn ({who}) logged a traceback:\n    " + tail.replace("\n", "\n    "))


def main(argv=None) -> int:
    args = parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-filing-"))
    try:
        return run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args, folder: Path) -> int:
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    elif client == "wrk" and not shutil.which("wrk"):
        print("wrk is not installed (apt-get install -y wrk); using the Python client", file=sys.stderr)
        client = "python"
    load = wrk_load if client == "wrk" else python_load

    db_url = with_database(args.database_url, args.database)
    settings = app_settings(db_url, args.setup, args.redis_url)
    args.broker = bool(settings["BROKER_URL"])
    try:
        check_prefixes()
        pg_version = recreate_database(args.database_url, args.database)
        if args.broker:
            flush_redis(args.redis_url)
        build_schema(settings)
        args.upload = build_upload(folder) if args.photo else None
    except SetupError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - report what is missing (PostgreSQL down, bad URL) and stop
        print(f"bench: cannot prepare {args.database} via {args.database_url}: {error}", file=sys.stderr)
        return 2
    env = app_env(settings)
    bare_env = app_env({"BARE_DATABASE_URL": libpq_url(db_url)})

    machine = machine_info(pg_version, client)
    print(f"Banjie filing benchmark -- {machine['nproc']} CPUs ({machine['cpu_model']}), PostgreSQL {pg_version}, "
          f"Python {machine['python']}, gunicorn {machine.get('gunicorn', '?')}")
    print(f"load generator: {machine.get('wrk', 'Python threads with http.client')} on this machine "
          f"against 127.0.0.1; it shares the CPUs with gunicorn and PostgreSQL (see 'CPU cores used')")
    connection = "a new connection per request" if args.connection_close else "one keep-alive connection each"
    extra = os.environ.get("GUNICORN_CMD_ARGS")
    print(f"each phase: {args.clients} clients ({connection}), up to {args.requests} requests or {args.duration:g} s, "
          f"after a warm-up of {args.warmup} filings; database {args.database} (rebuilt, demo data loaded); "
          f"load average at start {' '.join(machine['loadavg_at_start'])}"
          + (f"; GUNICORN_CMD_ARGS={extra!r}" if extra else ""))
    shown = {k: v for k, v in settings.items() if k != "SECRET_KEY" and k not in BENCH_PRIVACY}
    print(f"app configuration ({args.setup}): " + ", ".join(f"{k}={v}" for k, v in shown.items())
          + "; everything else at its default (SMS_BACKEND=outbox)"
          + ("; no dramatiq worker runs, so the receipts wait on the broker (counted, then flushed)" if args.broker
             else ""))
    if not args.no_bare and not args.photo_only:
        print(f"bare ceiling: gunicorn with the same configuration serving tests/bench/bare_app.py against "
              f"{args.database}: POST parses the JSON, one INSERT into bench_bare_ticket, a commit")
    if args.upload:
        upload = args.upload
        print(f"photo phase: multipart/form-data, the same fields and one photo as part {upload.part!r}: "
              f"{upload.photo_pixels[0]}x{upload.photo_pixels[1]} JPEG (quality {PHOTO_QUALITY}, EXIF with GPS, "
              f"orientation 6) of {upload.photo_bytes / 1e6:.2f} MB; {args.photo_warmup} photo filings first, not "
              f"measured; ATTACHMENT_STORAGE at its default (database)")

    results = []
    failed = False
    try:
        for config in args.configs:
            print(f"... {config.label}", flush=True)
            results.append(run_config(config, args, env, bare_env, db_url, load))
    except SetupError as error:
        print(f"bench: {error}", file=sys.stderr)
        failed = True

    measured = [r for r in results if "filing" in r["phases"]]
    clean = [r for r in measured if r["phases"]["filing"]["errors"] == 0 and r["phases"]["filing"]["db_check"]["ok"]]
    # Best: the most tickets/s among the configurations that keep filing p99 under the goal's bound (all, if none do).
    fast_enough = [r for r in clean if r["phases"]["filing"]["p99_ms"] < GOAL_P99_MS] or clean
    best = max(fast_enough, key=lambda r: r["phases"]["filing"]["rps"], default=None)
    for result in results:
        print_config(result, best is result)

    final_db: dict = {}
    try:
        with pg_connect(db_url) as connection:
            total, distinct = connection.execute("SELECT count(*), count(DISTINCT tracking_no) FROM ticket").fetchone()
        final_db = {"tickets": total, "distinct_tracking_nos": distinct, "ok": total == distinct}
        print(f"\nall runs: {total} tickets in {args.database}, {distinct} distinct tracking numbers -> "
              f"{'OK' if total == distinct else 'DUPLICATES'}")
    except Exception as error:  # noqa: BLE001
        print(f"bench: final check failed: {error}", file=sys.stderr)
        failed = True

    recommended = next((r for r in results if r["config"] == RECOMMENDED), None)
    for result in results:
        photo = result["phases"].get("photo")
        if photo:
            peaks = [m["hwm"] for m in photo["memory_after"].values() if m]
            print(f"{result['config']} filing with a {photo['endpoint'].rsplit('+ ', 1)[-1]}: {photo['rps']:.1f} "
                  f"tickets/s, p50 {photo['p50_ms']:.0f} ms, p99 {photo['p99_ms']:.0f} ms at {photo['clients']} "
                  f"clients; "
                  f"peak memory per worker {min(peaks, default=0):.0f}-{max(peaks, default=0):.0f} MiB; "
                  f"database check {'OK' if photo['db_check']['ok'] else 'FAILED'}")
    if args.photo_only:
        pass
    elif best is None:
        print("best in this run: none (errors)")
    elif best["phases"]["filing"]["p99_ms"] < GOAL_P99_MS:
        print(f"best in this run: {best['config']} (most tickets/s among those with filing p99 under {GOAL_P99_MS:g} ms)")
    else:
        print(f"best in this run: {best['config']} (most tickets/s; none kept filing p99 under {GOAL_P99_MS:g} ms)")
    rec = Config.parse(RECOMMENDED)
    print(f"recommended production default: {RECOMMENDED} (gunicorn {' '.join(rec.gunicorn_args())}) behind a "
          f"buffering reverse proxy; reasons in tests/bench/README.md")
    print(f"results written to {args.output}")

    errors = sum(p["errors"] for r in results for p in r["phases"].values()) \
        + sum(w.get("errors", 0) for r in results for w in r.get("warmup", {}).values()) \
        + sum(p.get("photo_warmup", {}).get("errors", 0) for r in results for p in r["phases"].values())
    checks_ok = all(p["db_check"]["ok"] for r in results for p in r["phases"].values() if "db_check" in p) \
        and final_db.get("ok", False)
    goal = goal_met(recommended) if recommended else None
    if recommended and recommended.get("ratio_to_bare") is not None:
        filing, bare = recommended["phases"]["filing"], recommended["phases"]["bare"]
        print(f"{RECOMMENDED}: product {filing['rps']:.1f} tickets/s (p50 {filing['p50_ms']:.1f} ms, p99 "
              f"{filing['p99_ms']:.1f} ms), bare {bare['rps']:.1f}/s (p99 {bare['p99_ms']:.1f} ms), ratio "
              f"{recommended['ratio_to_bare']:.3f}; goal (>= {GOAL_RATIO:g}, p99 < {GOAL_P99_MS:g} ms): "
              f"{'MET' if goal else 'MISSED'}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "goal": {"ratio_to_bare_at_least": GOAL_RATIO, "p99_ms_below": GOAL_P99_MS, "clients": GOAL_CLIENTS,
                 "met_by_recommended": goal},
        "machine": machine,
        "photo": ({"part": args.upload.part, "bytes": args.upload.photo_bytes, "pixels": list(args.upload.photo_pixels),
                   "warmup": args.photo_warmup, "client": args.photo_client} if args.upload else None),
        "parameters": {"clients": args.clients, "requests": args.requests, "duration_s": args.duration,
                       "warmup": args.warmup, "connection": "close" if args.connection_close else "keep-alive",
                       "gunicorn_cmd_args": os.environ.get("GUNICORN_CMD_ARGS", ""),
                       "configs": [c.label for c in args.configs], "database": args.database,
                       "setup": args.setup, "app_configuration": shown,
                       "bare": not args.no_bare and not args.photo_only},
        "results": results, "best": best["config"] if best else None, "recommended": RECOMMENDED,
        "final_db_check": final_db, "errors": errors, "ok": not failed and errors == 0 and checks_ok,
    }, ensure_ascii=False, indent=2) + "\n")

    if errors:
        print(f"FAILED: {errors} requests did not get the expected status", file=sys.stderr)
    if not checks_ok:
        print("FAILED: database check", file=sys.stderr)
    if failed or errors or not checks_ok:
        return 1
    if args.check_goal and not goal:
        print(f"goal missed by {RECOMMENDED}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
