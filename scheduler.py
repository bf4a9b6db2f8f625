"""Entry point of the scheduler process: one per deployment, next to the `dramatiq worker` processes.

    python scheduler.py

The same loop as `flask --app app escalation scheduler` (see escalation/scheduler.py), until SIGINT or SIGTERM.
"""
from app import create_app
from escalation.scheduler import run_process


def main() -> None:
    run_process(create_app())  # create_app sets up the process's log lines (LOG_FORMAT, LOG_LEVEL: tickets/logs.py)


if __name__ == "__main__":
    main()
