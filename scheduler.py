"""Entry point of the scheduler process: one per deployment, next to the `dramatiq worker` processes.

    python scheduler.py

The same loop as `flask --app app escalation scheduler` (see escalation/scheduler.py), until SIGINT or SIGTERM.
"""
import logging

from app import create_app
from escalation.scheduler import run_process


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_process(create_app())


if __name__ == "__main__":
    main()
