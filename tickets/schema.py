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


_HEADS: list[tuple[str, ...]] = []


def head_revisions() -> tuple[str, ...]:
    """The newest revision(s) of the migrations this code ships, read once per process (it parses every file)."""
    if not _HEADS:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        _HEADS.append(tuple(sorted(ScriptDirectory.from_config(config).get_heads())))
    return _HEADS[0]


def current_revisions(session) -> tuple[str, ...]:
    """The revision(s) the database is at (an error when it has never been upgraded: no alembic_version table)."""
    import sqlalchemy as sa

    return tuple(sorted(session.scalars(sa.text("SELECT version_num FROM alembic_version"))))
