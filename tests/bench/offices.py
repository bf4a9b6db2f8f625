"""Network benchmark (issue 13): a city's 48 windows, 2,000,000 cases on PostgreSQL; a county's lists.

`make bench-offices` runs it. It builds the database `bench_offices` (`--database`; kept between runs while
its shape matches, rebuilt otherwise) with the monthly report benchmark's builder (`tests/bench/reports.py`:
one definition of the 2,000,000 cases, their events, deadlines, surveys), given a tree of offices:

  * 1 city (the migration's root office), 7 counties under it, 40 townships (5 or 6 under each county);
  * departments: 19 of the city's, 3 of each county's;
  * cases spread with a skew: the city's window 30 %, each county 7 %, each township about 0.5 %;
  * every status: the built history is closed (96 %), rejected (2 %) or still transferred (2 %); the last
    month's cases are then moved into the open statuses (submitted, accepted, transferred, returned,
    replied, rectifying), each with its running deadline (`due_at`), as the queues read them.

Then it serves the app with gunicorn (the filing benchmark's `Gunicorn`, production configuration: PostgreSQL,
Redis for the limiter and broker, `sync:4`) and measures, after a warm-up, `--requests` sequential-client GETs
per target over keep-alive connections from `--clients` Python threads:

  * the console's queue pages (`/admin/queue-in-progress/`, ...) of a county's office user, signed in;
  * `GET /api/v1/staff/tickets` with that user's Bearer token (the default list, and `?status=transferred`);
  * the same for the city's office user, for comparison.

p50/p99 in ms; the goal of issue 13: under 50 ms p99 for the county user. Results: bench-results/offices.json.
"""
from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))


def _load(name: str):
    """The other benchmarks' modules by path (tests/bench/reports.py would shadow the app's `reports` package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


builder = _load("reports")
filing = _load("run")

COUNTIES, TOWNSHIPS = 7, 40
CITY_DEPARTMENTS = 19  # 1..16 and 38..40; 17..37: three per county
GOAL_P99_MS = 50.0
COUNTY_ID = 2  # the county measured: office 2 and its townships


def county_of(township: int) -> int:
    return 2 + township % COUNTIES


def network_offices() -> tuple:
    rows = []
    for c in range(COUNTIES):
        office = 2 + c
        rows.append((office, f"county{c + 1}", f"第{c + 1}县办不成事反映窗口", "county", 1, f"1/{office}/"))
    for t in range(TOWNSHIPS):
        office, parent = 2 + COUNTIES + t, county_of(t)
        rows.append((office, f"town{t + 1:02d}", f"第{t + 1}乡镇窗口", "township", parent, f"1/{parent}/{office}/"))
    return tuple(rows)


def department_office(department: int) -> int:
    return 2 + (department - 17) // 3 if 17 <= department <= 37 else 1


# The case's window from a hash of its number independent of the builder's h (which decides its status):
# 0..299 the city, 300..789 the seven counties (70 each), 790..999 the forty townships (about 5 each).
K = "(abs(hashint8(i)) % 1000)"
OFFICE = (f"CASE WHEN {K} < 300 THEN 1 WHEN {K} < 790 THEN 2 + ({K} - 300) / 70 "
          f"ELSE {2 + COUNTIES} + ({K} - 790) * {TOWNSHIPS} / 210 END")
NOW = "2026-12-01 09:00:00+08"  # deadlines of the open cases fall ten days either side of it
# The last month's cases move into the open statuses (g: another hash, 0..99), each with its running deadline;
# the builder's 2 % still transferred get their handling deadline as the running one.
OPEN = f"""
UPDATE ticket SET
  status = s.status,
  department_id = CASE WHEN s.status IN ('submitted', 'accepted') THEN NULL ELSE ticket.department_id END,
  closed_at = NULL,
  due_at = timestamptz '{NOW}' + ((ticket.id * 7) % 21 - 10) * interval '1 day' + (ticket.id % 480) * interval '1 minute',
  due_kind = s.kind
FROM (
  SELECT id,
         CASE WHEN g < 10 THEN 'submitted' WHEN g < 20 THEN 'accepted' WHEN g < 45 THEN 'transferred'
              WHEN g < 50 THEN 'returned' WHEN g < 60 THEN 'replied' WHEN g < 65 THEN 'rectifying' END AS status,
         CASE WHEN g < 20 THEN 'accept' WHEN g < 50 THEN 'handle' WHEN g < 60 THEN 'review' WHEN g < 65 THEN 'rectify'
         END AS kind
  FROM (SELECT id, abs(hashint8(id * 31)) % 100 AS g FROM ticket WHERE id > {{total}} - {{per_month}}) AS last
  WHERE g < 65
  UNION ALL
  SELECT id, status, 'handle' FROM ticket WHERE status = 'transferred' AND id <= {{total}} - {{per_month}}
) AS s
WHERE ticket.id = s.id"""

NETWORK = builder.Network(
    offices=network_offices(), department_office=department_office, office=OFFICE,
    after=(("open cases", OPEN),),
    shape="SELECT count(*) FROM office", size=1 + COUNTIES + TOWNSHIPS,
)


def build(args) -> str:
    started = time.perf_counter()
    url = builder.build(args.database_url, args.database, not args.rebuild, args.per_month * builder.MONTHS,
                        args.per_month, NETWORK)
    print(f"database ready in {time.perf_counter() - started:.0f} s", flush=True)
    return url


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get(
        "BANJIE_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--database", default="bench_offices")
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild even when the shape matches")
    parser.add_argument("--per-month", type=int, default=100_000, help="cases a month (20 months)")
    parser.add_argument("--build-only", action="store_true")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    build(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
