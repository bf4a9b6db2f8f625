"""Entry of the Dramatiq worker processes.

    python worker.py                              # WORKER_PROCESSES processes of WORKER_THREADS threads (Procfile, deploy/)
    dramatiq --processes 2 --threads 4 --worker-shutdown-timeout 25000 worker   # the same, by hand

`dramatiq` imports this module as its broker module: it builds the app (which sets the broker), and with it the
actors. Run as a script, it starts `dramatiq` with the configured numbers in its place (same process id), as
`python worker.py dramatiq ...`: dramatiq's main process then writes its own lines (booting up, signals, a worker
process that died) in the format of every other line (tickets/logformat.py, loaded by its path: that process imports
nothing of the app, which each worker process it starts imports for itself).
"""
import os
import sys

RUN_DRAMATIQ = "dramatiq"  # python worker.py dramatiq ARGUMENTS: dramatiq's command line, run here


def dramatiq_command() -> list[str]:
    from app import from_environment, job_stop_seconds

    timeouts = {name: from_environment(name) for name in ("TWILIO_TIMEOUT_SECONDS", "WEBHOOK_TIMEOUT_SECONDS")}
    return [sys.executable, os.path.abspath(__file__), RUN_DRAMATIQ,
            "--processes", str(from_environment("WORKER_PROCESSES")),
            "--threads", str(from_environment("WORKER_THREADS")),
            "--worker-shutdown-timeout", str(int(job_stop_seconds(timeouts) * 1000)), "worker"]


def run_dramatiq(arguments: list[str]) -> int:
    """dramatiq's command line (`dramatiq ARGUMENTS`) in this process, its main process's lines in JSON when the app's
    are (LOG_FORMAT as the app resolves it from the environment)."""
    import importlib.util
    import logging

    import dramatiq.cli

    spec = importlib.util.spec_from_file_location(
        "banjie_dramatiq_logformat", os.path.join(os.path.dirname(os.path.abspath(__file__)), "tickets", "logformat.py"))
    logformat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(logformat)
    plain = dramatiq.cli.setup_parent_logging

    def setup_parent_logging(args, *, stream=sys.stderr):
        logger = plain(args, stream=stream)
        # the worker processes start with these handlers too, until their app replaces them (tickets/logs.py)
        logformat.outside_the_app(logging.getLogger().handlers)
        return logger

    dramatiq.cli.setup_parent_logging = setup_parent_logging
    sys.argv = ["dramatiq", *arguments]
    return dramatiq.cli.main()


if __name__ == "__main__":
    if sys.argv[1:2] == [RUN_DRAMATIQ]:
        sys.exit(run_dramatiq(sys.argv[2:]))
    command = dramatiq_command()
    os.chdir(os.path.dirname(os.path.abspath(__file__)))  # where dramatiq finds this module
    os.execv(command[0], command)
else:
    from app import create_app
    from tickets.broker import broker as broker_of

    app = create_app()
    broker = broker_of(app)
