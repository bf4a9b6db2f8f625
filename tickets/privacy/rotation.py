"""Key rotation: every encrypted value (and every clear one from before encryption) brought under the current key, in
batches committed one by one, resumable; the blind indexes recomputed under a new index key; counts per key.

`flask privacy new-key` makes a key, `flask privacy status` counts, `flask privacy rotate-key [--batch N] [--reindex]`
rotates. The rows are read and written as they are stored (plain columns, not the models' types): a value is opened
with the key its prefix names and sealed again with the current one, in the same column.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Optional

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from ..db import commit_counted
from . import access, crypto, privacy_cli


@dataclass(frozen=True)
class Column:
    """One encrypted column, its table's key, and the blind index that follows it (if any)."""

    table: str
    name: str
    key: str = "id"
    index: Optional[str] = None  # the index column
    kind: str = "phone"          # what the index is of: phone or name
    binary: bool = False

    @property
    def label(self) -> str:  # the associated data of its values
        return f"{self.table}.{self.name}"

    def selectable(self):
        """The table as stored (plain columns: values read and written as they are), one object per column."""
        return _selectable(self)


@functools.lru_cache(maxsize=None)
def _selectable(column: "Column"):
    cols = [sa.column(column.key), sa.column(column.name, sa.LargeBinary if column.binary else sa.String)]
    if column.index:
        cols.append(sa.column(column.index, sa.String))
    return sa.table(column.table, *cols)


# Every column holding a citizen's name or number (or a file's bytes, the key of a file on the volume, or a text that
# may carry a query code). Staff and department numbers (user_account.phone, department.supervisor_phone,
# leader_phone) are staff data and stay in clear.
COLUMNS = (
    Column("ticket", "citizen_name", index="name_index", kind="name"),
    Column("ticket", "phone", index="phone_index"),
    Column("survey", "phone", index="phone_index"),
    Column("sms_message", "phone", index="phone_index"),
    Column("sms_message", "body"),  # a receipt's or a new code's text carries the query code
    Column("sms_inbound", "phone"),
    Column("sms_opt_out", "number", key="phone"),
    Column("attachment_blob", "data", key="key", binary=True),
    Column("attachment_file_key", "file_key", key="key"),  # the keys of the files on the volume (tickets/storage.py)
)
OPT_OUT = sa.table("sms_opt_out", sa.column("phone", sa.String), sa.column("number", sa.String))


def _prefix(column: Column, text: str):
    return text.encode() if column.binary else text


def _starts(column: Column, text: str):
    prefix = _prefix(column, text)
    return sa.func.substr(column.selectable().c[column.name], 1, len(prefix)) == prefix


def not_current(column: Column, keys: crypto.KeyRing):
    """The values of `column` not under the current key (clear ones included); NULL is nothing to do."""
    c = column.selectable().c
    return sa.and_(c[column.name].is_not(None), sa.not_(_starts(column, keys.current_prefix)))


def _open(keys: crypto.KeyRing, column: Column, stored):
    return keys.decrypt_bytes(stored, column.label) if column.binary else keys.decrypt(stored, column.label)


def _seal(keys: crypto.KeyRing, column: Column, value):
    return keys.encrypt_bytes(value, column.label) if column.binary else keys.encrypt(value, column.label)


def _index(keys: crypto.KeyRing, column: Column, value: str) -> str:
    return keys.phone_index(value) if column.kind == "phone" else keys.name_index(value)


def clear_opt_outs():
    """Opt-outs written before encryption: the number itself in `phone` (E.164 starts with +), no `number`."""
    return sa.func.substr(OPT_OUT.c.phone, 1, 1) == "+"


def remaining(session, keys: crypto.KeyRing) -> dict[str, int]:
    """{column label: values not under the current key}, and the opt-outs still kept by their number."""
    found = {column.label: session.scalar(sa.select(sa.func.count()).select_from(column.selectable())
                                          .where(not_current(column, keys))) for column in COLUMNS}
    found["sms_opt_out.phone"] = session.scalar(sa.select(sa.func.count()).select_from(OPT_OUT)
                                                .where(clear_opt_outs()))
    return found


def status(session, keys: crypto.KeyRing) -> dict[str, dict[str, int]]:
    """{column label: {key id or "clear" or "unknown key": values}} (NULLs not counted)."""
    counts = {}
    for column in COLUMNS:
        table = column.selectable()
        value = table.c[column.name]
        row = {}
        for key_id, _raw in keys.keys:
            row[key_id] = session.scalar(sa.select(sa.func.count()).select_from(table)
                                         .where(_starts(column, f"{crypto.PREFIX}{key_id}:")))
        row["clear"] = session.scalar(sa.select(sa.func.count()).select_from(table).where(
            value.is_not(None), sa.not_(_starts(column, crypto.PREFIX))))
        total = session.scalar(sa.select(sa.func.count()).select_from(table).where(value.is_not(None)))
        row["unknown key"] = total - sum(row.values())
        counts[column.label] = row
    counts["sms_opt_out.phone"] = {"clear": session.scalar(sa.select(sa.func.count()).select_from(OPT_OUT)
                                                           .where(clear_opt_outs()))}
    return counts


def _rotate_column(session, keys, column: Column, batch: int, progress) -> int:
    table = column.selectable()
    c = table.c
    done, last = 0, None
    while True:
        query = sa.select(*c).where(not_current(column, keys)).order_by(c[column.key]).limit(batch)
        if last is not None:
            query = query.where(c[column.key] > last)
        rows = session.execute(query).all()
        if not rows:
            return done
        for row in rows:
            stored = row[1]
            value = _open(keys, column, stored)
            values = {column.name: _seal(keys, column, value)}
            was_clear = keys.key_id_of(stored) is None
            if column.index and was_clear:  # clear from before encryption: it gets its blind index now
                values[column.index] = _index(keys, column, value)
            # unchanged since it was read (else the next run takes it)
            session.execute(sa.update(table).where(c[column.key] == row[0], c[column.name] == stored).values(values))
        commit_counted(session, lambda: progress(len(rows)) if progress else None)
        done += len(rows)
        last = rows[-1][0]


def _rotate_opt_outs(session, keys, batch: int, progress) -> int:
    done = 0
    while True:
        rows = session.execute(sa.select(OPT_OUT.c.phone).where(clear_opt_outs()).order_by(OPT_OUT.c.phone)
                               .limit(batch)).scalars().all()
        if not rows:
            return done
        for number in rows:
            index = keys.phone_index(number)
            if session.scalar(sa.select(sa.func.count()).select_from(OPT_OUT).where(OPT_OUT.c.phone == index)):
                session.execute(sa.delete(OPT_OUT).where(OPT_OUT.c.phone == number))  # already kept by its index
            else:
                session.execute(sa.update(OPT_OUT).where(OPT_OUT.c.phone == number).values(
                    phone=index, number=keys.encrypt(number, "sms_opt_out.number")))
        commit_counted(session, lambda: progress(len(rows)) if progress else None)
        done += len(rows)


def _reindex_column(session, keys, column: Column, batch: int, progress) -> int:
    """Every index of `column` recomputed under the current index key (rows without one, e.g. anonymised, keep none)."""
    table = column.selectable()
    c = table.c
    done, last = 0, None
    while True:
        query = sa.select(*c).where(c[column.index].is_not(None)).order_by(c[column.key]).limit(batch)
        if last is not None:
            query = query.where(c[column.key] > last)
        rows = session.execute(query).all()
        if not rows:
            return done
        for key, stored, index in rows:
            fresh = _index(keys, column, _open(keys, column, stored))
            if fresh != index:
                session.execute(sa.update(table).where(c[column.key] == key).values({column.index: fresh}))
        commit_counted(session, lambda: progress(len(rows)) if progress else None)
        done += len(rows)
        last = rows[-1][0]


def _reindex_opt_outs(session, keys, batch: int, progress) -> int:
    done, last = 0, None
    while True:
        query = sa.select(OPT_OUT.c.phone, OPT_OUT.c.number).where(OPT_OUT.c.number.is_not(None)) \
            .order_by(OPT_OUT.c.phone).limit(batch)
        if last is not None:
            query = query.where(OPT_OUT.c.phone > last)
        rows = session.execute(query).all()
        if not rows:
            return done
        for index, number in rows:
            fresh = keys.phone_index(keys.decrypt(number, "sms_opt_out.number"))
            if fresh == index:
                continue
            if session.scalar(sa.select(sa.func.count()).select_from(OPT_OUT).where(OPT_OUT.c.phone == fresh)):
                # The number opted out again after the index key changed (its old row unseen by the lookup): one
                # opt-out is kept, the one already under the fresh index, as `_rotate_opt_outs` does.
                session.execute(sa.delete(OPT_OUT).where(OPT_OUT.c.phone == index))
            else:
                session.execute(sa.update(OPT_OUT).where(OPT_OUT.c.phone == index).values(phone=fresh))
        commit_counted(session, lambda: progress(len(rows)) if progress else None)
        done += len(rows)
        last = rows[-1][0]


def reindex_total(session) -> int:
    return sum(session.scalar(sa.select(sa.func.count()).select_from(column.selectable())
                              .where(column.selectable().c[column.index].is_not(None)))
               for column in COLUMNS if column.index) + \
        session.scalar(sa.select(sa.func.count()).select_from(OPT_OUT).where(OPT_OUT.c.number.is_not(None)))


def rotate(session, keys: crypto.KeyRing, *, batch: int = 500, reindex: bool = False,
           progress: Callable[[int], None] | None = None, actor: str = "cli") -> int:
    """Every value not under the current key re-encrypted with it (a clear one encrypted and indexed), batch by batch,
    each committed; with `reindex`, then every blind index recomputed. Stopped at any point, a new run takes what is
    left. Writes an access-log line as it begins (`access.record_run_start`) and one (the values changed; `finished`
    false when it was stopped) when it ends, or stops on an error or Ctrl-C. A value whose key is missing or wrong
    stops it with `crypto.PrivacyKeyError`."""
    done = [0]  # values in committed batches, counted before `progress` hears of them
    finished = False
    access.record_run_start(session, "rotate_key", actor=actor, detail={"key_id": keys.current, "reindex": reindex})

    def committed(n: int) -> None:
        done[0] += n
        if progress:
            progress(n)

    try:
        for column in COLUMNS:
            _rotate_column(session, keys, column, batch, committed)
        _rotate_opt_outs(session, keys, batch, committed)
        if reindex:
            for column in COLUMNS:
                if column.index:
                    _reindex_column(session, keys, column, batch, committed)
            _reindex_opt_outs(session, keys, batch, committed)
        finished = True
    finally:
        session.rollback()  # a batch an error cut short is not kept; those committed are
        access.record(session, "rotate_key", actor=actor, count=done[0],
                      detail={"key_id": keys.current, "reindex": reindex, "finished": finished})
        session.commit()
    return done[0]


# --- commands -------------------------------------------------------------------------------------------------------

@privacy_cli.command("new-key")
@click.option("--index", "index_key", is_flag=True, help="Make a PRIVACY_INDEX_KEY (the blind indexes' key) instead.")
def new_key_command(index_key):
    """Print a fresh key: an `id:base64` entry for PRIVACY_KEYS (or, with --index, a PRIVACY_INDEX_KEY)."""
    click.echo(crypto.new_index_key_text() if index_key else crypto.new_key_text())


@privacy_cli.command("status")
@with_appcontext
def status_command():
    """Count, per column, the values under each key of PRIVACY_KEYS, in clear, and under a key it does not hold."""
    from ..db import db

    keys = crypto.ring()
    click.echo(f"current key: {keys.current}")
    for label, row in status(db.session, keys).items():
        click.echo(f"{label}: " + ", ".join(f"{name} {count}" for name, count in row.items()))
    db.session.rollback()


@privacy_cli.command("rotate-key")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 100000),
              help="Rows re-encrypted per committed batch.")
@click.option("--reindex", is_flag=True, help="Also recompute every blind index (after changing PRIVACY_INDEX_KEY).")
@click.option("--dry-run", is_flag=True, help="Only say how many values are not under the current key.")
@with_appcontext
def rotate_key_command(batch, reindex, dry_run):
    """Re-encrypt every value not under the current key (the first of PRIVACY_KEYS), clear ones from before encryption
    included, in committed batches; stopped, run it again to take what is left."""
    from ..db import db

    keys = crypto.ring()
    left = remaining(db.session, keys)
    total = sum(left.values())
    if dry_run:
        for label, count in left.items():
            click.echo(f"{label}: {count}")
        click.echo(f"to re-encrypt under {keys.current}: {total}")
        db.session.rollback()
        return
    if reindex:
        total += reindex_total(db.session)
    db.session.rollback()
    try:
        with click.progressbar(length=total, label=f"re-encrypting under {keys.current}", show_pos=True) as bar:
            done = rotate(db.session, keys, batch=batch, reindex=reindex, progress=bar.update)
    except crypto.PrivacyKeyError as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:  # Ctrl-C: the committed batches stay done (and the access log says so)
        # the bar heard of each committed batch only (rotate's `progress`), so its position is what was done
        click.echo(f"interrupted: {bar.pos} values re-encrypted before it; run the same command again to take "
                   "what is left", err=True)
        raise click.exceptions.Exit(130) from None
    click.echo(f"done: {done} values" + (" re-encrypted and indexed again" if reindex else " re-encrypted"))


def decrypt_all(connection, keys: crypto.KeyRing) -> int:
    """Every encrypted value written back in clear, on `connection` (migration 0021's downgrade: the schema before it
    reads clear text only); an opt-out kept only by its index, without its number, cannot be restored and goes.
    Columns of tables a later revision added (and its downgrade dropped first) are not there to decrypt."""
    done = 0
    tables = set(sa.inspect(connection).get_table_names())
    for column in COLUMNS:
        if column.table not in tables:
            continue
        table = column.selectable()
        c = table.c
        rows = connection.execute(sa.select(c[column.key], c[column.name]).where(
            c[column.name].is_not(None), _starts(column, crypto.PREFIX))).all()
        for key, stored in rows:
            connection.execute(sa.update(table).where(c[column.key] == key).values(
                {column.name: _open(keys, column, stored)}))
        done += len(rows)
    for index, number in connection.execute(sa.select(OPT_OUT.c.phone, OPT_OUT.c.number)).all():
        if index.startswith("+"):
            continue
        if number is None:
            connection.execute(sa.delete(OPT_OUT).where(OPT_OUT.c.phone == index))
        else:
            connection.execute(sa.update(OPT_OUT).where(OPT_OUT.c.phone == index).values(phone=number))
    return done


def clear_values_finding(session) -> Optional[str]:
    """A warning while values from before encryption remain in clear (`flask prod check`): one indexed look-up each
    (rows written before the upgrade have no blind index yet)."""
    for column in COLUMNS:
        if not column.index:
            continue
        table = column.selectable()
        c = table.c
        clear = session.scalar(sa.select(c[column.key]).where(
            c[column.index].is_(None), c[column.name].is_not(None),
            sa.not_(_starts(column, crypto.PREFIX))).limit(1))
        if clear is not None:
            return (f"{column.label} holds values in clear from before encryption: run `flask privacy rotate-key` "
                    "to encrypt them")
    return None


def register(app) -> None:
    """Nothing to wire beyond the commands, which the module adds to `flask privacy` when imported."""
