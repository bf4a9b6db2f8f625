"""gunicorn's configuration for Banjie's web processes: the Procfile's `web` (make prod) and deploy/banjie-web.service.

    gunicorn -c deploy/gunicorn.conf.py

Listens on HOST:PORT (127.0.0.1:5000 by default, for nginx on the same host in front), with WEB_WORKERS processes
(4: what measured best on two cores, README's Benchmarks) of WEB_THREADS threads each: 1 is the sync worker, which
wants a buffering proxy in front (nginx's defaults buffer requests and responses); more than 1 is the gthread worker,
which slow clients cannot tie up.

The four settings are read here as the app reads them (`app.from_environment`, with the defaults of app.SETTINGS:
tests/test_production.py holds them equal) but without importing the app. What gunicorn's master process imports
stays in every worker it forks: after a reload (HUP, `systemctl reload banjie-web`) the new workers would run the code
the master started with, not the release's.
"""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# The ranges of app.RANGES for the numbers read here (tests/test_production.py holds them equal): the master binds
# before any worker builds the app that would refuse them.
RANGES = {"PORT": (1, 65535), "WEB_WORKERS": (1, 256), "WEB_THREADS": (1, 256)}


def setting(name: str, default):
    """The environment's value, of the default's type; the default when unset or empty."""
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = type(default)(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} in the environment is not a valid {type(default).__name__}") from None
    low, high = RANGES.get(name, (value, value))
    if not low <= value <= high:
        raise SystemExit(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return value


wsgi_app = "app:create_app()"
chdir = str(ROOT)
proc_name = "banjie-web"

_host, _port = setting("HOST", "127.0.0.1"), setting("PORT", 5000)
bind = [f"[{_host}]:{_port}" if ":" in _host else f"{_host}:{_port}"]
workers = setting("WEB_WORKERS", 4)
threads = setting("WEB_THREADS", 1)
worker_class = "gthread" if threads > 1 else "sync"

# A request that takes longer is a bug or a stuck database: the worker is replaced (and the request answered 502 by
# nginx). Reports and exports run on workers, not in requests.
timeout = 30
graceful_timeout = 30
# One line per request on stdout, and gunicorn's own lines on stderr: JSON lines with the request id, phone numbers and
# codes masked (tickets/logs.py formats both logs in each worker).
accesslog = "-"
errorlog = "-"
# gunicorn's control socket (gunicornc) is one path per user: two stacks on one host would share it. Not used.
control_socket_disable = True


def child_exit(server, worker):
    """A web worker process ended: its Prometheus values stop counting as live (multiprocess mode)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")  # where prometheus_client itself reads it
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, directory)


def _logger_class():
    """gunicorn's logger with its own lines (the master's: starting, workers booted, timed out, signals) in the JSON
    of every other line when the app's are JSON (tickets/logformat.py, loaded by its path: the master imports nothing
    of the app). Set again at each reload, which makes gunicorn's handlers anew. Workers then format both logs
    themselves (tickets/logs.py)."""
    import importlib.util

    from gunicorn.glogging import Logger

    spec = importlib.util.spec_from_file_location("banjie_gunicorn_logformat", ROOT / "tickets" / "logformat.py")
    logformat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(logformat)

    class BanjieLogger(Logger):
        def setup(self, cfg):
            super().setup(cfg)
            logformat.outside_the_app(self.error_log.handlers)

    return BanjieLogger


logger_class = _logger_class()
