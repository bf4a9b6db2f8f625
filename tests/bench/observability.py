"""The cost of metrics and structured logs on filing: `make bench-observability`.

Filing as tests/bench/run.py measures it (POST /api/v1/tickets under gunicorn, the production configuration on
PostgreSQL and Redis, 16 clients, one database), against two servers that run side by side:

  * off: METRICS_ENABLED=false (requests are not timed or counted, /metrics is 404), LOG_FORMAT=text, no
         PROMETHEUS_MULTIPROC_DIR, no access log;
  * on:  what the production stack runs: METRICS_ENABLED=true with PROMETHEUS_MULTIPROC_DIR (every counter and
         histogram written to the host's files, the filing's request metrics and its receipt's `banjie_sms_queued`),
         LOG_FORMAT=json, and gunicorn's access log (`--access-logfile`) as JSON lines with the request id, redacted.

The request id is on in both (it is not a switch). The load goes to one server, then the other, in short bursts
(which goes first alternates), so that whatever else the machine does in the meantime weighs on both alike: on a
shared machine, runs minutes apart differ by more than the cost measured. For each mode: tickets/s, the median p50
and p99 of its bursts, and gunicorn's CPU per filing; for each pair of bursts the ratios on/off, and their medians.
The cost is the median CPU ratio less one (the steadier figure; throughput is printed beside it). The goal (issue 18):
under 5 %. At the end the "on" server's access log must hold one JSON line per request, every one with its request id
and none with a query code, its metrics directory the workers' files, and the database one ticket per 201.

    .venv/bin/python tests/bench/observability.py [--bursts 10] [--burst-requests 1500] [--burst-seconds 3]

Results also go to bench-results/observability.json. Exit 1 on a failed request or check, 2 when the stack cannot be
set up; with --check-goal also 1 when the cost is 5 % or more.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as filing  # noqa: E402  (tests/bench/run.py: the stack, the load, the checks)

RESULTS = filing.ROOT / "bench-results" / "observability.json"
DEFAULT_DB = os.environ.get("BANJIE_BENCH_OBSERVABILITY_DB", "banjie_bench_observability")
GOAL_COST = 0.05


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bursts", type=int, default=10, help="bursts per mode, alternating; default 10")
    parser.add_argument("--burst-requests", type=int, default=1500, help="filings per burst at most; default 1500")
    parser.add_argument("--burst-seconds", type=float, default=3.0, help="seconds per burst at most; default 3")
    parser.add_argument("--warmup", type=int, default=300, help="filings to each server before measuring; default 300")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients; default 16")
    parser.add_argument("--config", default=filing.RECOMMENDED,
                        help=f"gunicorn configuration; default {filing.RECOMMENDED}")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--database-url", default=filing.DEFAULT_ADMIN_URL)
    parser.add_argument("--database", default=DEFAULT_DB, help=f"rebuilt at the start; default {DEFAULT_DB}")
    parser.add_argument("--redis-url", default=filing.DEFAULT_REDIS_URL)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--check-goal", action="store_true", help="exit 1 when the cost is 5 %% or more")
    args = parser.parse_args(argv)
    args.config = filing.Config.parse(args.config)
    return args


def mode_settings(mode: str, folder: Path) -> tuple[dict, list]:
    """(app settings, gunicorn arguments) of a mode; the on mode's metrics directory starts empty, as a stack does."""
    if mode == "off":
        return {"METRICS_ENABLED": "false", "LOG_FORMAT": "text"}, []
    metrics = folder / "prometheus"
    metrics.mkdir()
    return ({"METRICS_ENABLED": "true", "LOG_FORMAT": "json", "PROMETHEUS_MULTIPROC_DIR": str(metrics)},
            ["--access-logfile", str(folder / "access.log")])


def check_on(folder: Path, requests: int) -> dict:
    """The on mode did its work: an access line per request (JSON, with its id, no query code), metric files."""
    lines = (folder / "access.log").read_text(errors="replace").splitlines()
    parsed = [json.loads(line) for line in lines]
    with_id = sum(1 for line in parsed if line.get("request_id"))
    files = sorted(os.listdir(folder / "prometheus"))
    leaked = "code=" in "".join(lines).replace("code=***", "")
    ok = len(parsed) >= requests and with_id == len(parsed) and bool(files) and not leaked
    return {"access_lines": len(parsed), "requests_sent": requests, "with_request_id": with_id,
            "metric_files": len(files), "ok": ok}


def burst(server, load, args) -> dict:
    before = filing.cpu_snapshot(server, args.database)
    phase = load(server.port, "post", args.clients, args.burst_requests, args.burst_seconds, False)
    after = filing.cpu_snapshot(server, args.database)
    cpu = filing.cpu_split(before, after)
    return {"requests": phase.requests, "seconds": phase.seconds, "rps": round(phase.rps, 1), "p50_ms": phase.p50_ms,
            "p99_ms": phase.p99_ms, "errors": phase.errors(201), "ok_201": phase.statuses.get(201, 0),
            "drained": phase.drained, "gunicorn_cpu_s": cpu["cpu_seconds"]["gunicorn"],
            "gunicorn_cpu_ms_per_filing": round(cpu["cpu_seconds"]["gunicorn"] * 1000 / max(phase.requests, 1), 3),
            "machine_busy": cpu["machine_busy"]}


def summarise(bursts: list[dict]) -> dict:
    requests = sum(b["requests"] for b in bursts)
    seconds = sum(b["seconds"] for b in bursts)
    return {"requests": requests, "rps": round(requests / seconds, 1) if seconds else 0.0,
            "p50_ms": statistics.median(b["p50_ms"] for b in bursts),
            "p99_ms": statistics.median(b["p99_ms"] for b in bursts),
            "gunicorn_cpu_ms_per_filing": round(sum(b["gunicorn_cpu_s"] for b in bursts) * 1000 / max(requests, 1), 3),
            "errors": sum(b["errors"] for b in bursts)}


def components(rounds: int = 5, n: int = 5000) -> dict:
    """Microseconds of CPU per request of each piece the on mode adds, measured in this process (run with
    PROMETHEUS_MULTIPROC_DIR set): the request's metrics and the receipt's counter, gunicorn's access line as JSON
    (redacted, with the id) and as gunicorn's own text, and making a request id. Best of `rounds`: what the machine's
    other work takes away is left out, so these hold on a busy machine where the servers' figures swing."""
    import io
    import logging
    from datetime import timedelta

    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    sys.path.insert(0, str(filing.ROOT))
    from notify import outbox
    from tickets import logs, telemetry

    def best(work) -> float:
        times = []
        for _ in range(rounds):
            started = time.process_time()
            for _ in range(n):
                work()
            times.append((time.process_time() - started) / n * 1e6)
        return round(min(times), 1)

    def metrics():
        telemetry.inc(telemetry.HTTP_REQUESTS, endpoint="api.file_ticket", method="POST", status="201")
        telemetry.observe(telemetry.HTTP_SECONDS, 0.012, endpoint="api.file_ticket", method="POST")
        telemetry.inc(outbox.SMS_QUEUED)

    folder = Path(tempfile.mkdtemp(prefix="bench-observability-access-"))
    config = Config()
    config.set("accesslog", str(folder / "access.log"))
    gunicorn_log = Logger(config)

    class Answer:
        status, sent = "201 CREATED", 96
        headers = [("Content-Type", "application/json"), ("Content-Length", "96"),
                   ("X-Request-ID", logs.new_request_id())]

    environ = {"REQUEST_METHOD": "POST", "RAW_URI": filing.FILING_PATH, "PATH_INFO": filing.FILING_PATH,
               "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "wrk",
               "HTTP_HOST": "127.0.0.1:8000", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "230"}
    headers = [("Host", "127.0.0.1:8000"), ("Content-Type", "application/json"), ("Content-Length", "230")]
    access = lambda: gunicorn_log.access(Answer(), headers, environ, timedelta(milliseconds=12))  # noqa: E731
    try:
        figures = {"multiprocess": telemetry.multiprocess_mode(), "metrics_us": best(metrics),
                   "access_line_text_us": best(access)}
        logs.configure("json", logging.INFO, handler=logging.StreamHandler(io.StringIO()))  # as a worker's create_app
        figures["access_line_json_us"] = best(access)
        figures["request_id_us"] = best(logs.new_request_id)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return figures


def measure_components() -> dict:
    """`components()` in a child process whose PROMETHEUS_MULTIPROC_DIR is set before prometheus_client loads."""
    import subprocess

    folder = Path(tempfile.mkdtemp(prefix="bench-observability-metrics-"))
    try:
        done = subprocess.run([sys.executable, __file__, "--components-only"], capture_output=True, text=True,
                              env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}, timeout=600, cwd=filing.ROOT)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if done.returncode != 0:
        raise filing.SetupError(f"measuring the components failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    if argv is None and sys.argv[1:] == ["--components-only"]:
        print(json.dumps(components()))
        return 0
    args = parse_args(argv)
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "python")
    load = filing.wrk_load if client == "wrk" and shutil.which("wrk") else filing.python_load
    db_url = filing.with_database(args.database_url, args.database)
    settings = filing.app_settings(db_url, "production", args.redis_url)
    folder = Path(tempfile.mkdtemp(prefix="bench-observability-"))
    try:
        return measure(args, client, load, db_url, settings, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(args, client, load, db_url: str, settings: dict, folder: Path) -> int:
    try:
        filing.check_prefixes()
        pg_version = filing.recreate_database(args.database_url, args.database)
        filing.flush_redis(args.redis_url)
        filing.build_schema(settings)
    except Exception as error:  # noqa: BLE001 - say what is missing and stop
        print(f"bench-observability: cannot set up: {error}", file=sys.stderr)
        return 2
    machine = filing.machine_info(pg_version, client)
    print(f"Banjie observability cost on filing -- {machine['nproc']} CPUs ({machine['cpu_model']}), PostgreSQL "
          f"{pg_version}, Python {machine['python']}, gunicorn {machine.get('gunicorn', '?')}, load average "
          f"{' '.join(machine['loadavg_at_start'])}; {machine.get('wrk', 'Python threads')}")
    print(f"two servers, gunicorn {' '.join(args.config.gunicorn_args())} each, {args.clients} clients; {args.bursts} "
          f"bursts per mode of up to {args.burst_requests} filings or {args.burst_seconds:g} s, alternating, after "
          f"{args.warmup} filings to each")
    servers = {}
    for mode in ("off", "on"):
        extra, gunicorn_args = mode_settings(mode, folder)
        servers[mode] = filing.Gunicorn(args.config, filing.app_env(settings | extra), extra_args=gunicorn_args)
    bursts: dict[str, list] = {"off": [], "on": []}
    sent = {"off": 0, "on": 0}
    tickets_before = filing.ticket_count(db_url)
    try:
        with servers["off"], servers["on"]:
            for mode, server in servers.items():
                warm = filing.python_load(server.port, "post", args.clients, args.warmup, 60)
                sent[mode] += warm.requests
                if warm.errors(201):
                    print(f"bench-observability: {warm.errors(201)} warm-up filings failed ({mode})", file=sys.stderr)
                    return 1
            for number in range(args.bursts):
                for mode in (("off", "on") if number % 2 == 0 else ("on", "off")):
                    entry = burst(servers[mode], load, args)
                    bursts[mode].append(entry)
                    sent[mode] += entry["requests"]
                print(f"  pair {number + 1:2}: off {bursts['off'][-1]['rps']:6.1f}/s "
                      f"{bursts['off'][-1]['gunicorn_cpu_ms_per_filing']:5.2f} ms CPU | on {bursts['on'][-1]['rps']:6.1f}/s "
                      f"{bursts['on'][-1]['gunicorn_cpu_ms_per_filing']:5.2f} ms CPU", flush=True)
    except filing.SetupError as error:
        print(f"bench-observability: {error}", file=sys.stderr)
        return 2
    finally:
        for server in servers.values():
            server.cleanup_log()
    created = filing.settled_ticket_count(db_url) - tickets_before
    answered = sum(b["ok_201"] for each in bursts.values() for b in each) + args.warmup * 2
    in_flight = sum(args.clients for each in bursts.values() for b in each if not b["drained"])
    db_ok = answered <= created <= answered + in_flight
    check = check_on(folder, sent["on"])

    cpu_ratios = [on["gunicorn_cpu_ms_per_filing"] / off["gunicorn_cpu_ms_per_filing"]
                  for off, on in zip(bursts["off"], bursts["on"]) if off["gunicorn_cpu_ms_per_filing"]]
    rps_ratios = [on["rps"] / off["rps"] for off, on in zip(bursts["off"], bursts["on"]) if off["rps"]]
    modes = {mode: summarise(each) for mode, each in bursts.items()}
    summary = {"cpu_per_filing_on_over_off": [round(x, 3) for x in cpu_ratios],
               "tickets_per_s_on_over_off": [round(x, 3) for x in rps_ratios],
               "median_cpu_ratio": round(statistics.median(cpu_ratios), 3),
               "median_throughput_ratio": round(statistics.median(rps_ratios), 3),
               "overall_cpu_ratio": round(modes["on"]["gunicorn_cpu_ms_per_filing"]
                                          / modes["off"]["gunicorn_cpu_ms_per_filing"], 3),
               "overall_throughput_ratio": round(modes["on"]["rps"] / modes["off"]["rps"], 3)}
    cost = summary["median_cpu_ratio"] - 1
    summary["cost"] = round(cost, 3)
    for mode, figures in modes.items():
        print(f"{mode:>3}: {figures['rps']:7.1f} tickets/s, p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms "
              f"(medians of the bursts), gunicorn {figures['gunicorn_cpu_ms_per_filing']:.2f} ms CPU per filing, "
              f"{figures['requests']} filings")
    print(f"on/off per pair, gunicorn CPU per filing: {', '.join(f'{x:.3f}' for x in cpu_ratios)} (median "
          f"{summary['median_cpu_ratio']:.3f}); tickets/s: {', '.join(f'{x:.3f}' for x in rps_ratios)} (median "
          f"{summary['median_throughput_ratio']:.3f})")
    print(f"on server: {check['access_lines']} access lines for {check['requests_sent']} requests, "
          f"{check['with_request_id']} with their request id, {check['metric_files']} metric files: "
          f"{'OK' if check['ok'] else 'FAILED'}; database: {created} tickets for {answered} answers 201 "
          f"{'OK' if db_ok else 'FAILED'}")
    print(f"cost of metrics and JSON logs on filing: {cost * 100:.1f} % of gunicorn's CPU per filing "
          f"(goal: under {GOAL_COST * 100:g} %): {'MET' if cost < GOAL_COST else 'MISSED'}")
    parts = measure_components()
    added = parts["metrics_us"] + parts["access_line_json_us"]
    print(f"in one process, CPU per request (best of 5 x 5000): metrics {parts['metrics_us']:.1f} us (multiprocess "
          f"files), gunicorn's access line {parts['access_line_json_us']:.1f} us as JSON ({parts['access_line_text_us']:.1f} "
          f"us as its own text), a request id {parts['request_id_us']:.1f} us: on adds {added:.0f} us, "
          f"{added / 10 / modes['off']['gunicorn_cpu_ms_per_filing']:.1f} % of the off server's "
          f"{modes['off']['gunicorn_cpu_ms_per_filing']:.2f} ms per filing here")
    summary["components_us"] = parts
    errors = modes["off"]["errors"] + modes["on"]["errors"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "machine": machine, "goal_cost_below": GOAL_COST, "config": args.config.label, "clients": args.clients,
        "bursts": args.bursts, "burst_requests": args.burst_requests, "burst_seconds": args.burst_seconds,
        "warmup": args.warmup, "database": args.database, "modes": modes, "runs": bursts, "summary": summary,
        "on_check": check, "db_check": {"created": created, "answered_201": answered, "ok": db_ok},
        "errors": errors, "ok": errors == 0 and check["ok"] and db_ok,
    }, ensure_ascii=False, indent=2) + "\n")
    print(f"results written to {args.output}")
    if errors or not check["ok"] or not db_ok:
        print("FAILED: " + (f"{errors} requests did not get 201" if errors else "a check failed"), file=sys.stderr)
        return 1
    return 1 if args.check_goal and cost >= GOAL_COST else 0


if __name__ == "__main__":
    sys.exit(main())
