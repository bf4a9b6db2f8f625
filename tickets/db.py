"""The database handle shared by views, the console and actors, and the column types every room uses."""
from __future__ import annotations

import functools
from datetime import datetime, timezone

import sqlalchemy as sa
from flask_sqlalchemy_lite import SQLAlchemy
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, SQLModel

# Stable constraint names: Alembic's batch mode on SQLite needs them to alter tables.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(session_options={"class_": Session, "expire_on_commit": False})


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(sa.types.TypeDecorator):
    """A timezone-aware UTC instant on every backend.

    SQLite has no time zones, so values are stored there as naive UTC and given their zone back on load.
    Naive datetimes are refused on the way in: a missing zone is a bug, not an assumption to make.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def configure_engine(engine: sa.Engine) -> None:
    """Per-connection settings: on SQLite, WAL for concurrent readers, a busy wait, enforced foreign keys."""
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _column_values(obj) -> dict:
    """The row of a new object: every column but a primary key still to be generated."""
    table = type(obj).__table__
    return {c.key: getattr(obj, c.key) for c in table.columns if not (c.primary_key and getattr(obj, c.key) is None)}


def _attach(session, obj, row_id) -> None:
    """Give a freshly inserted object its id and put it in the session as if it had been loaded."""
    obj.id = row_id
    make_transient_to_detached(obj)
    session.add(obj)


def _child_key(parent_table: sa.Table, child_table: sa.Table) -> str:
    """The child's column that refers to the parent's id."""
    keys = [fk.parent.key for fk in child_table.foreign_keys if fk.column.table is parent_table]
    if len(keys) != 1:
        raise ValueError(f"{child_table.name} must refer to {parent_table.name} exactly once")
    return keys[0]


@functools.lru_cache(maxsize=64)
def _insert_with_children(parent: sa.Table, parent_keys: tuple, children: tuple) -> sa.Select:
    """One PostgreSQL statement that inserts a parent row and child rows referring to it, returning every id.

    `children` is ((table, column keys), ...); parameters are named p_<key> for the parent, c<n>_<key> for
    child n. The children's references to the parent come from the parent's RETURNING in the same statement.
    """
    def params(table, keys, prefix):
        return {k: sa.bindparam(f"{prefix}_{k}", type_=table.c[k].type) for k in keys}

    parent_row = sa.insert(parent).values(params(parent, parent_keys, "p")).returning(parent.c.id).cte("parent_row")
    parent_id = sa.select(parent_row.c.id).scalar_subquery()
    ids = [parent_id]
    for n, (table, keys) in enumerate(children):
        values = params(table, keys, f"c{n}") | {_child_key(parent, table): parent_id}
        child_row = sa.insert(table).values(values).returning(table.c.id).cte(f"child_row_{n}")
        ids.append(sa.select(child_row.c.id).scalar_subquery())
    return sa.select(*ids)  # each WITH part inserts one row: one row of ids


def insert_together(session, parent, *children) -> None:
    """Write a new object and new objects that refer to it, and attach them all to `session` as if loaded.

    For the hot path of filing (issue 11, item 20): on PostgreSQL the rows go in one statement (the parent's
    INSERT ... RETURNING and the children's INSERTs as a data-modifying WITH), instead of one flush for the
    parent (whose id the children need) and one INSERT per child, each through the unit of work. Elsewhere
    one INSERT each. Every object must be complete (an SQLModel constructor fills every field); the
    children's reference to the parent is filled in here. No mapper insert events fire for them.
    """
    connection = session.connection()
    parent_table = type(parent).__table__
    if connection.dialect.name != "postgresql":
        _attach(session, parent, connection.execute(sa.insert(parent_table), _column_values(parent)).inserted_primary_key[0])
        for child in children:
            child_table = type(child).__table__
            setattr(child, _child_key(parent_table, child_table), parent.id)
            row_id = connection.execute(sa.insert(child_table), _column_values(child)).inserted_primary_key[0]
            _attach(session, child, row_id)
        return
    parent_values = _column_values(parent)
    params = {f"p_{k}": v for k, v in parent_values.items()}
    shapes = []
    for n, child in enumerate(children):
        child_table = type(child).__table__
        key = _child_key(parent_table, child_table)
        values = {k: v for k, v in _column_values(child).items() if k != key}
        shapes.append((child_table, tuple(values)))
        params.update({f"c{n}_{k}": v for k, v in values.items()})
    statement = _insert_with_children(parent_table, tuple(parent_values), tuple(shapes))
    ids = connection.execute(statement, params).one()
    _attach(session, parent, ids[0])
    for child, row_id in zip(children, ids[1:]):
        setattr(child, _child_key(parent_table, type(child).__table__), parent.id)
        _attach(session, child, row_id)


@functools.lru_cache(maxsize=64)
def _insert_rows(shapes: tuple) -> sa.Select:
    """One PostgreSQL statement inserting one row into each of `shapes` ((table, column keys), ...), returning
    their ids; parameters are named r<n>_<key> for row n."""
    ids = []
    for n, (table, keys) in enumerate(shapes):
        values = {k: sa.bindparam(f"r{n}_{k}", type_=table.c[k].type) for k in keys}
        row = sa.insert(table).values(values).returning(table.c.id).cte(f"row_{n}")
        ids.append(sa.select(row.c.id).scalar_subquery())
    return sa.select(*ids)


def insert_pending(session) -> None:
    """Write the objects added to `session` since its last flush now, and keep them in it as if loaded.

    For the hot path of filing (issue 11, item 20), after the receivers of `event_recorded` have added their
    rows: on PostgreSQL the rows go in one statement (a data-modifying WITH of independent INSERTs), instead
    of the unit of work's flush with one INSERT each, which cost about a quarter of a filing. Elsewhere one
    INSERT each. Only for new rows that refer to rows already written, not to one another; no mapper insert
    events fire for them.
    """
    pending = sorted(session.new, key=lambda obj: type(obj).__table__.name)  # a stable shape for the statement cache
    if not pending:
        return
    for obj in pending:
        session.expunge(obj)
    connection = session.connection()
    rows = [(type(obj).__table__, _column_values(obj)) for obj in pending]
    if connection.dialect.name != "postgresql":
        ids = [connection.execute(sa.insert(table), values).inserted_primary_key[0] for table, values in rows]
    else:
        statement = _insert_rows(tuple((table, tuple(values)) for table, values in rows))
        params = {f"r{n}_{k}": v for n, (_table, values) in enumerate(rows) for k, v in values.items()}
        ids = connection.execute(statement, params).one()
    for obj, row_id in zip(pending, ids):
        _attach(session, obj, row_id)


def autocommit_scalar(session, statement, params: dict):
    """Run one statement in a transaction of its own (autocommit) on PostgreSQL and return its scalar.

    When the session's transaction has not begun on the server yet, the statement runs on the connection the
    session is about to use, switched to autocommit for it (the same toggle as SQLAlchemy's own pre-ping): no
    second pool checkout and no second ping. Otherwise it runs on a connection of its own.
    """
    from psycopg.pq import TransactionStatus  # the PostgreSQL driver Banjie ships (app.py asks for it)

    connection = session.connection()
    raw = connection.connection.dbapi_connection
    if raw.info.transaction_status == TransactionStatus.IDLE and not raw.autocommit:
        raw.autocommit = True
        try:
            return connection.execute(statement, params).scalar_one()
        finally:
            if not raw.closed:
                raw.autocommit = False
    with session.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as own:
        return own.execute(statement, params).scalar_one()
