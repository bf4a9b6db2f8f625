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
        # one transaction for the whole run on SQLite too (see below: it is a real one there), not one per revision
        transactional_ddl=True,
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
        # The whole run in one real transaction, DDL included: Python's sqlite3 module opens one only before a
        # row is written, so a CREATE or DROP before it was committed on its own, and a run that failed part way
        # (a downgrade that refuses, after the ones above it ran) left tables half rebuilt. With the module's own
        # transaction handling off for this connection, BEGIN is sent here; commit and rollback end it as usual.
        driver = connection.connection.driver_connection
        connection.rollback()  # nothing is open: the PRAGMA wrote no row
        isolation, driver.isolation_level = driver.isolation_level, None
        driver.execute("BEGIN")
    try:
        run(connection)
        connection.commit()
    finally:
        if sqlite:
            if driver.in_transaction:
                driver.rollback()
            driver.isolation_level = isolation
    if sqlite:
        dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        if dangling:
            raise RuntimeError(f"the migration left references to missing rows: {dangling[:5]}")
