"""Entry of the Dramatiq worker processes.

    python worker.py                              # WORKER_PROCESSES processes of WORKER_THREADS threads (Procfile, deploy/)
    dramatiq --processes 2 --threads 4 worker     # the same, by hand

`dramatiq` imports this module as its broker module: it builds the app (which sets the broker), and with it the
actors. Run as a script, it only starts `dramatiq` with the configured numbers, in its place (same process id).
"""
import os
import sys


def dramatiq_command() -> list[str]:
    from app import from_environment

    return [sys.executable, "-m", "dramatiq", "--processes", str(from_environment("WORKER_PROCESSES")),
            "--threads", str(from_environment("WORKER_THREADS")), "worker"]


if __name__ == "__main__":
    command = dramatiq_command()
    os.chdir(os.path.dirname(os.path.abspath(__file__)))  # where dramatiq finds this module
    os.execv(command[0], command)
else:
    from app import create_app
    from tickets.broker import broker as broker_of

    app = create_app()
    broker = broker_of(app)
