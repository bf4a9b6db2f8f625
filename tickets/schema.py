"""The database schema: Alembic's migrations under `migrations/`, run by `flask db ...`, the tests and the benchmarks."""
from __future__ import annotations

from pathlib import Path

from .db import db

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config():
    """Alembic's configuration for the app's engine (within an app context)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = db.engine
    return config


def upgrade_database(revision: str = "head") -> None:
    """Bring the schema up to `revision` (default: the newest)."""
    from alembic import command

    command.upgrade(alembic_config(), revision)


def downgrade_database(revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(), revision)
