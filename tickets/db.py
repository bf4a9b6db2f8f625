"""The database handle shared by views, the console and actors, and the column types every room uses."""
from __future__ import annotations

import contextlib
import enum
import functools
import signal
import threading
import time
from collections.abc import Sequence
from datetime import date, datetime, timezone

import orjson
import sqlalchemy as sa
from flask_sqlalchemy_lite import SQLAlchemy
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.instrumentation import manager_of_class
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


# A pooled PostgreSQL connection that sat unused longer than this is pinged before it is handed out (`configure_engine`).
PING_AFTER_IDLE_SECONDS = 1.0


def configure_engine(engine: sa.Engine) -> None:
    """Per-connection settings: on SQLite, WAL for concurrent readers, a busy wait, enforced foreign keys; on
    PostgreSQL, no JIT compilation, and a ping of a pooled connection that sat unused (`_ping_after_idle`).

    PostgreSQL compiles a query to machine code once its estimated cost passes `jit_above_cost`: the monthly report's
    aggregates over a city's month and the count of a city's cases passed it, and compiling them took longer than
    running them (1.4 s of a 2.1 s report query on 2,000,000 cases, tests/bench/README.md). Banjie's queries are
    index scans and aggregates that JIT does not speed up, so its connections turn it off.
    """
    if engine.dialect.name == "postgresql":
        @sa.event.listens_for(engine, "connect")
        def _postgresql_settings(dbapi_connection, _record):
            # outside a transaction, so that the pool's rollback on check-in does not undo it (SQLAlchemy's recipe)
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET jit = off")
            dbapi_connection.autocommit = autocommit

        _ping_after_idle(engine)
        return
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _ping_after_idle(engine: sa.Engine) -> None:
    """Hand out a pooled connection that sat unused more than PING_AFTER_IDLE_SECONDS only after a ping (a round trip
    of `SELECT 1`); a dead one (the server restarted, a proxy dropped it) is replaced by a new connection, so the
    request never sees it. A connection checked in less than that ago is handed out as it is: SQLAlchemy's
    `pool_pre_ping` pinged at every checkout, one round trip of a filing's four (issue 19's benchmark), although a
    busy worker's connection was in use a moment before. Connection pools commonly skip validating a connection
    used within the last half second or so (HikariCP's `aliveBypassWindowMs`: 500 ms). A connection that dies in
    that second fails its request with 503 and Retry-After (tickets/http.py), like one that dies while in use, and
    SQLAlchemy then replaces it."""

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_SECONDS:
            return  # new (it just connected) or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # Dead after sitting idle: most likely the server restarted, so are the others. The pool connects this
            # one again (and replaces the others when they are next checked out).
            raise sa.exc.InvalidatePoolError() from error


@contextlib.contextmanager
def ctrl_c_held():
    """Ctrl-C (SIGINT) held off until the block has run, then delivered: a batch's commit and the count of what it did
    happen both or neither, so a command stopped with Ctrl-C says exactly what its committed batches did (a Ctrl-C
    just after a commit had left that batch out of the count, and one during it may or may not have committed). In
    a thread other than the main one, which no signal reaches, it only runs the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append((number, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if callable(previous):
            previous(*caught[0])  # Python's own raises KeyboardInterrupt
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt


def commit_counted(session, count) -> None:
    """Commit `session`, then `count()` what the commit made lasting, with Ctrl-C held off across both
    (`ctrl_c_held`): every command that tallies committed batches commits through this."""
    with ctrl_c_held():
        session.commit()
        count()


def in_batches(session, claim, act, after=lambda ids: None) -> int:
    """Claim rows and act on them one committed batch at a time until a claim comes back empty; the batches done.

    `claim()` returns the batch's ids (locked for this transaction), `act(ids)` does the work, `after(ids)` runs
    once the batch is committed (with it: `commit_counted`). An error rolls its batch back and propagates: the
    batches before it stay done.
    The sweeps that settle due work (the escalation ladder, the closing of surveys) share this loop."""
    batches = 0
    while True:
        try:
            ids = claim()
            if not ids:
                session.rollback()
                return batches
            act(ids)
            commit_counted(session, lambda: after(ids))
        except Exception:
            session.rollback()
            raise
        batches += 1


def upsert(dialect: str, model, values: dict, key: Sequence[str], *, update: dict | None = None,
           replace: bool = False, where=None):
    """`INSERT ... ON CONFLICT (key) ...`, the same statement on PostgreSQL and SQLite (`dialect` names which):
    DO UPDATE SET `update` (column → value or expression), or with `replace` every given column but the key
    to the new row's value, only where the kept row meets `where` if given; DO NOTHING when neither is asked for.
    Add `.returning(...)` as needed."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(model).values(**values)
    if replace:
        update = {name: statement.excluded[name] for name in values if name not in key}
    if update:
        return statement.on_conflict_do_update(index_elements=list(key), set_=update, where=where)
    return statement.on_conflict_do_nothing(index_elements=list(key))
_CONSTANT = (type(None), bool, int, float, str, enum.Enum)  # defaults a new object may share with every other


@functools.lru_cache(maxsize=None)
def _defaults(model) -> tuple[dict, tuple]:
    """A table model's defaults: the constant ones as values, and the fields whose default is made anew for each
    object (a factory, or a value Pydantic copies), with their definitions."""
    if model.__sqlmodel_relationships__:
        raise TypeError(f"new_row does not set relationships ({model.__name__} has some)")
    constant, made = {}, []
    for name, field in model.model_fields.items():
        if field.is_required():
            continue
        if field.default_factory is None and isinstance(field.default, _CONSTANT):
            constant[name] = field.default
        else:
            made.append((name, field))
    return constant, tuple(made)


def new_row(model, **values):
    """A new object of a table model, as `model(**values)` makes it (the model's default for every field not
    given), for the objects of the filing hot path (issue 11, item 20).

    SQLModel's constructor assigns each field through both SQLAlchemy's and Pydantic's attribute handling
    (about 50 µs a row, a tenth of a filing's CPU for its five rows); this puts the values into the object's
    state at once, as SQLAlchemy does when it loads a row, at about a seventh of the cost. The object is
    transient, as from the constructor; `session.add` and a flush or `insert_pending` write it, and assigning
    to it afterwards is tracked as usual. Like SQLModel's constructor for tables, it validates nothing; a name
    that is not a field is a TypeError. For models without relationships (none of Banjie's tables has one).
    """
    constant, made = _defaults(model)
    unknown = values.keys() - model.model_fields.keys()
    if unknown:
        raise TypeError(f"{model.__name__} has no field {', '.join(sorted(unknown))}")
    given = set(values)
    for name, value in constant.items():
        if name not in given:
            values[name] = value
    for name, field in made:
        if name not in given:
            values[name] = field.get_default(call_default_factory=True)
    obj = manager_of_class(model).new_instance()  # SQLModel's __new__ and SQLAlchemy's state, as for a loaded row
    obj.__dict__.update(values)
    object.__setattr__(obj, "__pydantic_fields_set__", given)
    return obj


@functools.lru_cache(maxsize=None)
def _column_keys(table) -> tuple:
    """(attribute key, part of the primary key) for each column of a table."""
    return tuple((c.key, c.primary_key) for c in table.columns)


def _column_values(obj) -> dict:
    """The row of a new object: every column but a primary key still to be generated. Read from the object's
    state (a new object's values are all there; a column it has no value for is None, as its attribute reads)."""
    values = obj.__dict__
    return {key: values.get(key) for key, primary in _column_keys(type(obj).__table__)
            if not (primary and values.get(key) is None)}


@functools.lru_cache(maxsize=64)
def _insert_rows(dialect, shapes: tuple) -> tuple[sa.TextClause, tuple]:
    """One PostgreSQL statement inserting one row into each of `shapes` ((table, column keys), ...) and returning
    their ids, with what turns each row's values into its parameter.

    Row n arrives as one JSON object, parameter r<n>, which `json_populate_record` turns into a row of its
    table: one parameter per row, not one per column, because psycopg caches its parsing of a query only up
    to 50 parameters (and 4 KB), and parsed the eighty of filing's five rows again on every filing.
    """
    quote = dialect.identifier_preparer.quote
    parts, ids, converters = [], [], []
    for n, (table, keys) in enumerate(shapes):
        (key,) = table.primary_key.columns  # a single-column primary key, as every table of filing has
        name, columns = quote(table.name), ", ".join(quote(table.c[k].name) for k in keys)
        parts.append(f"row_{n} AS (INSERT INTO {name} ({columns}) SELECT {columns} "
                     f"FROM json_populate_record(NULL::{name}, CAST(:r{n} AS json)) RETURNING {quote(key.name)})")
        ids.append(f"(SELECT {quote(key.name)} FROM row_{n})")
        # Each column's own conversion first (UTCDateTime: aware, in UTC); JSON columns nest as they are.
        converters.append(tuple((table.c[k].name, None if isinstance(table.c[k].type, sa.JSON)
                                 else table.c[k].type.bind_processor(dialect)) for k in keys))
    return sa.text(f"WITH {', '.join(parts)} SELECT {', '.join(ids)}"), tuple(converters)


def _json_row(converters: tuple, values: dict) -> str:
    """A row's values as the JSON object `json_populate_record` reads (times in ISO 8601 with their offset)."""
    row = {}
    for (name, process), value in zip(converters, values.values()):
        if value is not None and process is not None:
            value = process(value)
        row[name] = value.isoformat() if isinstance(value, (datetime, date)) else value
    return orjson.dumps(row).decode()  # UTF-8 as it is; a sixth of json.dumps's time (five rows a filing)


@functools.lru_cache(maxsize=1)
def _table_order() -> dict:
    """Tables in the order their foreign keys allow them to be written."""
    return {table: n for n, table in enumerate(SQLModel.metadata.sorted_tables)}


# Called with each object `insert_pending` writes, before it is written, as a `before_flush` listener would see it.
BEFORE_INSERT_PENDING: list = []


def insert_pending(session, *, keep=(), commit: bool = False) -> None:
    """Write the objects added to `session` since its last flush, as `session.flush()` would.

    On PostgreSQL they go in one statement (their INSERTs as the parts of a data-modifying WITH; foreign keys
    are checked at its end) instead of the unit of work's one INSERT each: for the hot path of filing, whose
    five rows took five statements and most of its time (issue 11, item 20). The objects must be new and
    complete (an SQLModel constructor or `new_row` fills every field, references to one another by ids set
    beforehand). Afterwards every object has its id; those in `keep` stay in the session as if loaded (a
    change to them is written by the next flush), the others leave it (a query in the same transaction loads
    their rows again): putting an object back costs about as much as writing it. No mapper insert events fire
    for them. Elsewhere one INSERT each, in the order the foreign keys need (the unit of work orders tables by
    relationships, and these have none).

    `commit`: then commit the session, which must hold nothing else to write. On PostgreSQL, when nothing of the
    session's transaction has reached the server (`alone`), the one statement is its own transaction: no BEGIN
    before it and no COMMIT after it, two round trips of a filing's four (a statement is atomic by itself).
    """
    order = _table_order()
    pending = sorted(session.new, key=lambda obj: order[type(obj).__table__])  # a stable shape to cache
    if not pending:
        return
    for hook in BEFORE_INSERT_PENDING:  # what a flush would do first (the blind indexes: tickets/privacy/crypto.py)
        for obj in pending:
            hook(obj)
    connection = session.connection()
    rows = [(type(obj).__table__, _column_values(obj)) for obj in pending]
    if connection.dialect.name == "postgresql":
        statement, converters = _insert_rows(connection.dialect, tuple((table, tuple(values)) for table, values in rows))
        params = {f"r{n}": _json_row(convert, values)
                  for n, (convert, (_table, values)) in enumerate(zip(converters, rows))}
        if commit and alone(session, connection):
            with _autocommit(connection):
                ids = driver_row(connection, statement, params)
        else:
            ids = driver_row(connection, statement, params)
    else:
        ids = [connection.execute(sa.insert(table), values).inserted_primary_key[0] for table, values in rows]
    kept = {id(obj) for obj in keep}
    for obj, row_id in zip(pending, ids):
        session.expunge(obj)
        (key,) = type(obj).__table__.primary_key.columns
        setattr(obj, key.key, row_id)
        if id(obj) in kept:
            make_transient_to_detached(obj)
            session.add(obj)
    if commit:
        session.commit()  # after the statement of its own: nothing left to send (the driver's commit is a no-op)


@functools.lru_cache(maxsize=64)
def _driver_statement(statement, dialect) -> tuple[str, object, dict]:
    """`statement` compiled once for `dialect`: its SQL, the compiled form (for the parameters it binds itself) and
    the bind processors of its parameters' types."""
    compiled = statement.compile(dialect=dialect)
    return compiled.string, compiled, dict(compiled._bind_processors)


def driver_row(connection: sa.Connection, statement, params: dict) -> tuple:
    """The one row of `statement` (a cached, compiled-once statement of the filing's hot path), run on the driver's
    cursor through SQLAlchemy's `_cursor_execute`, which keeps its events, logging and the translation of driver
    errors (a lost connection invalidated, IntegrityError and OperationalError as SQLAlchemy's), but leaves out the
    result object SQLAlchemy builds around every execution from the cursor's description: a seventh of a filing's
    CPU for its two statements (tests/bench/README.md, third round). `params` are the statement's bind parameters
    by name, as for `connection.execute`; each goes through its type's conversion."""
    sql, compiled, processors = _driver_statement(statement, connection.dialect)
    values = compiled.construct_params(params)
    for name, process in processors.items():
        if values.get(name) is not None:
            values[name] = process(values[name])
    cursor = connection.connection.cursor()
    try:
        connection._cursor_execute(cursor, sql, values)
        return cursor.fetchone()
    finally:
        cursor.close()


def autocommit_row(session, statement, params: dict) -> tuple:
    """Run one statement in a transaction of its own (autocommit) on PostgreSQL and return its one row.

    When the session's transaction has not begun on the server yet, the statement runs on the connection the
    session is about to use, switched to autocommit for it (the same toggle as SQLAlchemy's own pre-ping): no
    second pool checkout and no second ping. Otherwise it runs on a connection of its own.
    """
    connection = session.connection()
    if nothing_begun(connection):
        with _autocommit(connection):
            return driver_row(connection, statement, params)
    with session.get_bind().connect().execution_options(isolation_level="AUTOCOMMIT") as own:
        return tuple(own.execute(statement, params).one())


def nothing_begun(connection: sa.Connection) -> bool:
    """PostgreSQL: the session's connection (`session.connection()`) has no transaction open on the server (none of the
    session's statements has run since its last commit), so a statement run on it in autocommit sees all there is and
    is a transaction of its own."""
    from psycopg.pq import TransactionStatus  # the PostgreSQL driver Banjie ships (app.py asks for it)

    raw = connection.connection.dbapi_connection
    return raw.info.transaction_status == TransactionStatus.IDLE and not raw.autocommit


def alone(session, connection: sa.Connection) -> bool:
    """PostgreSQL: `nothing_begun`, and the session has nothing to write but its new objects, so one statement writing
    them all, committed by itself, is the whole transaction (`insert_pending(commit=True)`)."""
    return not session.dirty and not session.deleted and nothing_begun(connection)


@contextlib.contextmanager
def _autocommit(connection: sa.Connection):
    """The connection's driver connection in autocommit for the statements of the block (the same toggle as
    SQLAlchemy's own pre-ping): each is a transaction of its own, with no BEGIN sent before it. Only where
    `nothing_begun`."""
    raw = connection.connection.dbapi_connection
    raw.autocommit = True
    try:
        yield
    finally:
        if not raw.closed:
            raw.autocommit = False
