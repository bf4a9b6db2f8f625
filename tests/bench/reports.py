"""Monthly report benchmark: a month of 100,000 cases within 2,000,000 in PostgreSQL, over a city's 48 windows.

`make bench-reports` runs it. It builds the database `banjie_bench_rep` (dropped and rebuilt unless
--reuse finds it filled) with `flask db upgrade`'s schema, then bulk-generates the history with SQL
`generate_series`: 20 months of 100,000 cases each (2025-03 .. 2026-10), each with the events,
deadlines, surveys, extension requests, escalations and return visits the formulas read. The cases are spread
evenly over 48 offices (the city, 7 counties, 40 townships: issue 13's network) and the 40 departments over the
city and the counties. Then it measures, for the month 2026-09, the CITY's report (all 100,000 cases of the month,
ranking its 7 counties) and one county's (its subtree: the county and its townships, about 1/7 of them):

  * figures: `reports.figures.monthly_figures` (every query, the 12-month trend, the lists);
  * pdf:     `reports.pdf.build_pdf` on those figures;

once cold (no report kept: all twelve trend months computed), then in the steady state of production,
where the eleven earlier months' reports were kept on their 1sts (the trend reads their rates),

with wall time and the process's peak RSS (getrusage), in a fresh process per run; one extra run
under tracemalloc gives the Python heap's peak (tracing slows it, so that run is not timed).
The goal of issue 6: under 5 s and under 300 MB. Exit status 1 when the goal is missed with --check-goal.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import sqlalchemy as sa

import benchdb  # tests/bench/benchdb.py: the script's folder is on the path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MONTHS = 20
FIRST_MONTH = "2025-03-01 00:00:00+08"
DEPARTMENTS = 40
COUNTIES = 7
OFFICES = 48               # the city (id 1, made by the migration), 7 counties (ids 2..8), 40 townships (9..48)
CITY_DEPARTMENTS = 20      # departments 1..20 are the city's, 21..40 the counties' (in turn)
COUNTY_CODE = "county1"    # the county whose report is timed too

# One statement per table, every row derived from the case number i (0-based) so reruns are identical.
# h = a pseudo-random 0..999 per case: 2 % rejected, 2 % still open (overdue), 2 % extended, 1 % returned;
# replies after 1..9 days against a 7-day handling deadline (so some are late).
CASES = """
WITH c AS (
  SELECT i, (i * 7919) % 1000 AS h,
         timestamptz '{first}' + make_interval(months => (i / {per_month})::int) + (i % {per_month}) * (interval '27 days' / {per_month}) AS t
  FROM generate_series(0::bigint, {total} - 1) AS i
)
"""
SQL = {
    "ticket": CASES + """
INSERT INTO ticket (id, tracking_no, query_code_hash, citizen_name, phone, problem_type, service_item, description,
                    channel, status, department_id, supervision_level, version, extension_pending, due_provisional,
                    created_at, updated_at, closed_at, office_id, disputed)
SELECT i + 1, 'B' || i, 'x', '张三', '+86138' || lpad((i % 100000000)::text, 8, '0'),
       (ARRAY['cannot_handle','too_slow','too_hard','other'])[1 + i % 4],
       CASE WHEN i % 3 = 0 THEN '事项' || (i % 300) END, '营业执照变更办了一个月还没结果。', 'web',
       CASE WHEN h < 20 THEN 'rejected' WHEN h < 40 THEN 'transferred' ELSE 'closed' END,
       CASE WHEN h >= 20 THEN 1 + i % {departments} END, 0, 5, false, false, t, t,
       CASE WHEN h >= 40 THEN t + (1 + h % 9) * interval '1 day' + interval '2 hours' END,
       {office}, false
FROM c""",
    "event": CASES + """
INSERT INTO event (ticket_id, at, actor_role, action, from_status, to_status, public, data)
SELECT i + 1, e.at, 'office', e.action, e.from_status, e.to_status, true, e.data
FROM c CROSS JOIN LATERAL (VALUES
  ('file', t, NULL, 'submitted', NULL::json, true),
  ('reject', t + interval '30 minutes', 'submitted', 'rejected', NULL, h < 20),
  ('accept', t + interval '30 minutes', 'submitted', 'accepted', NULL, h >= 20),
  ('transfer', t + interval '1 hour', 'accepted', 'transferred', json_build_object('department_id', 1 + i % {departments}), h >= 20),
  ('reply', t + (1 + h % 9) * interval '1 day', 'transferred', 'replied', NULL, h >= 40),
  ('approve', t + (1 + h % 9) * interval '1 day' + interval '2 hours', 'replied', 'closed', NULL, h >= 40),
  ('rate', t + (2 + h % 9) * interval '1 day', 'closed', CASE WHEN h % 20 >= 17 THEN 'rectifying' ELSE 'closed' END,
   json_build_object('score', 1), h >= 40 AND i % 10 < 6),
  ('explain', t + (4 + h % 9) * interval '1 day', 'rectifying', 'closed', NULL, h >= 40 AND i % 10 < 6 AND h % 20 >= 17),
  ('escalate', t + interval '8 days', 'transferred', 'transferred', json_build_object('level', 2), h < 40 AND h >= 20 OR h >= 40 AND 1 + h % 9 > 7),
  ('escalate', t + interval '11 days', 'transferred', 'transferred', json_build_object('level', 3), h >= 20 AND h < 40),
  ('remind', t + interval '5 days', 'transferred', 'transferred', NULL, h >= 20 AND h % 50 = 0)
) AS e(action, at, from_status, to_status, data, present)
WHERE e.present""",
    "deadline": CASES + """
INSERT INTO deadline (id, ticket_id, kind, round, department_id, started_at, working_days, due_at, original_due_at,
                      extended_days, provisional, ended_at, outcome)
SELECT i * 3 + 1, i + 1, 'accept', 1, NULL, t, 1, t + interval '1 day', t + interval '1 day', 0, false,
       t + interval '30 minutes', 'met'
FROM c
UNION ALL
SELECT i * 3 + 2, i + 1, 'handle', 1, 1 + (i + CASE WHEN h BETWEEN 60 AND 69 THEN 1 ELSE 0 END) % {departments},
       t + interval '1 hour', 5,
       t + interval '1 hour' + CASE WHEN h BETWEEN 40 AND 59 THEN interval '10 days' ELSE interval '7 days' END,
       t + interval '1 hour' + interval '7 days', CASE WHEN h BETWEEN 40 AND 59 THEN 3 ELSE 0 END, false,
       CASE WHEN h BETWEEN 60 AND 69 THEN t + interval '1 day'
            WHEN h >= 40 THEN t + (1 + h % 9) * interval '1 day' END,
       CASE WHEN h BETWEEN 60 AND 69 THEN 'returned'
            WHEN h >= 40 THEN CASE WHEN (1 + h % 9) * interval '1 day' > interval '7 days 1 hour'
                                        + CASE WHEN h BETWEEN 40 AND 59 THEN interval '3 days' ELSE interval '0' END
                                   THEN 'late' ELSE 'met' END END
FROM c WHERE h >= 20
UNION ALL
SELECT i * 3 + 3, i + 1, 'handle', 2, 1 + i % {departments}, t + interval '1 day', 5, t + interval '8 days',
       t + interval '8 days', 0, false, t + (1 + h % 9) * interval '1 day', 'met'
FROM c WHERE h BETWEEN 60 AND 69""",
    "extension_request": CASES + """
INSERT INTO extension_request (ticket_id, deadline_id, working_days, reason, requested_at, decided_at, approved)
SELECT i + 1, i * 3 + 2, 3, '需现场核查', t + interval '2 days', t + interval '2 days 3 hours', true
FROM c WHERE h BETWEEN 40 AND 59""",
    "survey": CASES + """
INSERT INTO survey (ticket_id, round, phone, opened_at, closes_at, score, rated_at, channel, defaulted)
SELECT i + 1, 1, '+8613800138000', t + (1 + h % 9) * interval '1 day' + interval '2 hours',
       t + (4 + h % 9) * interval '1 day' + interval '2 hours',
       CASE WHEN i % 10 < 6 THEN CASE WHEN h % 20 < 10 THEN 1 WHEN h % 20 < 15 THEN 2 WHEN h % 20 < 17 THEN 3
                                      WHEN h % 20 < 18 THEN 4 ELSE 5 END END,
       CASE WHEN i % 10 < 6 THEN t + (2 + h % 9) * interval '1 day' END, CASE WHEN i % 10 < 6 THEN 'sms' END, false
FROM c WHERE h >= 40""",
    "return_visit": """
INSERT INTO return_visit (ticket_id, survey_id, visited_at, contacted, outcome, created_at)
SELECT ticket_id, id, rated_at + interval '1 day', true, '已回访', rated_at + interval '1 day'
FROM survey WHERE score >= 4 AND ticket_id % 2 = 0""",
}
SECONDARY_INDEX_TABLES = ("ticket", "event", "deadline", "survey", "extension_request", "return_visit")


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


@dataclass(frozen=True)
class Network:
    """A tree of offices to spread the cases over (tests/bench/offices.py); the default is the one root office
    the migration creates, which owns every department and case."""
    offices: tuple[tuple[int, str, str, str, int | None, str], ...] = ()  # id, code, name, level, parent id, path
    department_office: Callable[[int], int] = lambda department: 1
    office: str = "1"  # SQL expression of the case's office in i (the case number) and h (its 0..999 hash)
    after: tuple[tuple[str, str], ...] = ()  # (name, statement) run after the tables, before the indexes
    shape: str = "SELECT count(*) FROM office"  # reused only when this still gives `size`
    size: int = 1


def _spread_offices() -> tuple:
    rows = []
    for o in range(2, OFFICES + 1):
        county = o <= COUNTIES + 1
        parent = 1 if county else 2 + (o - COUNTIES - 2) % COUNTIES
        rows.append((o, f"county{o - 1}" if county else f"town{o - COUNTIES - 1}",
                     f"第{o - 1}县窗口" if county else f"第{o - COUNTIES - 1}乡镇窗口",
                     "county" if county else "township", parent, f"1/{o}/" if county else f"1/{parent}/{o}/"))
    return tuple(rows)


# This benchmark's network: the cases evenly over the 48 offices, departments 1..20 the city's and the rest the
# counties' in turn (tests/bench/offices.py has its own, skewed as a city's windows are).
SPREAD = Network(offices=_spread_offices(),
                 department_office=lambda d: 1 if d <= CITY_DEPARTMENTS else 2 + d % COUNTIES,
                 office=f"1 + i % {OFFICES}", size=OFFICES)


def build(admin_url: str, name: str, reuse: bool, total: int, per_month: int, network: Network = Network()) -> str:
    url = benchdb.url_of(admin_url, name)
    if reuse and benchdb.exists(admin_url, name):
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            try:
                if (connection.scalar(sa.text("SELECT count(*) FROM ticket")) == total
                        and connection.scalar(sa.text(network.shape)) == network.size):
                    print(f"reusing {name} ({total:,} cases)")
                    return url
            except sa.exc.ProgrammingError:
                pass
        engine.dispose()
    benchdb.fresh(admin_url, name)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("SET synchronous_commit = off"))
        for office_id, code, office_name, level, parent_id, path in network.offices:
            connection.execute(sa.text(
                "INSERT INTO office (id, code, name, level, parent_id, path, active, default_unanswered, created_at) "
                "VALUES (:id, :code, :name, :level, :parent, :path, true, true, now())"
            ), {"id": office_id, "code": code, "name": office_name, "level": level, "parent": parent_id, "path": path})
        if network.offices:
            connection.execute(sa.text(
                "SELECT setval(pg_get_serial_sequence('office', 'id'), (SELECT max(id) FROM office))"))
        for d in range(1, DEPARTMENTS + 1):
            connection.execute(sa.text(
                "INSERT INTO department (id, code, name, active, created_at, office_id) "
                "VALUES (:id, :code, :name, true, now(), :office)"
            ), {"id": d, "code": f"D{d:02d}", "name": f"第{d}委办局", "office": network.department_office(d)})
        # Secondary indexes are dropped for the load and rebuilt afterwards (much faster than maintaining them).
        indexes = connection.execute(sa.text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:t) AND indexname NOT LIKE 'pk_%' "
            "AND indexdef NOT LIKE 'CREATE UNIQUE%'"), {"t": list(SECONDARY_INDEX_TABLES)}).all()
        for index_name, _ in indexes:
            connection.execute(sa.text(f'DROP INDEX "{index_name}"'))
    params = {"first": FIRST_MONTH, "per_month": per_month, "total": total, "departments": DEPARTMENTS,
              "office": network.office}
    for table, statement in (*SQL.items(), *network.after):
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(sa.text("SET synchronous_commit = off"))
            connection.execute(sa.text("SET TIME ZONE 'Asia/Shanghai'"))  # months are added in local time
            rows = connection.execute(sa.text(statement.format(**params))).rowcount
        print(f"  {table:18} {rows:>11,} rows  {time.perf_counter() - started:6.1f} s", flush=True)
    started = time.perf_counter()
    with engine.begin() as connection:
        for _, definition in indexes:
            connection.execute(sa.text(definition))
        for table, column in (("ticket", "id"), ("deadline", "id")):
            connection.execute(sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), (SELECT max({column}) FROM {table}))"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE"))
    print(f"  indexes + analyze {time.perf_counter() - started:6.1f} s", flush=True)
    engine.dispose()
    return url


def keep_earlier(url: str, month_text: str) -> None:
    """Generate and keep the city's and the county's reports of the twelve months before (the trend's eleven and the
    year-earlier month of 同比), as on each 1st."""
    from app import create_app
    from reports import metrics, operations
    from tickets import offices
    from tickets.db import db

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    month = metrics.Month.parse(month_text)
    with app.app_context():
        for office_id in (offices.root_id(db.session), offices.by_code(db.session, COUNTY_CODE).id):
            for back in range(max(metrics.TREND_MONTHS - 1, 12), 0, -1):
                earlier = month.shift(-back)
                operations.get_or_generate(db.session, earlier, office_id, trigger=operations.MANUAL)
                db.session.commit()


def measure(url: str, month_text: str, trace_heap: bool, office_code: str = "root") -> dict:
    from app import create_app
    from reports import fonts, metrics
    from reports.figures import monthly_figures
    from reports.pdf import build_pdf
    from tickets import clock, offices
    from tickets.db import db, utcnow

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    with app.app_context():
        font = fonts.register(app.config["REPORT_FONT"])
        office_id = offices.by_code(db.session, office_code).id  # (also connects outside the timing)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if trace_heap:
            tracemalloc.start()  # slows Python code down severalfold: never in a timed run
        started = time.perf_counter()
        figures = monthly_figures(db.session, metrics.Month.parse(month_text), office_id)
        figures_s = time.perf_counter() - started
        started = time.perf_counter()
        pdf = build_pdf(figures, office=app.config["OFFICE_NAME"], generated_at=utcnow(),
                        tz=clock.local_tz(), font=font)
        pdf_s = time.perf_counter() - started
        heap_peak = tracemalloc.get_traced_memory()[1] if trace_heap else 0
        tracemalloc.stop()
        rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        server = db.session.scalar(sa.text("SHOW server_version"))
    office = figures["office"]
    return {
        "office": office_code, "child_offices": len(figures["offices"]), "month": month_text, "figures_s": round(figures_s, 2), "pdf_s": round(pdf_s, 2),
        "total_s": round(figures_s + pdf_s, 2), "heap_peak_mb": round(heap_peak / 2**20, 1) if trace_heap else None,
        "rss_peak_mb": round(rss_peak, 1), "rss_before_mb": round(rss_before, 1), "pdf_bytes": len(pdf),
        "font": font, "postgresql": server, "accepted": office["accepted"], "closed_in_month": office["closed_in_month"],
        "closure_rate": office["closure_rate"], "overdue": office["overdue"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get(
        "BANJIE_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--database", default="banjie_bench_rep")
    parser.add_argument("--reuse", action="store_true", help="keep the database when it holds the cases already")
    parser.add_argument("--per-month", type=int, default=100_000)
    parser.add_argument("--month", default="2026-09")
    parser.add_argument("--runs", type=int, default=3, help="timed steady-state measurements")
    parser.add_argument("--check-goal", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "bench-results" / "reports.json"))
    args = parser.parse_args()
    total = args.per_month * MONTHS
    started = time.perf_counter()
    url = build(args.database_url, args.database, args.reuse, total, args.per_month, SPREAD)
    print(f"database ready in {time.perf_counter() - started:.0f} s")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM report"))
    engine.dispose()
    runs = []

    def run(state: str, trace: str = "time", office: str = "root") -> dict:
        # a fresh process per run, so each peak RSS is that run's own
        out = subprocess.run([sys.executable, __file__, "--measure-only", url, args.month, trace, office],
                             capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            raise SystemExit(2)
        r = {"state": state, **json.loads(out.stdout.strip().splitlines()[-1])}
        runs.append(r)
        if trace == "heap":
            print(f"  {state:6} traced run (slower): Python heap peak {r['heap_peak_mb']:.1f} MB")
        else:
            print(f"  {office:7} {state:6} figures {r['figures_s']:5.2f} s  pdf {r['pdf_s']:5.2f} s  total {r['total_s']:5.2f} s  "
                  f"RSS peak {r['rss_peak_mb']:6.1f} MB (after start-up {r['rss_before_mb']:.0f} MB)  "
                  f"accepted {r['accepted']:,} ({r['child_offices']} offices below ranked)", flush=True)
        return r

    # cold: no report kept, the twelve trend months are all computed
    run("cold")
    run("cold", office=COUNTY_CODE)
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--keep-earlier", url, args.month], check=True, cwd=ROOT)
    print(f"  kept the twelve earlier months' reports in {time.perf_counter() - started:.0f} s")
    # steady: as in production, where each earlier month's report was kept on its 1st
    for _ in range(args.runs):
        run("steady")
    for _ in range(args.runs):
        run("steady", office=COUNTY_CODE)
    run("steady", "heap")
    timed = [r for r in runs if r["state"] == "steady" and r["heap_peak_mb"] is None]
    best = min((r for r in timed if r["office"] == "root"), key=lambda r: r["total_s"])
    county = min((r for r in timed if r["office"] == COUNTY_CODE), key=lambda r: r["total_s"])
    met = all(r["total_s"] < 5 and r["rss_peak_mb"] < 300 for r in timed)
    result = {"machine": machine(), "cases": total, "per_month": args.per_month, "runs": runs, "goal_met": met}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, ensure_ascii=False, indent=2))
    missed = sum(not (r["total_s"] < 5 and r["rss_peak_mb"] < 300) for r in timed)
    verdict = "met on every steady run" if met else f"MISSED on {missed} of {len(timed)} steady runs"
    print(f"steady best: the city's {best['total_s']} s, {COUNTY_CODE}'s {county['total_s']} s; goal (< 5 s, < 300 MB) "
          f"{verdict}; written to {args.output}")
    return 1 if args.check_goal and not met else 0


if __name__ == "__main__":
    if len(sys.argv) in (5, 6) and sys.argv[1] == "--measure-only":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], sys.argv[4] == "heap", *sys.argv[5:])))
        sys.exit(0)
    if len(sys.argv) == 4 and sys.argv[1] == "--keep-earlier":
        keep_earlier(sys.argv[2], sys.argv[3])
        sys.exit(0)
    sys.exit(main())
