"""Retention benchmark: `flask privacy anonymise` over 1,000,000 closed cases on PostgreSQL, interrupted and resumed.

`python tests/bench/anonymise.py [--cases N] [--batch N]` builds the database `banjie_bench_anonymise` (dropped and
made again with `flask db upgrade`'s schema) with N cases closed in 2022 (set-based SQL: each with its filing and
closing events, a rated survey round and two texts to the citizen; one in ten has a mobile number in its description
and its answer), then, each as its own `flask` process as an operator would run it:

  * the dry run (time, peak memory, its counts);
  * the real run, interrupted (SIGINT) once about half the cases are anonymised;
  * the same command again, which takes what is left;

and prints each run's wall time, cases per second and peak resident memory (`resource`: the child's ru_maxrss), then
checks that every case is anonymised exactly once, that the runs' counts add up to the dry run's, and that each run
wrote its one access-log line.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

import benchdb  # tests/bench/benchdb.py: the script's folder is on the path

ROOT = Path(__file__).resolve().parents[2]
NAME = "banjie_bench_anonymise"
CUTOFF = "2023-01-01"

CASES = """
INSERT INTO ticket (id, tracking_no, query_code_hash, citizen_name, phone, problem_type, service_item, description,
                    channel, office_id, status, supervision_level, version, public_reply, extension_pending, disputed,
                    due_provisional, created_at, updated_at, closed_at)
SELECT i, 'BJ2022-' || lpad(i::text, 8, '0'), 'bench', '张三' || (i % 1000), '+86138' || lpad((i % 100000000)::text, 8, '0'),
       'too_slow', '营业执照变更',
       CASE WHEN i % 10 = 0 THEN '营业执照变更办了一个月，我的电话13912345678，请回电。'
            ELSE '营业执照变更网上提交后一直显示审核中，打电话也没人接。' END,
       'web', 1, 'closed', 0, 3,
       CASE WHEN i % 10 = 0 THEN '已办结，有疑问请致电13812345678。' ELSE '已办结。' END,
       false, false, false,
       timestamptz '2022-01-01 09:00+08' + (i % 300) * interval '1 day',
       timestamptz '2022-01-03 09:00+08' + (i % 300) * interval '1 day',
       timestamptz '2022-01-03 09:00+08' + (i % 300) * interval '1 day'
FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS i
"""
EVENTS = """
INSERT INTO event (ticket_id, at, actor_role, action, from_status, to_status, note, public, public_note, data)
SELECT t.id, t.created_at, 'citizen', 'file', NULL, 'submitted', NULL, true, NULL, '{"channel": "web"}'::json
FROM ticket t WHERE t.id BETWEEN :first AND :last
UNION ALL
SELECT t.id, t.closed_at, 'office', 'resolve', 'accepted', 'closed', NULL, true, t.public_reply, NULL
FROM ticket t WHERE t.id BETWEEN :first AND :last
"""
SURVEYS = """
INSERT INTO survey (ticket_id, round, phone, opened_at, closes_at, score, comment, rated_at, channel, defaulted)
SELECT t.id, 1, t.phone, t.closed_at, t.closed_at + interval '7 days', 1 + t.id % 3, NULL,
       t.closed_at + interval '1 day', 'sms', false
FROM ticket t WHERE t.id BETWEEN :first AND :last
"""
TEXTS = """
INSERT INTO sms_message (ticket_id, phone, audience, template, body, status, attempts, not_before, created_at)
SELECT t.id, t.phone, 'citizen', k.template, k.body, 'recorded', 1, t.created_at, t.created_at
FROM ticket t CROSS JOIN (VALUES ('filed', '您反映的问题已登记。'), ('closed', '您反映的问题已办结。')) AS k(template, body)
WHERE t.id BETWEEN :first AND :last
"""


def build(admin_url: str, total: int, name: str = NAME) -> str:
    url = benchdb.fresh(admin_url, name)
    engine = sa.create_engine(url)
    started = time.perf_counter()
    step = 100_000
    for first in range(1, total + 1, step):
        last = min(first + step - 1, total)
        with engine.begin() as connection:
            for statement in (CASES, EVENTS, SURVEYS, TEXTS):
                connection.execute(sa.text(statement), {"first": first, "last": last})
    with engine.begin() as connection:
        connection.execute(sa.text("SELECT setval(pg_get_serial_sequence('ticket', 'id'), :n)"), {"n": total})
        connection.execute(sa.text("ANALYZE"))
    engine.dispose()
    print(f"{total:,} closed cases, {2 * total:,} events, {total:,} surveys, {2 * total:,} texts "
          f"({time.perf_counter() - started:.0f} s to create)", flush=True)
    return url


def anonymised(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        n = connection.scalar(sa.text("SELECT count(*) FROM ticket WHERE anonymised_at IS NOT NULL"))
    engine.dispose()
    return n


def run(url: str, *args: str, stop_at: int | None = None) -> dict:
    """One `flask privacy anonymise` process: its time, peak memory, last line; SIGINT once `stop_at` are done."""
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "bench", "BROKER_URL": ""}
    command = [sys.executable, "-m", "flask", "--app", "app", "privacy", "anonymise", "--closed-before", CUTOFF, *args]
    started = time.perf_counter()
    # SIGINT as Ctrl-C sends it: a shell's background job (`make bench-anonymise &`) starts with SIGINT ignored, and
    # Python then leaves it so; the child gets the default back, so its KeyboardInterrupt handling is what is measured.
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    interrupted = False
    if stop_at is not None:
        while child.poll() is None:
            time.sleep(1)
            if anonymised(url) >= stop_at:
                child.send_signal(signal.SIGINT)
                interrupted = True
                break
    output = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    lines = output.strip().splitlines()
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "interrupted": interrupted,
            "status": os.waitstatus_to_exitcode(status), "summary": lines[-1] if lines else ""}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get(
        "BANJIE_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--database", default=NAME, help=f"the benchmark's database (dropped first); default {NAME}")
    args = parser.parse_args()
    url = build(args.database_url, args.cases, args.database)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
          f"this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", flush=True)
    results = {}
    for name, extra, stop in (("dry run", ("--dry-run",), None),
                              ("real run, interrupted", ("--batch", str(args.batch)), args.cases // 2),
                              ("resumed", ("--batch", str(args.batch)), None)):
        before = anonymised(url)
        result = run(url, *extra, stop_at=stop)
        done = anonymised(url) - before
        results[name] = {**result, "cases": done}
        rate = (done or args.cases) / result["seconds"]
        print(f"{name:24} {result['seconds']:8.1f} s  {rate:8.0f} cases/s  peak {result['peak_mb']:6.0f} MB  "
              f"anonymised {done:,}  exit {result['status']}  | {result['summary']}", flush=True)
    assert anonymised(url) == args.cases, "every case anonymised"
    assert results["real run, interrupted"]["interrupted"], "SIGINT was sent"
    assert 0 < results["real run, interrupted"]["cases"] < args.cases, "the interrupted run stopped part way"
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        lines = connection.execute(sa.text(  # each run's end line (its first, as it began, has no count)
            "SELECT actor, count FROM access_log WHERE kind = 'anonymise' AND count IS NOT NULL ORDER BY id")
                                   ).all()
        clear = connection.scalar(sa.text("SELECT count(*) FROM ticket WHERE description LIKE '%13912345678%'"))
    engine.dispose()
    assert [n for _actor, n in lines] == [results["real run, interrupted"]["cases"], results["resumed"]["cases"]], lines
    assert clear == 0
    print(f"access log: {lines}; every case anonymised once, no number left in a description")
    return 0


if __name__ == "__main__":
    sys.exit(main())
