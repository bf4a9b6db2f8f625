"""Management views: departments, users and their API tokens, service items."""
from __future__ import annotations


def register(admin) -> None:
    """Add the management views to the console."""
