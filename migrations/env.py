"""Alembic environment: runs against the app's engine (handed in by `flask db ...`) or DATABASE_URL."""
from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel

import escalation.models  # noqa: F401  (registers the tables of each room)
import notify.models  # noqa: F401
import reports.models  # noqa: F401
import tickets.models  # noqa: F401
from tickets.db import UTCDateTime

config = context.config
target_metadata = SQLModel.metadata


def render_item(type_, obj, autogen_context):
    """Write our TypeDecorator as the plain column type it stands for, so migrations need no app import."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and obj.__class__.__module__.startswith("sqlmodel"):
        return "sa.String()"
    return False


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


engine = config.attributes.get("engine")
if engine is None:
    engine = sa.create_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a table (new table, copy, drop the old one); with foreign keys enforced, dropping a
        # table that other rows reference fails. Off for the migration (a no-op inside a transaction, so first),
        # then checked: a migration must leave no dangling reference.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    run(connection)
    connection.commit()
    if sqlite:
        dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        if dangling:
            raise RuntimeError(f"the migration left references to missing rows: {dangling[:5]}")
