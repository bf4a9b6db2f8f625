"""一类事 benchmark: the console's and the API's list of recurring problems (tickets/clusters.py `listing`) and the monthly
report's 高频诉求 (reports/clusters.py) on 2,000,000 cases in PostgreSQL, over a city's 48 windows.

`python tests/bench/clusters.py [--reuse]` builds the database `banjie_bench_clusters` (dropped and rebuilt unless
--reuse finds it filled) with `flask db upgrade`'s schema and 2,000,000 cases over 20 months (100,000 a month, 48
offices: the city, 7 counties, 40 townships), then times, with the clock at the end of the data:

  * the list as an administrator (every window), the city's office staff (the 48 windows' ids in the query) and a
    county's (its 6 windows), each the median of 7 runs after one warm-up, with the plan of the grouped query;
  * the 高频诉求 of the last month, city-wide.

Clusters: 60 % of the cases are alone (their own cluster); 30 % fall into "warm" clusters of about 3 cases a week at
one window (most never reach 5 in 14 days); 10 % into "hot" ones of about 20 a week, so about 220 clusters are 一类事
in any 14 days city-wide. A cluster's cases share the window and the service item, as tickets/duplicates.py makes them.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

import benchdb  # tests/bench/benchdb.py: the script's folder is on the path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TOTAL = 2_000_000
PER_MONTH = 100_000
FIRST = "2025-03-01 00:00:00+08"
OFFICES, COUNTIES = 48, 7
BLOCK = 20_000  # cases (about six days) in which a cluster's key stays one cluster

TICKETS = f"""
WITH c AS (
  SELECT i, (i * 7919) % 1000 AS h,
         timestamptz '{FIRST}' + make_interval(months => (i / {PER_MONTH})::int)
           + (i % {PER_MONTH}) * (interval '27 days' / {PER_MONTH}) AS t
  FROM generate_series(0::bigint, {TOTAL} - 1) AS i
), k AS (
  SELECT i, h, t, 1 + i % {OFFICES} AS office,
         CASE WHEN h < 100 THEN 'hot' || (i % 96) WHEN h < 400 THEN 'warm' || (i % 1968) END AS key
  FROM c
), a AS (
  SELECT k.*, min(i) OVER (PARTITION BY key, i / {BLOCK}) AS anchor FROM k
)
INSERT INTO ticket (id, tracking_no, query_code_hash, citizen_name, phone, problem_type, service_item, description,
                    channel, status, supervision_level, version, extension_pending, due_provisional, created_at,
                    updated_at, office_id, disputed, cluster_id)
SELECT i + 1, 'B' || i, 'x', '张三', '+86138' || lpad((i % 100000000)::text, 8, '0'), 'too_slow',
       CASE WHEN key IS NOT NULL THEN '事项' || (i % 96) ELSE '事项' || (i % 300) END,
       '营业执照变更网上提交后一直显示审核中，打电话也没人接。', 'web',
       CASE WHEN h % 10 < 2 THEN 'transferred' ELSE 'closed' END, 0, 1, false, false, t, t, office, false,
       CASE WHEN key IS NULL THEN i + 1 ELSE anchor + 1 END
FROM a
"""


def offices_sql() -> list[tuple]:
    rows = []
    for o in range(2, OFFICES + 1):
        county = o <= COUNTIES + 1
        parent = 1 if county else 2 + (o - COUNTIES - 2) % COUNTIES
        rows.append((o, f"county{o - 1}" if county else f"town{o - COUNTIES - 1}",
                     f"第{o - 1}县窗口" if county else f"第{o - COUNTIES - 1}乡镇窗口",
                     "county" if county else "township", parent, f"1/{o}/" if county else f"1/{parent}/{o}/"))
    return rows


def build(admin_url: str, name: str, reuse: bool) -> str:
    url = benchdb.url_of(admin_url, name)
    if reuse and benchdb.exists(admin_url, name):
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            if connection.scalar(sa.text("SELECT count(*) FROM ticket")) == TOTAL:
                print(f"reusing {name}")
                return url
        engine.dispose()
    benchdb.fresh(admin_url, name)
    engine = sa.create_engine(url)
    started = time.perf_counter()
    with engine.begin() as connection:
        for row in offices_sql():
            connection.execute(sa.text(
                "INSERT INTO office (id, code, name, level, parent_id, path, active, default_unanswered, created_at) "
                "VALUES (:id, :code, :name, :level, :parent, :path, true, true, now())"),
                dict(zip(("id", "code", "name", "level", "parent", "path"), row)))
        connection.execute(sa.text("SELECT setval(pg_get_serial_sequence('office', 'id'), (SELECT max(id) FROM office))"))
        indexes = connection.execute(sa.text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ticket' AND indexname NOT LIKE 'pk_%' "
            "AND indexdef NOT LIKE 'CREATE UNIQUE%'")).all()
        for index_name, _ in indexes:
            connection.execute(sa.text(f'DROP INDEX "{index_name}"'))
    with engine.begin() as connection:
        connection.execute(sa.text("SET synchronous_commit = off"))
        connection.execute(sa.text("SET TIME ZONE 'Asia/Shanghai'"))
        rows = connection.execute(sa.text(TICKETS)).rowcount
    print(f"  ticket {rows:,} rows {time.perf_counter() - started:.1f} s", flush=True)
    with engine.begin() as connection:
        for _, definition in indexes:
            connection.execute(sa.text(definition))
        connection.execute(sa.text("SELECT setval(pg_get_serial_sequence('ticket', 'id'), (SELECT max(id) FROM ticket))"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE ticket"))
    print(f"  built in {time.perf_counter() - started:.1f} s", flush=True)
    engine.dispose()
    return url


def measure(url: str, runs: int) -> None:
    from app import create_app
    from reports.clusters import frequent_clusters
    from reports.metrics import Month, Scope
    from tickets import clusters, offices
    from tickets.clock import set_clock
    from tickets.db import db
    from tickets.models import Role
    from tickets.workflow import Actor

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    with app.app_context():
        last = db.session.scalar(sa.text("SELECT max(created_at) FROM ticket"))
    now = last + timedelta(minutes=1)
    set_clock(app, lambda: now)
    tz = ZoneInfo("Asia/Shanghai")
    actors = {"admin (every window)": Actor(1, Role.admin),
              "city office (48 windows)": Actor(1, Role.office, office_id=1),
              "county office (6 windows)": Actor(1, Role.office, office_id=2)}
    for name, actor in actors.items():
        with app.test_request_context():
            clusters.listing(db.session, actor)  # warm-up
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                with app.test_request_context():  # a request's memo of the subtree's ids, as in production
                    answer = clusters.listing(db.session, actor)
                timings.append((time.perf_counter() - started) * 1000)
                db.session.rollback()
            print(f"{name:28} {len(answer['items']):3} listed of {answer['total']:4}  median "
                  f"{statistics.median(timings):7.1f} ms  max {max(timings):7.1f} ms", flush=True)
    with app.test_request_context():
        days, minimum = clusters.settings()
        window = clusters.Window.ending(now, days)
        plan = db.session.execute(sa.text(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT cluster_id, count(*) AS n, max(created_at) FROM ticket "
            "WHERE cluster_id IS NOT NULL AND channel <> 'proactive' AND created_at >= :start AND created_at <= :end "
            "GROUP BY cluster_id HAVING count(*) >= :min ORDER BY n DESC LIMIT 100"),
            {"start": window.start, "end": now, "min": minimum}).scalars().all()
        print("\n".join(plan), flush=True)
        month = Month.containing(now, tz).shift(-1)
        # the city's and a county's (office 2, 6 windows: each case's window at the month's end is looked up)
        for name, office_id in (("city", offices.root_id(db.session)), ("county", 2)):
            scope = Scope.of(db.session, office_id)
            frequent_clusters(db.session, month, tz, scope)  # warm-up
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                section = frequent_clusters(db.session, month, tz, scope)
                timings.append((time.perf_counter() - started) * 1000)
            print(f"高频诉求 {month} {name}: {len(section['items'])} of {section['total']}  median "
                  f"{statistics.median(timings):.1f} ms", flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"PostgreSQL {server_version(url)}")


def server_version(url: str) -> str:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        version = connection.scalar(sa.text("SHOW server_version"))
    engine.dispose()
    return version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", default=os.environ.get("BANJIE_BENCH_PG_ADMIN",
                                                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--name", default="banjie_bench_clusters")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    url = build(args.admin_url, args.name, args.reuse)
    measure(url, args.runs)


if __name__ == "__main__":
    main()
