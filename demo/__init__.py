"""The demo office of `make run` (`flask seed-demo`): six departments, one login of each role, three months of
past work (36 cases a month) and 14 recent cases, at every stage of the loop now.

It drives every room (the ticket workflow, the escalation ladder, the SMS room's history and test numbers),
so it sits beside app.py, which composes the rooms, rather than inside `tickets`, which imports no other room.
"""
from __future__ import annotations

from .data import DEMO_PASSWORD, DEMO_USERS
from .seed import seed

__all__ = ["DEMO_PASSWORD", "DEMO_USERS", "seed", "init_app"]


def init_app(app) -> None:
    """Wire the demo: `flask seed-demo`."""
    from .cli import seed_demo

    app.cli.add_command(seed_demo)
