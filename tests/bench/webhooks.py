"""Webhook benchmark: 10,000 case events delivered to a local receiver by `dramatiq` workers over Redis.

`make bench-webhooks` runs it. Each event is a real filing (`tickets.intake.file_ticket`, committed on its own) in this
process, whose reaction writes a `created` delivery for the one subscription in the filing's transaction and whose
commit enqueues it; `dramatiq --processes N --threads T worker --queues webhooks` processes (Redis broker) POST each,
signed, to a receiver in a process of its own (tests/webhook_receiver.py, a threaded http.server that checks every
signature as the README tells receivers to). Two runs of `--events` each, on the PostgreSQL database
`banjie_bench_webhooks` (made afresh and migrated; dropped at the end):

  1. backlog: every event is written and queued with the workers stopped, then the workers start: deliveries/s from
     the first arrival at the receiver to the last (what a backlog drains at, after an outage);
  2. steady: the workers run and the events are filed at `--rate` per second: enqueue→delivered latency, p50 and p99,
     from each filing's commit (its delivery is enqueued by the commit) to the request's arrival at the receiver.

Both check that nothing is missing and nothing came twice: every delivery row `delivered`, the receiver got every
delivery id exactly once with a valid signature, and one `created` for each case filed. Results: a table, and
bench-results/webhooks.json with the machine. Exit status 1 when a check failed, 2 when the stack could not be set up.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import benchdb  # tests/bench/benchdb.py: the script's folder is on the path
from sms import (SetupError, Workers, cpu_snapshot, cpu_split, flush_redis, libpq_url, machine_info, pg_connect,
                 proc_cpu)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.run import BENCH_PRIVACY  # noqa: E402  (the benchmarks' encryption keys)

RESULTS = ROOT / "bench-results" / "webhooks.json"
BENCH_DB = "banjie_bench_webhooks"
DEFAULT_ADMIN_URL = os.environ.get("BANJIE_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DEFAULT_REDIS_URL = os.environ.get("BANJIE_BENCH_REDIS", "redis://127.0.0.1:6379/7")
SECRET = "bjwh_bench-secret-0123456789abcdef"
CITIZEN = {"name": "赵六", "phone": "13600136000", "problem_type": "too_slow",
           "description": "企业开办登记提交材料后两周没有回音，多次电话无人接听。"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000, help="events per run; default 10000")
    parser.add_argument("--workers", type=int, default=2, help="dramatiq worker processes; default 2")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process; default 8")
    parser.add_argument("--rate", type=float, default=100, help="events filed per second in the steady run "
                                                                "(0 skips it); default 100")
    parser.add_argument("--database-url", default=DEFAULT_ADMIN_URL,
                        help="an admin connection to PostgreSQL; the benchmark database is created next to it")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help=f"the broker (flushed before every run); default {DEFAULT_REDIS_URL}")
    parser.add_argument("--keep-database", action="store_true", help=f"leave {BENCH_DB} in place afterwards")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results; default {RESULTS}")
    parser.add_argument("--log-dir", type=Path, help="keep the workers' logs here (default: a temporary directory)")
    args = parser.parse_args(argv)
    if args.events < 2 or args.workers < 1 or args.threads < 1 or args.rate < 0:
        parser.error("--events must be >= 2, --workers and --threads >= 1, --rate >= 0")
    return args


# --- the receiver, in a process of its own ---------------------------------------------------------------------------

def _serve(connection, secret: str) -> None:
    from tests.webhook_receiver import WebhookReceiver

    with WebhookReceiver(secret) as receiver:
        connection.send(receiver.url)
        connection.recv()  # "stop"
        arrivals = [(r.delivery, r.headers.get("X-Banjie-Event"), r.json["ticket"]["tracking_no"], r.arrived,
                     r.verified) for r in receiver.received]
    connection.send(arrivals)


class Receiver:
    def __init__(self, secret: str):
        self.connection, child = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(target=_serve, args=(child, secret), daemon=True)
        self.process.start()
        self.url = self.connection.recv()

    def stop(self) -> list[tuple]:
        self.connection.send("stop")
        arrivals = self.connection.recv()
        self.process.join(10)
        return arrivals


# --- the producer (this process) -------------------------------------------------------------------------------------

def make_app(db_url: str, redis_url: str):
    from app import create_app

    return create_app({"DATABASE_URL": db_url, "BROKER_URL": redis_url, "SECRET_KEY": "banjie-bench-not-a-secret",
                       **BENCH_PRIVACY, "SMS_QUIET_HOURS": "", "RATELIMIT_PUBLIC": "off"})


def subscribe(app, url: str) -> int:
    from notify.subscriptions import create_subscription
    from tickets import clock
    from tickets.db import db

    with app.app_context():
        subscription, _secret = create_subscription(db.session, {"url": url, "event_types": ["created"],
                                                                 "secret": SECRET}, by=None, now=clock.now())
        db.session.commit()
        return subscription.id


def produce(app, n: int, rate: float, run: int) -> dict[str, float]:
    """File n cases, each committed on its own (its delivery enqueued by the commit), at `rate` per second (0: as fast
    as possible); the moment each commit returned, by tracking number."""
    from tickets.db import db
    from tickets.intake import file_ticket, validate_intake

    enqueued = {}
    with app.app_context():
        data = validate_intake(db.session, CITIZEN)
        db.session.rollback()
        started = time.monotonic()
        for i in range(n):
            if rate:
                wait = started + i / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            filed = file_ticket(db.session, {**data, "description": f"{CITIZEN['description']}（第{run}轮第{i}件）"},
                                channel="api")
            db.session.commit()
            enqueued[filed.ticket.tracking_no] = time.time()
    return enqueued


def delivery_state(db_url: str, after_id: int) -> dict:
    with pg_connect(db_url) as connection:
        return dict(connection.execute("SELECT status, count(*) FROM webhook_delivery WHERE id > %s GROUP BY status",
                                       (after_id,)).fetchall())


def last_delivery_id(db_url: str) -> int:
    with pg_connect(db_url) as connection:
        return connection.execute("SELECT coalesce(max(id), 0) FROM webhook_delivery").fetchone()[0]


def delivery_rows(db_url: str, after_id: int) -> dict[str, tuple]:
    with pg_connect(db_url) as connection:
        return {uuid: (status, attempts) for uuid, status, attempts in connection.execute(
            "SELECT uuid, status, attempts FROM webhook_delivery WHERE id > %s", (after_id,)).fetchall()}


def redrive(app) -> int:
    """What the scheduler's `webhook-outbox` job does (the benchmark runs no scheduler): enqueue the deliveries that
    should have gone by now and that no worker holds; how many."""
    from notify import deliveries
    from notify.tasks import deliver_webhook
    from tickets import clock
    from tickets.db import db

    with app.app_context():
        ids = deliveries.redrive(clock.now(), grace_seconds=15, batch=100_000)
        db.session.rollback()
        for delivery_id in ids:
            deliver_webhook.send(delivery_id)
    return len(ids)


def wait_delivered(app, db_url: str, after_id: int, n: int, workers: Workers) -> int:
    """Until every delivery is final; the deliveries re-driven on the way (a stall of 15 s: messages lost from the
    broker, e.g. its database flushed by someone else on a shared machine)."""
    limit = time.monotonic() + 3600
    last_progress, last_count, redriven = time.monotonic(), -1, 0
    while True:
        state = delivery_state(db_url, after_id)
        done = state.get("delivered", 0) + state.get("failed", 0)
        if done >= n:
            return redriven
        if done != last_count:
            last_progress, last_count = time.monotonic(), done
            next_redrive = last_progress + 15
        if time.monotonic() > next_redrive:
            redriven += redrive(app)
            next_redrive = time.monotonic() + 15
        if time.monotonic() - last_progress > 120 or time.monotonic() > limit:
            raise SetupError(f"only {done} of {n} deliveries final ({state}); worker log {workers.log_path}:\n"
                             f"{workers.tail()}")
        time.sleep(0.25)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


# --- a run -----------------------------------------------------------------------------------------------------------

def run(kind: str, args, app, db_url: str, env: dict, log_dir: Path, number: int) -> dict:
    n = args.events
    flush_redis(args.redis_url)
    receiver = Receiver(SECRET)
    workers = None
    try:
        subscription_id = subscribe(app, receiver.url)
        after_id = last_delivery_id(db_url)
        if kind == "backlog":  # every event written and queued first; measured from the workers' start
            produce_started = time.monotonic()
            enqueued = produce(app, n, 0, number)
            produce_s = time.monotonic() - produce_started
        workers = Workers(args.workers, args.threads, env, log_dir, queues=("webhooks",))
        workers.wait_ready()
        before, receiver_before = cpu_snapshot(workers), proc_cpu(receiver.process.pid)
        if kind == "steady":  # the events filed at the rate while the workers run
            produce_started = time.monotonic()
            enqueued = produce(app, n, args.rate, number)
            produce_s = time.monotonic() - produce_started
        redriven = wait_delivered(app, db_url, after_id, n, workers)
        after, receiver_cpu = cpu_snapshot(workers), proc_cpu(receiver.process.pid) - receiver_before
    finally:
        if workers is not None:
            workers.stop()
        arrivals = receiver.stop()
        with app.app_context():
            from notify.subscriptions import WebhookSubscription, set_active
            from tickets import clock
            from tickets.db import db

            set_active(db.session, db.session.get(WebhookSubscription, subscription_id), False, now=clock.now())
            db.session.commit()

    rows = delivery_rows(db_url, after_id)
    counts = Counter(delivery for delivery, *_ in arrivals)
    times = sorted(arrived for *_, arrived, _verified in arrivals)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    first_arrival = {}
    for delivery, _event, tracking_no, arrived, _verified in arrivals:
        first_arrival.setdefault(tracking_no, arrived)
    latencies = [first_arrival[no] - at for no, at in enqueued.items() if no in first_arrival]
    checks = {
        "all_rows_delivered": len(rows) == n and all(status == "delivered" for status, _ in rows.values()),
        "none_missing": set(counts) == set(rows) and set(first_arrival) == set(enqueued),
        "no_duplicates": len(arrivals) == n and max(counts.values(), default=0) == 1,
        "one_attempt_each": all(attempts == 1 for _, attempts in rows.values()),
        "signatures_verified": all(verified for *_, verified in arrivals),
        "created_events_only": {event for _, event, *_ in arrivals} == {"created"},
    }
    result = {
        "run": kind, "events": n, "workers": args.workers, "threads": args.threads,
        "rate": args.rate if kind == "steady" else None,
        "deliveries_per_s": round((len(times) - 1) / span, 1) if span > 0 else None,
        "first_to_last_arrival_s": round(span, 2), "produce_s": round(produce_s, 2),
        "filings_per_s": round(n / produce_s, 1) if produce_s else None,
        "received": len(arrivals), "distinct_delivery_ids": len(counts), "redriven": redriven,
        "duplicates": sum(c - 1 for c in counts.values() if c > 1), "missing": len(set(rows) - set(counts)),
        "cpu_cores": {**cpu_split(before, after), "receiver": round(receiver_cpu / (after["time"] - before["time"]), 2)},
        "checks": checks, "ok": all(checks.values()),
    }
    if kind == "steady" and latencies:
        result["latency_ms"] = {"p50": round(percentile(latencies, 50) * 1000, 1),
                                "p90": round(percentile(latencies, 90) * 1000, 1),
                                "p99": round(percentile(latencies, 99) * 1000, 1),
                                "max": round(max(latencies) * 1000, 1),
                                "mean": round(statistics.fmean(latencies) * 1000, 1)}
    return result


def print_table(results: list[dict]) -> None:
    header = (f"{'run':>8} {'events':>6} {'procs×thr':>9} {'rate':>5} {'deliv/s':>8} {'1st-last':>8} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'dups':>4} {'missing':>7}  {'cores: workers pg redis receiver machine':<41} checks")
    print("\n" + header)
    print("-" * len(header))
    for r in results:
        latency = r.get("latency_ms", {})
        cores = r["cpu_cores"]
        failed = [name for name, ok in r["checks"].items() if not ok]
        print(f"{r['run']:>8} {r['events']:>6} {r['workers']:>4}×{r['threads']:<4} {r['rate'] or '-':>5} "
              f"{r['deliveries_per_s'] or 0:>8.1f} {r['first_to_last_arrival_s']:>7.1f}s "
              f"{latency.get('p50', '-'):>7} {latency.get('p99', '-'):>7} {r['duplicates']:>4} {r['missing']:>7}  "
              f"{cores['workers']:>7.2f} {cores['postgres']:>4.2f} {cores['redis']:>5.2f} {cores['receiver']:>8.2f} "
              f"{cores['machine_busy']:>7.2f}"
              f"       {'OK' if not failed else 'FAILED: ' + ', '.join(failed)}")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        redis_version = flush_redis(args.redis_url)
        db_url = benchdb.fresh(args.database_url, BENCH_DB)
        with pg_connect(libpq_url(db_url)) as connection:
            pg_version = connection.execute("SHOW server_version").fetchone()[0]
    except Exception as error:  # noqa: BLE001 - report what is missing (PostgreSQL or Redis down) and stop
        print(f"bench-webhooks: cannot prepare {BENCH_DB} / {args.redis_url}: {error}", file=sys.stderr)
        return 2
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "SMS_", "WEBHOOK_"))}
    env.update({"DATABASE_URL": db_url, "BROKER_URL": args.redis_url, "SECRET_KEY": "banjie-bench-not-a-secret",
                **BENCH_PRIVACY, "SMS_QUIET_HOURS": "", "PYTHONUNBUFFERED": "1"})
    machine = machine_info(pg_version, redis_version)
    print(f"Banjie webhook benchmark -- {machine['nproc']} CPUs ({machine['cpu_model']}), PostgreSQL {pg_version}, "
          f"Redis {redis_version}, Python {machine['python']}, dramatiq {machine['dramatiq']}")
    print(f"each run: {args.events} filings -> one `created` delivery each -> dramatiq --processes {args.workers} "
          f"--threads {args.threads} worker --queues webhooks -> receiver (own process); "
          f"load average at start {' '.join(machine['loadavg_at_start'])}")

    app = make_app(db_url, args.redis_url)
    results, failed = [], False
    if args.log_dir:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as temporary:
        plan = ["backlog"] + (["steady"] if args.rate else [])
        try:
            for number, kind in enumerate(plan, 1):
                print(f"... {kind}" + (f" at {args.rate:g} events/s" if kind == "steady" else ""), flush=True)
                result = run(kind, args, app, db_url, env, args.log_dir or Path(temporary), number)
                results.append(result)
                latency = result.get("latency_ms")
                print(f"    {result['deliveries_per_s']} deliveries/s"
                      + (f", enqueue→delivered p50 {latency['p50']} ms, p99 {latency['p99']} ms" if latency else "")
                      + f", {result['duplicates']} duplicates, {result['missing']} missing"
                      + (f", {result['redriven']} re-driven after a stall" if result["redriven"] else "") + ", "
                      f"{'OK' if result['ok'] else 'FAILED'}", flush=True)
        except SetupError as error:
            print(f"bench-webhooks: {error}", file=sys.stderr)
            failed = True
    from tickets.broker import broker as broker_of
    from tickets.db import db

    broker_of(app).close()
    with app.app_context():
        db.engine.dispose()
    if results:
        print_table(results)
    if not args.keep_database:
        try:
            flush_redis(args.redis_url)
            with pg_connect(args.database_url) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        except Exception as error:  # noqa: BLE001
            print(f"bench-webhooks: could not drop {BENCH_DB}: {error}", file=sys.stderr)
    ok = not failed and bool(results) and all(r["ok"] for r in results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "machine": machine,
        "parameters": {"events": args.events, "workers": args.workers, "threads": args.threads, "rate": args.rate,
                       "database": BENCH_DB, "redis": args.redis_url},
        "results": results, "ok": ok,
    }, ensure_ascii=False, indent=2) + "\n")
    print(f"\nevery event delivered once, none missing, every signature valid: {'yes' if ok else 'NO'}")
    print(f"results written to {args.output}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
