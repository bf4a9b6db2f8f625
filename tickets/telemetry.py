"""Prometheus metrics: what each process counts, what the database says at scrape time, and `GET /metrics`.

- **Counters and histograms** are defined by the code they measure (requests here; texts in `notify/outbox.py`,
  sweeps in `escalation/sweeper.py`, reports in `reports/operations.py`, Dramatiq messages in `WorkerMetrics`) and
  updated through `inc`, `observe` and `timed`: a metric that cannot be updated is logged once and never breaks the
  action it follows.
- **Several processes**: with the environment variable `PROMETHEUS_MULTIPROC_DIR` (a directory per host, emptied
  when the host's stack starts) every process of the host (gunicorn's workers, `dramatiq worker` processes, the
  scheduler) writes its values there and `/metrics` adds them up (prometheus_client's multiprocess mode). A host
  with workers and no web serves the same from one worker process on METRICS_WORKER_ADDRESS.
- **Gauges read at scrape time**: rooms register readers (`reading(app, name, reader)`: `reader(session, now)`
  yields metric families, one cheap aggregate query each) that only `/metrics` of the web runs: cases by status,
  overdue cases, ladder steps due, heartbeats, the SMS backlog.
- **Who may read**: with METRICS_TOKEN, a request with `Authorization: Bearer <token>`; without it, only a request
  from this machine (a loopback address) that came through no proxy (no X-Forwarded-For, Forwarded or X-Real-IP).
  Anyone else gets 401 or 403 in the API's error shape.

Labels are bounded: the Flask endpoint name (never the path: tracking numbers must not become labels), the method
among the usual ones, the status code, a backend, a step or an actor's name.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterable

from dramatiq.middleware import Middleware
from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest, values

from .errors import Forbidden, Unauthorized
from .slots import AppSlot

log = logging.getLogger("banjie.metrics")
bp = Blueprint("telemetry", __name__)

# --- updating a metric never breaks the action --------------------------------------------------------------------

_failed: set[str] = set()


def failed_once(what: str) -> None:
    """Log the exception being handled, the first time `what` fails in this process (a broken metrics directory
    or a failing reader must not flood the log)."""
    if what not in _failed:
        _failed.add(what)
        log.warning("%s failed (further failures of it are not logged)", what, exc_info=True)


def _safely(name: str, update: Callable[[], object]) -> None:
    try:
        update()
    except Exception:
        failed_once(f"updating metric {name}")


def inc(counter: Counter, amount: float = 1, **labels) -> None:
    _safely(counter._name, lambda: (counter.labels(**labels) if labels else counter).inc(amount))


def observe(histogram: Histogram, value: float, **labels) -> None:
    _safely(histogram._name, lambda: (histogram.labels(**labels) if labels else histogram).observe(value))


@contextmanager
def timed(histogram: Histogram, **labels):
    """Observe the seconds the block took, whether it raised or not (the exception goes on)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        observe(histogram, time.perf_counter() - started, **labels)


def multiprocess_mode() -> bool:
    """Whether this process writes its values to PROMETHEUS_MULTIPROC_DIR (decided when prometheus_client loaded)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


# --- requests -----------------------------------------------------------------------------------------------------

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HTTP_REQUESTS = Counter("banjie_http_requests", "HTTP requests answered, by Flask endpoint, method and status",
                        ["endpoint", "method", "status"])
HTTP_SECONDS = Histogram("banjie_http_request_duration_seconds", "Time to answer an HTTP request, by Flask endpoint",
                         ["endpoint", "method"], buckets=LATENCY_BUCKETS)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # a path no route matched (404, or 405 before routing): one label, whatever the path
_STARTED = "banjie.started"


def _start_timer() -> None:
    request.environ[_STARTED] = time.perf_counter()


def _record_request(response):
    started = request.environ.get(_STARTED)
    if started is not None:
        endpoint = request.endpoint or UNMATCHED
        method = request.method if request.method in METHODS else "other"
        inc(HTTP_REQUESTS, endpoint=endpoint, method=method, status=str(response.status_code))
        observe(HTTP_SECONDS, time.perf_counter() - started, endpoint=endpoint, method=method)
    return response


# --- gauges read from the database at scrape time ---------------------------------------------------------------

Reader = Callable[..., Iterable]  # (session, now) -> metric families (prometheus_client.core.GaugeMetricFamily)
READERS: AppSlot[dict[str, Reader]] = AppSlot("banjie.metric_readers", "name -> scrape-time reader",
                                              default=lambda app: {})


def reading(app, name: str, reader: Reader) -> None:
    """Register a scrape-time reader: `reader(session, now)` yields metric families from one cheap query."""
    readers = READERS.get(app)
    if name in readers:
        raise ValueError(f"a metric reader named {name!r} is already registered")
    readers[name] = reader


class Scrape:
    """What one scrape returns: this host's counters (every process's, in multiprocess mode), then the readers'."""

    def __init__(self, directory: str = "", readers: dict[str, Reader] | None = None):
        self.directory, self.readers = directory, readers or {}

    def collect(self):
        if multiprocess_mode():
            from prometheus_client.multiprocess import MultiProcessCollector

            yield from MultiProcessCollector(None, path=self.directory or None).collect()
        else:
            yield from REGISTRY.collect()
        if not self.readers:
            return
        from . import clock
        from .db import db

        now = clock.now()
        for name, reader in self.readers.items():
            try:
                families = list(reader(db.session, now))
            except Exception:
                failed_once(f"metric reader {name}")
                db.session.rollback()
                continue
            yield from families
        db.session.rollback()  # read only; hand the connection back


# --- who may read -------------------------------------------------------------------------------------------------

PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def may_read(config, remote_addr: str | None, headers) -> bool | None:
    """True: let them read. False: the token is missing or wrong (401). None: no token is set and the request is not
    from this machine, or came through a proxy (403)."""
    token = config["METRICS_TOKEN"]
    if token:
        given = headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())
    try:
        local = ipaddress.ip_address((remote_addr or "").split("%")[0]).is_loopback
    except ValueError:
        local = False
    return True if local and not any(name in headers for name in PROXY_HEADERS) else None


def _exposition(config, readers) -> bytes:
    return generate_latest(Scrape(config["PROMETHEUS_MULTIPROC_DIR"], readers))


@bp.get("/metrics")
def metrics():
    """Prometheus metrics of this host and the database's gauges (see the module's docstring for who may read)."""
    config = current_app.config
    allowed = may_read(config, request.remote_addr, request.headers)
    if allowed is False:
        raise Unauthorized(_METRICS_TOKEN_NEEDED)
    if allowed is None:
        raise Forbidden(_METRICS_LOCAL_ONLY)
    return Response(_exposition(config, READERS.get()), mimetype=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})


def _messages():
    from flask_babel import lazy_gettext as _l

    return (_l("Give the metrics token as “Authorization: Bearer …”."),
            _l("Metrics are served to this machine only. Set METRICS_TOKEN to read them from elsewhere."))


_METRICS_TOKEN_NEEDED, _METRICS_LOCAL_ONLY = _messages()


# --- Dramatiq workers ---------------------------------------------------------------------------------------------

WORKER_MESSAGES = Counter("banjie_worker_messages", "Dramatiq messages processed, by queue, actor and outcome "
                          "(done, retry, failed, skipped)", ["queue", "actor", "outcome"])
WORKER_SECONDS = Histogram("banjie_worker_message_duration_seconds", "Time an actor took on one message",
                           ["queue", "actor"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900))


class WorkerMetrics(Middleware):
    """Messages processed and their time, per actor (as Dramatiq's own Prometheus middleware counts them), and on a
    host without the web (METRICS_WORKER_ADDRESS set, a broker configured) the host's metrics served by the first
    worker process that binds the address; the others find it taken and leave it be."""

    def __init__(self, app):
        self.app = app
        self._started: dict[str, float] = {}

    def after_worker_boot(self, broker, worker):
        address = self.app.config["METRICS_WORKER_ADDRESS"]
        if address and self.app.config["BROKER_URL"]:
            serve_in_thread(self.app, address)

    def before_process_message(self, broker, message):
        self._started[message.message_id] = time.perf_counter()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        import dramatiq

        started = self._started.pop(message.message_id, None)
        outcome = "done" if exception is None else "retry" if isinstance(exception, dramatiq.Retry) else "failed"
        inc(WORKER_MESSAGES, queue=message.queue_name, actor=message.actor_name, outcome=outcome)
        if started is not None:
            observe(WORKER_SECONDS, time.perf_counter() - started, queue=message.queue_name, actor=message.actor_name)

    def after_skip_message(self, broker, message):
        self._started.pop(message.message_id, None)
        inc(WORKER_MESSAGES, queue=message.queue_name, actor=message.actor_name, outcome="skipped")


def parse_address(text: str) -> tuple[str, int]:
    """`host:port` (`[::1]:9191` for IPv6) of METRICS_WORKER_ADDRESS; ValueError names what is wrong."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f"METRICS_WORKER_ADDRESS must be host:port (e.g. 127.0.0.1:9191), not {text!r}")
    return host.strip("[]"), int(port)


def worker_wsgi(app):
    """The workers' exposition: GET /metrics with the same rule of who may read, this host's counters only (the
    database's gauges are the web's)."""
    import json

    def respond(environ, start_response):
        from werkzeug.datastructures import EnvironHeaders

        if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            status, code, message = "404 Not Found", "not_found", "Not found."
        else:
            allowed = may_read(app.config, environ.get("REMOTE_ADDR"), EnvironHeaders(environ))
            if allowed:
                body = generate_latest(Scrape(app.config["PROMETHEUS_MULTIPROC_DIR"]))
                start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Cache-Control", "no-store")])
                return [body]
            status, code = ("401 Unauthorized", "unauthorized") if allowed is False else ("403 Forbidden", "forbidden")
            with app.app_context():
                message = str(_METRICS_TOKEN_NEEDED if allowed is False else _METRICS_LOCAL_ONLY)
        body = json.dumps({"error": {"code": code, "message": message}}, ensure_ascii=False).encode()
        start_response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
        return [body]

    return respond


def serve_in_thread(app, address: str) -> threading.Thread | None:
    """Serve `worker_wsgi` on `address` in a daemon thread of this process; None when another process has it."""
    import socket
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:  # a scrape every few seconds is not news
            pass

    host, port = parse_address(address)

    class Server(WSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    try:
        server = make_server(host, port, worker_wsgi(app), server_class=Server, handler_class=Quiet)
    except OSError:
        log.debug("metrics address %s is taken (another worker process of this host serves it)", address)
        return None
    thread = threading.Thread(target=server.serve_forever, name="banjie-metrics", daemon=True)
    thread.start()
    log.info("serving this host's metrics on %s (pid %s)", address, os.getpid())
    return thread


# --- wiring -------------------------------------------------------------------------------------------------------

def check_settings(config) -> None:
    """Malformed metrics settings stop start-up with a clear message."""
    if config["METRICS_WORKER_ADDRESS"]:
        parse_address(config["METRICS_WORKER_ADDRESS"])
    directory = config["PROMETHEUS_MULTIPROC_DIR"]
    if directory and not (os.path.isdir(directory) and os.access(directory, os.W_OK)):
        raise ValueError(f"PROMETHEUS_MULTIPROC_DIR={directory!r} must be an existing directory this process may write")


def init_app(app) -> None:
    """Time and count every request (unless METRICS_ENABLED is off) and serve /metrics."""
    check_settings(app.config)
    if not app.config["METRICS_ENABLED"]:
        return
    app.before_request_funcs.setdefault(None, []).insert(0, _start_timer)
    app.after_request(_record_request)
    app.register_blueprint(bp)
