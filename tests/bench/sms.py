"""SMS benchmark: 10,000 outbox rows sent through the Twilio test server by real `dramatiq` workers.

`make bench-sms` runs it. For each worker count N (`--workers`, default 2; `--workers 1 2 4` compares) it

  1. empties the outbox of the PostgreSQL database `banjie_bench_sms` (dropped and rebuilt at the start,
     dropped at the end) and the benchmark's Redis database, and resets the Twilio test server;
  2. bulk-inserts `--messages` pending rows (COPY), each to a different number with a different text;
  3. starts `dramatiq --processes N --threads T worker` (Redis broker, `SMS_BACKEND=twilio` pointed at
     the test server in this process, `SMS_RATE_PER_SECOND=--rate`) and waits until every process is up;
  4. enqueues every row with `flask sms redrive` (the operator's command) and waits until all are final;
  5. measures messages/s from the first to the last arrival at the server, and checks that
       * the rate limit held: the most arrivals in any 1-second window <= the configured rate;
       * nothing was sent twice: no (number, text) pair twice at the server, the server's count equals
         the rows, every row is `sent` with a distinct provider id the server issued.

When the rate limit bounds the throughput, one more run with the largest N at `--raw-rate` (default 0:
unlimited) shows what the machine can do. Results: a table, and bench-results/sms.json with the machine.
Exit status 1 when a check failed, 2 when the stack could not be set up.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.run import BENCH_PRIVACY  # noqa: E402  (the benchmarks' encryption keys)
from tests.twilio_server import TwilioTestServer  # noqa: E402

BIN = ROOT / ".venv" / "bin"
RESULTS = ROOT / "bench-results" / "sms.json"
BENCH_DB = "banjie_bench_sms"
DEFAULT_ADMIN_URL = os.environ.get("BANJIE_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
DEFAULT_REDIS_URL = os.environ.get("BANJIE_BENCH_REDIS", "redis://127.0.0.1:6379/6")
ACCOUNT_SID = "AC" + "b3" * 16
AUTH_TOKEN = "banjie-bench-token"
SENDER = "+15005550006"
FINAL = ("sent", "delivered", "undelivered", "failed", "recorded")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class SetupError(RuntimeError):
    pass


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000, help="outbox rows per run; default 10000")
    parser.add_argument("--rate", type=int, default=200, help="SMS_RATE_PER_SECOND (0 = unlimited); default 200")
    parser.add_argument("--workers", nargs="+", default=["2"], metavar="N",
                        help="dramatiq worker processes, one run each, space or comma separated, e.g. 1 2 4; "
                             "default 2 (one run of about 1.5 minutes on 2 cores)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process; default 4")
    parser.add_argument("--raw-rate", type=int, default=0,
                        help="rate of the extra run made when --rate bounded the throughput (0 = unlimited); "
                             "default 0")
    parser.add_argument("--no-raw", action="store_true", help="skip that extra run")
    parser.add_argument("--database-url", default=DEFAULT_ADMIN_URL,
                        help="an admin connection to PostgreSQL; the benchmark database is created next to it")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help=f"the broker (flushed before every run); default {DEFAULT_REDIS_URL}")
    parser.add_argument("--keep-database", action="store_true", help=f"leave {BENCH_DB} in place afterwards")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results; default {RESULTS}")
    parser.add_argument("--log-dir", type=Path, help="keep the workers' logs here (default: a temporary directory)")
    args = parser.parse_args(argv)
    try:
        args.workers = [int(n) for spec in args.workers for n in spec.split(",") if n.strip()]
    except ValueError:
        parser.error("--workers takes numbers, e.g. 1 2 4")
    if not args.workers or min(args.workers) < 1 or args.threads < 1 or args.messages < 2:
        parser.error("--workers and --threads must be >= 1, --messages >= 2")
    return args


# --- database and broker ------------------------------------------------------------------------------

def libpq_url(url: str) -> str:
    import re
    return re.sub(r"^postgres(?:ql)?(?:\+\w+)?://", "postgresql://", url)


def with_database(url: str, name: str) -> str:
    return libpq_url(url).rsplit("/", 1)[0] + "/" + name


def pg_connect(url: str):
    import psycopg
    return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5)


def recreate_database(admin_url: str, drop_only: bool = False) -> str:
    with pg_connect(admin_url) as connection:
        version = connection.execute("SHOW server_version").fetchone()[0]
        force = " WITH (FORCE)" if connection.info.server_version >= 130000 else ""
        connection.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"{force}')
        if not drop_only:
            connection.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return version


def app_env(db_url: str, redis_url: str, server_url: str, rate: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "SMS_", "TWILIO_"))}
    env.update({
        "DATABASE_URL": libpq_url(db_url).replace("postgresql://", "postgresql+psycopg://", 1),
        "BROKER_URL": redis_url, "SECRET_KEY": "banjie-bench-not-a-secret", **BENCH_PRIVACY,
        "PUBLIC_BASE_URL": "http://127.0.0.1:9",
        "SMS_BACKEND": "twilio", "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": SENDER, "TWILIO_API_BASE": server_url, "SMS_RATE_PER_SECOND": str(rate),
        "SMS_QUIET_HOURS": "", "PYTHONUNBUFFERED": "1",
    })
    return env


def flask(env: dict, *args: str, timeout: float = 300) -> str:
    done = subprocess.run([str(BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise SetupError(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def phone(i: int) -> str:
    return f"+86138{i:08d}"


def body(i: int) -> str:
    return (f"【办不成事反映窗口】您反映的问题已登记，编号BJ20261123-{i:05d}，查询码K7P2M9QX。"
            "可凭编号和查询码在网站查询办理进度。")


def fill_outbox(db_url: str, n: int) -> float:
    """Empty the outbox and COPY n pending rows in; seconds taken."""
    started = time.monotonic()
    due = datetime.now(timezone.utc) - timedelta(minutes=1)
    with pg_connect(db_url) as connection:
        connection.execute("TRUNCATE sms_message RESTART IDENTITY CASCADE")
        with connection.cursor() as cursor:
            with cursor.copy("COPY sms_message (phone, audience, template, body, status, attempts, not_before, "
                             "created_at) FROM STDIN") as copy:
                for i in range(1, n + 1):
                    copy.write_row((phone(i), "citizen", "receipt", body(i), "pending", 0, due, due))
        connection.execute("ANALYZE sms_message")
    return time.monotonic() - started


def outbox_state(db_url: str) -> dict:
    with pg_connect(db_url) as connection:
        by_status = dict(connection.execute("SELECT status, count(*) FROM sms_message GROUP BY status").fetchall())
        sids, distinct, attempts = connection.execute(
            "SELECT count(provider_sid), count(DISTINCT provider_sid), coalesce(max(attempts), 0) FROM sms_message"
        ).fetchone()
    return {"by_status": by_status, "provider_sids": sids, "distinct_provider_sids": distinct, "max_attempts": attempts}


def row_sids(db_url: str) -> dict[str, str]:
    with pg_connect(db_url) as connection:
        return dict(connection.execute("SELECT phone, provider_sid FROM sms_message").fetchall())


def flush_redis(url: str) -> str:
    import redis
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.flushdb()
        return client.info("server")["redis_version"]
    finally:
        client.close()


# --- workers and CPU ----------------------------------------------------------------------------------

class Workers:
    """`dramatiq --processes N --threads T worker [--queues ...]` in its own process group, logging to a file."""

    def __init__(self, processes: int, threads: int, env: dict, log_dir: Path, queues: tuple = ()):
        self.processes = processes
        self.log_path = log_dir / f"worker-{processes}x{threads}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [str(BIN / "dramatiq"), "--processes", str(processes), "--threads", str(threads), "worker",
             *(["--queues", *queues] if queues else [])],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while self.text().count("Worker process is ready for action") < self.processes:
            if self.proc.poll() is not None:
                raise SetupError(f"the dramatiq worker exited ({self.proc.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise SetupError(f"the dramatiq worker did not come up in {timeout:g}s:\n{self.tail()}")
            time.sleep(0.1)

    def pids(self) -> list[int]:
        """The main process and its forked worker processes."""
        children = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[1]) == self.proc.pid:
                    children.append(int(entry))
        return [self.proc.pid, *children]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                self.proc.wait(timeout=10)
        self.log.close()


def proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def comm_pids(name: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def cpu_snapshot(workers: Workers) -> dict:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return {"time": time.monotonic(), "machine_total": sum(fields[:8]) / CLK_TCK,
            "machine_idle": (fields[3] + fields[4]) / CLK_TCK,
            "workers": {pid: proc_cpu(pid) for pid in workers.pids()},
            "postgres": {pid: proc_cpu(pid) for pid in comm_pids("postgres")},
            "redis": {pid: proc_cpu(pid) for pid in comm_pids("redis-server")},
            "server": time.process_time()}


def cpu_split(before: dict, after: dict) -> dict:
    """Cores each party used between the snapshots (2.0 = both cores of a 2-core machine)."""
    wall = after["time"] - before["time"]

    def delta(key):
        return sum(v - before[key].get(pid, 0.0) for pid, v in after[key].items())

    per = lambda seconds: round(seconds / wall, 2) if wall > 0 else 0.0  # noqa: E731
    busy = (after["machine_total"] - before["machine_total"]) - (after["machine_idle"] - before["machine_idle"])
    return {"workers": per(delta("workers")), "postgres": per(delta("postgres")), "redis": per(delta("redis")),
            "test_server": per(after["server"] - before["server"]), "machine_busy": per(busy)}


# --- one run ------------------------------------------------------------------------------------------

def run_once(processes: int, rate: int, args, server: TwilioTestServer, db_url: str, log_dir: Path) -> dict:
    n = args.messages
    flush_redis(args.redis_url)
    server.reset()
    insert_s = fill_outbox(db_url, n)
    env = app_env(db_url, args.redis_url, server.url, rate)
    workers = Workers(processes, args.threads, env, log_dir)
    try:
        workers.wait_ready()
        before = cpu_snapshot(workers)
        enqueue_started = time.monotonic()
        enqueued = flask(env, "sms", "redrive")
        enqueue_s = time.monotonic() - enqueue_started
        if f"enqueued {n} message" not in enqueued:
            raise SetupError(f"flask sms redrive said {enqueued.strip()!r}, expected {n} messages")
        # A busy shared machine can be slow, so only a stall counts as a failure (and an hour as a cap).
        limit = time.monotonic() + 3600
        last_progress, last_count = time.monotonic(), -1
        while True:
            state = outbox_state(db_url)
            final = sum(count for status, count in state["by_status"].items() if status in FINAL)
            if final >= n:
                break
            if final != last_count:
                last_progress, last_count = time.monotonic(), final
            stalled = time.monotonic() - last_progress > 60
            if stalled or time.monotonic() > limit:
                why = "no progress for 60 s" if stalled else "an hour after enqueuing"
                raise SetupError(f"only {final} of {n} rows final ({state['by_status']}), {why}; worker log "
                                 f"{workers.log_path}:\n{workers.tail()}")
            time.sleep(0.25)
        after = cpu_snapshot(workers)
    finally:
        workers.stop()

    arrivals = sorted(server.arrivals)
    messages = server.messages
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    state = outbox_state(db_url)
    sids = row_sids(db_url)
    server_sids = {m["to"]: m["sid"] for m in messages}
    max_1s = server.max_in_window(1.0)
    # The shortest time in which rate + 1 texts arrived: the limit held iff it is at least one second.
    tightest = (min(arrivals[i + rate] - arrivals[i] for i in range(len(arrivals) - rate))
                if 0 < rate < len(arrivals) else None)
    duplicates = server.duplicates()
    checks = {
        "rate_held": rate <= 0 or max_1s <= rate,
        "no_duplicates": duplicates == {},
        "server_count_equals_rows": len(messages) == n,
        "one_post_per_row": len(server.requests) == n,
        "all_rows_sent": state["by_status"] == {"sent": n},
        "sids_match_server": state["distinct_provider_sids"] == n and sids == server_sids,
    }
    return {
        "workers": processes, "threads": args.threads, "rate": rate, "messages": n,
        "messages_per_s": round((len(arrivals) - 1) / span, 1) if span > 0 else None,
        "first_to_last_s": round(span, 2), "max_in_1s": max_1s,
        "shortest_span_of_rate_plus_1_s": round(tightest, 3) if tightest is not None else None,
        "server_messages": len(messages), "server_posts": len(server.requests),
        "duplicates": len(duplicates), "outbox": state, "insert_s": round(insert_s, 2),
        "enqueue_s": round(enqueue_s, 2), "cpu_cores": cpu_split(before, after),
        "checks": checks, "ok": all(checks.values()),
    }


# --- report ---------------------------------------------------------------------------------------------

def machine_info(pg_version: str, redis_version: str) -> dict:
    model = "unknown"
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip())
    except (OSError, ValueError):
        nproc = len(os.sched_getaffinity(0))
    import dramatiq
    import twilio
    info = {"nproc": nproc, "cpu_model": model, "postgresql": pg_version, "redis": redis_version,
            "python": platform.python_version(), "dramatiq": dramatiq.__version__, "twilio": twilio.__version__,
            "kernel": platform.release(), "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3]}
    try:
        quota = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota[0] != "max":
            info["cgroup_cpu_limit"] = round(int(quota[0]) / int(quota[1]), 2)
    except (OSError, ValueError, IndexError):
        pass
    return info


def print_table(results: list[dict]) -> None:
    header = (f"{'workers':>7} {'threads':>7} {'rate':>6} {'msgs':>6} {'msg/s':>7} {'1st-last':>8} {'max/1s':>6} "
              f"{'dups':>4} {'server':>6} {'sent':>6}  {'cores: workers pg redis server machine':<40} checks")
    print("\n" + header)
    print("-" * len(header))
    for r in results:
        cores = r["cpu_cores"]
        rate = str(r["rate"]) if r["rate"] > 0 else "none"
        failed = [name for name, ok in r["checks"].items() if not ok]
        print(f"{r['workers']:>7} {r['threads']:>7} {rate:>6} {r['messages']:>6} {r['messages_per_s'] or 0:>7.1f} "
              f"{r['first_to_last_s']:>7.1f}s {r['max_in_1s']:>6} {r['duplicates']:>4} {r['server_messages']:>6} "
              f"{r['outbox']['by_status'].get('sent', 0):>6}  "
              f"{cores['workers']:>7.2f} {cores['postgres']:>4.2f} {cores['redis']:>5.2f} {cores['test_server']:>6.2f} "
              f"{cores['machine_busy']:>7.2f}       {'OK' if not failed else 'FAILED: ' + ', '.join(failed)}")


def main(argv=None) -> int:
    args = parse_args(argv)
    db_url = with_database(args.database_url, BENCH_DB)
    try:
        redis_version = flush_redis(args.redis_url)
        pg_version = recreate_database(args.database_url)
        flask(app_env(db_url, args.redis_url, "http://127.0.0.1:9", args.rate), "db", "upgrade")
    except SetupError as error:
        print(f"bench-sms: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - report what is missing (PostgreSQL or Redis down) and stop
        print(f"bench-sms: cannot prepare {BENCH_DB} / {args.redis_url}: {error}", file=sys.stderr)
        return 2

    machine = machine_info(pg_version, redis_version)
    print(f"Banjie SMS benchmark -- {machine['nproc']} CPUs ({machine['cpu_model']}), PostgreSQL {pg_version}, "
          f"Redis {redis_version}, Python {machine['python']}, dramatiq {machine['dramatiq']}, twilio {machine['twilio']}")
    print(f"each run: {args.messages} outbox rows -> `flask sms redrive` -> dramatiq --processes N --threads "
          f"{args.threads} worker -> twilio SDK -> Twilio test server (in this process); "
          f"load average at start {' '.join(machine['loadavg_at_start'])}")

    results, failed = [], False
    if args.log_dir:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-sms-") as temporary, \
            TwilioTestServer(ACCOUNT_SID, AUTH_TOKEN, callback_delay=0.05) as server:
        server.callbacks_enabled = False  # no web app here: delivery reports are not part of the measure
        plan = [(n, args.rate) for n in args.workers]
        try:
            for index, (processes, rate) in enumerate(plan):
                print(f"... {processes} worker process(es) x {args.threads} threads, rate "
                      f"{rate if rate > 0 else 'unlimited'}", flush=True)
                result = run_once(processes, rate, args, server, db_url, args.log_dir or Path(temporary))
                results.append(result)
                tightest = result["shortest_span_of_rate_plus_1_s"]
                print(f"    {result['messages_per_s']} msg/s, max {result['max_in_1s']} in 1 s"
                      + (f", {rate + 1} texts in no less than {tightest:.3f} s" if tightest is not None else "")
                      + f", {'OK' if result['ok'] else 'FAILED'}", flush=True)
                last_planned = index == len(args.workers) - 1
                best = max(r["messages_per_s"] or 0 for r in results if r["rate"] == args.rate)
                if (last_planned and not args.no_raw and args.rate > 0 and args.raw_rate != args.rate
                        and best >= 0.8 * args.rate):  # a capped sender reaches rate / 1.1
                    print(f"    the rate limit bounded the throughput ({best:g} msg/s at {args.rate}/s): "
                          f"one more run at {args.raw_rate or 'no limit'}", flush=True)
                    plan.append((max(args.workers), args.raw_rate))
        except SetupError as error:
            print(f"bench-sms: {error}", file=sys.stderr)
            failed = True

    if results:
        print_table(results)
    if not args.keep_database:
        try:
            flush_redis(args.redis_url)
            recreate_database(args.database_url, drop_only=True)
        except Exception as error:  # noqa: BLE001
            print(f"bench-sms: could not drop {BENCH_DB}: {error}", file=sys.stderr)
    ok = not failed and bool(results) and all(r["ok"] for r in results)
    limited = [r for r in results if r["rate"] == args.rate]
    raw = [r for r in results if r["rate"] != args.rate]
    summary = {
        "rate_limited_best_msgs_per_s": max((r["messages_per_s"] or 0 for r in limited), default=None),
        "unlimited_msgs_per_s": raw[0]["messages_per_s"] if raw else None,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "machine": machine,
        "parameters": {"messages": args.messages, "rate": args.rate, "workers": args.workers, "threads": args.threads,
                       "raw_rate": None if args.no_raw else args.raw_rate, "database": BENCH_DB,
                       "redis": args.redis_url, "rate_window_s": 1.0},
        "results": results, "summary": summary, "ok": ok,
    }, ensure_ascii=False, indent=2) + "\n")
    print(f"\nrate limit held and nothing sent twice in every run: {'yes' if ok else 'NO'}")
    print(f"results written to {args.output}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
