"""Keep one command running: start it again whenever it exits, until told to stop. What each line of the Procfile
runs under, so that `make prod` (honcho) brings back a process that died, as systemd's `Restart=always` does.

    python deploy/respawn.py gunicorn -c deploy/gunicorn.conf.py 'app:create_app()'

Why it is needed: honcho stops every process as soon as one exits, and Dramatiq's main process exits (after stopping
its other worker processes) when one of its worker processes dies, so one `kill -9` of a worker would stop the
whole stack. Under this wrapper the worker's command starts again and honcho sees nothing.

- The command runs in a process group of its own, so that honcho's stop (SIGTERM to the wrapper's group) reaches
  it once, through the wrapper, and not twice (a second SIGTERM makes a Dramatiq worker process quit at once,
  abandoning its messages). On Linux the command also gets SIGTERM when the wrapper dies, whatever kills it.
- SIGTERM or SIGINT: passed on to the command, which is then left to finish; the wrapper exits with its status.
  SIGHUP (gunicorn's reload) is passed on and nothing else.
- A command that ends, however it ends, is started again after 1 s, doubling up to 30 s while it keeps ending
  within 10 s of its start (a port in use, a database away): each time one line says so, with its exit status.
  (`make prod` runs `flask prod check` before anything starts, so a bad setting stops it there instead.)

Standard library only: it imports nothing of Banjie. Its lines are JSON when the app's are (LOG_FORMAT as the app
resolves it from the environment: tickets/logformat.py, loaded by its path, with python-json-logger), else text.
"""
from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

FIRST_DELAY, LONGEST_DELAY, SHORT_RUN = 1.0, 30.0, 10.0


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the wrapper dies (Linux prctl PR_SET_PDEATHSIG)."""
    os.setsid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the command outlives a wrapper killed with -9
        pass


def _log() -> logging.Logger:
    """One line per event on stderr: in the JSON of every other line of the stack, or `respawn: ...`."""
    log = logging.getLogger("banjie.respawn")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("respawn: %(message)s"))
    spec = importlib.util.spec_from_file_location("banjie_respawn_logformat",
                                                  Path(__file__).resolve().parent.parent / "tickets" / "logformat.py")
    logformat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(logformat)
    try:
        logformat.outside_the_app([handler])
    except ImportError:  # run by a Python without the app's packages: text rather than nothing
        pass
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


LOG = _log()


def say(text: str) -> None:
    LOG.info(text)


def describe(status: int) -> str:
    return f"killed by signal {-status}" if status < 0 else f"exit status {status}"


def main(command: list[str]) -> int:
    if not command:
        say("usage: respawn.py COMMAND [ARGUMENT...]")
        return 2
    name = os.path.basename(command[0]) if command[0] not in ("python", "python3", sys.executable) else " ".join(command[:2])
    stopping = False
    child: subprocess.Popen | None = None

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    def forward(signum, _frame):
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, forward)

    short_runs = 0  # how many times in a row it ended within SHORT_RUN of its start
    while True:
        started = time.monotonic()
        try:
            child = subprocess.Popen(command, preexec_fn=_die_with_parent)
        except OSError as error:
            say(f"cannot start {name}: {error}")
            return 127
        if stopping:  # told to stop while it was being started
            child.terminate()
        status = child.wait()
        if stopping:
            return 0 if status in (0, -signal.SIGTERM, -signal.SIGINT) else status
        ran = time.monotonic() - started
        short_runs = short_runs + 1 if ran < SHORT_RUN else 0
        delay = min(FIRST_DELAY * 2 ** max(short_runs - 1, 0), LONGEST_DELAY)
        say(f"{name} (pid {child.pid}) ended ({describe(status)}) after {ran:.1f} s; starting it again in {delay:g} s")
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopping:
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
