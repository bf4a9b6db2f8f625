"""Escalation sweep benchmark: 1,000,000 open cases in PostgreSQL, 1 % of them due.

    .venv/bin/python tests/bench/escalation.py            (or: make bench-escalation)

Builds the database `banjie_bench_esc` (dropped first) next to the admin connection (`--database-url`,
default `postgresql+psycopg://postgres@127.0.0.1:5432/test`, or $BANJIE_BENCH_PG_ADMIN), migrates it,
and bulk-creates open transferred cases with SQL `generate_series` (not the ORM): per case a ticket, its
handling deadline and the three pending ladder steps (warning, supervisor, leader), all in the future.
It then measures, with `escalation.sweeper.sweep` exactly as the actor calls it:

1. a sweep with nothing due at 10,000 open cases, then again at 1,000,000 (median of `--repeat` runs):
   it must not grow, thanks to the partial index on pending steps;
2. a sweep of 1,000 due steps (supervisor steps of 1,000 cases made due);
3. one sweep with 1 % of the cases due (10,000 supervisor steps), as after a long outage.

Each due step writes its escalation event and one SMS outbox row (the department's supervisor has a
phone). Goals: nothing due < 50 ms at 1M; 1,000 due steps < 10 s. Results go to bench-results/escalation.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from tickets.clock import set_clock

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

DB_NAME = "banjie_bench_esc"


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def recreate(admin_url: str, name: str = DB_NAME) -> str:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                           {"n": name})
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        version = connection.scalar(sa.text("SHOW server_version"))
    admin.dispose()
    return version


def add_cases(connection, first: int, last: int, department_id: int, now: datetime) -> None:
    """Cases first..last: transferred a day ago, handling due in 10 days, three pending ladder steps."""
    params = {"first": first, "last": last, "dept": department_id, "now": now,
              "started": now - timedelta(days=1), "due": now + timedelta(days=10)}
    connection.execute(sa.text("""
        INSERT INTO ticket (tracking_no, query_code_hash, citizen_name, phone, problem_type, description, channel,
                            status, department_id, supervision_level, version, extension_pending, due_at, due_kind,
                            due_provisional, created_at, updated_at, office_id, disputed)
        SELECT 'BJB' || lpad(g::text, 9, '0'), 'bench', '张三', '+8613800138000', 'too_slow', '基准测试案件', 'web',
               'transferred', :dept, 0, 1, false, :due, 'handle', false, :started, :started,
               (SELECT office_id FROM department WHERE id = :dept), false
        FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) g"""), params)
    connection.execute(sa.text("""
        INSERT INTO deadline (ticket_id, kind, round, department_id, started_at, working_days, due_at,
                              original_due_at, extended_days, provisional)
        SELECT id, 'handle', 1, :dept, :started, 5, :due, :due, 0, false FROM ticket
        WHERE tracking_no BETWEEN 'BJB' || lpad(CAST(:first AS text), 9, '0') AND 'BJB' || lpad(CAST(:last AS text), 9, '0')"""),
        params)
    connection.execute(sa.text("""
        INSERT INTO escalation_step (ticket_id, kind, round, step, level, due_at, created_at, sms_count)
        SELECT t.id, 'handle', 1, s.step, s.level, :due + s.shift, :started, 0
        FROM ticket t CROSS JOIN (VALUES ('warning', 1, interval '-1 day'), ('supervisor', 2, interval '0'),
                                         ('leader', 3, interval '2 days')) AS s(step, level, shift)
        WHERE t.tracking_no BETWEEN 'BJB' || lpad(CAST(:first AS text), 9, '0') AND 'BJB' || lpad(CAST(:last AS text), 9, '0')"""),
        params)


def make_due(connection, modulo: int, remainder: int, now: datetime) -> int:
    return connection.execute(sa.text("""
        UPDATE escalation_step SET due_at = :past
        WHERE step = 'supervisor' AND fired_at IS NULL AND ticket_id % :m = :r"""),
        {"past": now - timedelta(minutes=5), "m": modulo, "r": remainder}).rowcount


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get(
        "BANJIE_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--database", default=DB_NAME, help=f"the benchmark's database (dropped first); default {DB_NAME}")
    parser.add_argument("--output", default=str(ROOT / "bench-results" / "escalation.json"))
    args = parser.parse_args()

    pg_version = recreate(args.database_url, args.database)
    url = args.database_url.rsplit("/", 1)[0] + "/" + args.database
    os.environ.update({"DATABASE_URL": url, "BROKER_URL": "", "SECRET_KEY": "bench"})
    from app import create_app
    from escalation import sweeper
    from tickets.db import db
    from tickets.schema import upgrade_database

    app = create_app()
    now = datetime.now(timezone.utc)
    set_clock(app, lambda: now)
    results: dict = {"machine": {**machine(), "postgresql": pg_version}, "cases": args.cases}

    def sweep():
        with app.app_context():
            started = time.perf_counter()
            result = sweeper.sweep(db.session, now)
            return time.perf_counter() - started, result

    def nothing_due() -> float:
        timings = []
        for _ in range(args.repeat):
            seconds, result = sweep()
            assert not result.fired, result.summary()
            timings.append(seconds * 1000)
        return round(statistics.median(timings), 2)

    with app.app_context():
        upgrade_database()
        with db.engine.begin() as connection:
            department_id = connection.scalar(sa.text(
                "INSERT INTO department (code, name, supervisor_phone, leader_phone, active, created_at, office_id) "
                "VALUES ('BENCH', '基准测试局', '+8613900000001', '+8613900000002', true, now(), "
                "(SELECT id FROM office WHERE parent_id IS NULL ORDER BY id LIMIT 1)) RETURNING id"))
        started = time.perf_counter()
        with db.engine.begin() as connection:
            add_cases(connection, 1, args.small, department_id, now)
            connection.execute(sa.text("ANALYZE"))
    print(f"{args.small:,} open cases ({time.perf_counter() - started:.1f} s to create)")
    results["nothing_due_ms_small"] = nothing_due()
    print(f"  sweep, nothing due: {results['nothing_due_ms_small']} ms (median of {args.repeat})")

    with app.app_context():
        started = time.perf_counter()
        with db.engine.begin() as connection:
            add_cases(connection, args.small + 1, args.cases, department_id, now)
        with db.engine.begin() as connection:
            connection.execute(sa.text("ANALYZE"))
        results["create_seconds"] = round(time.perf_counter() - started, 1)
    print(f"{args.cases:,} open cases ({results['create_seconds']} s to create)")
    results["nothing_due_ms_large"] = nothing_due()
    print(f"  sweep, nothing due: {results['nothing_due_ms_large']} ms (median of {args.repeat})")

    with app.app_context(), db.engine.begin() as connection:
        due = make_due(connection, 1000, 7, now)
    seconds, result = sweep()
    results["due_1000"] = {"steps": sum(result.fired.values()), "sms": result.sms, "seconds": round(seconds, 2)}
    print(f"  sweep of {due:,} due steps: {seconds:.2f} s ({result.summary()})")

    with app.app_context(), db.engine.begin() as connection:
        due = make_due(connection, 100, 0, now)
    seconds, result = sweep()
    results["due_1_percent"] = {"steps": sum(result.fired.values()), "sms": result.sms, "seconds": round(seconds, 2),
                                "per_1000_steps_seconds": round(seconds / max(1, sum(result.fired.values())) * 1000, 2)}
    print(f"  sweep with 1 % due ({due:,} steps): {seconds:.2f} s ({result.summary()})")
    results["nothing_due_ms_after"] = nothing_due()
    print(f"  sweep, nothing due again: {results['nothing_due_ms_after']} ms")

    goals = results["nothing_due_ms_large"] < 50 and results["due_1000"]["seconds"] < 10
    results["goals_met"] = goals
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, ensure_ascii=False, indent=2))
    print(json.dumps(results["machine"], ensure_ascii=False))
    print("goals met" if goals else "GOALS MISSED")
    with app.app_context():
        db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
