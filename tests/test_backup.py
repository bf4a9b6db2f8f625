"""Backups: a dump of a working database, restored into an empty one, holds everything.

The procedure of docs/operations.md (Backups and restore) on real PostgreSQL: the demo city loaded (cases at every stage,
their events, deadlines, ladder steps and texts, files in the database) and a month's report kept; `pg_dump -Fc` of it,
`pg_restore --no-owner` into a new empty database; then every row of every table is the same (by a hash of each row),
the files' bytes and the report's PDF by name, the sequences go on from where they were, /readyz's database checks pass
(it answers, its schema is at the newest migration), and the app on the restored database signs a clerk in, shows a
case and files a new one.

The dump and restore programs are those of the server's major version (/usr/lib/postgresql/<major>/bin), as an
operator must use: an older pg_dump refuses a newer server.
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from app import create_app
from tests.helpers import BASE_CONFIG, PG_ADMIN_URL, PG_TEST_DB, console_sign_in, service_missing
from tickets import clock, health
from tickets.db import db
from tickets.schema import upgrade_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SOURCE, RESTORED = f"{PG_TEST_DB}_backup", f"{PG_TEST_DB}_restored"
DEMO_PASSWORD = "banjie-demo"


def libpq(url: str) -> str:
    """The URL as PostgreSQL's own programs take it (no SQLAlchemy driver name)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def database_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def program(name: str, major: int) -> str:
    """pg_dump or pg_restore of the server's major version; else the one on PATH if it is new enough."""
    own = Path(f"/usr/lib/postgresql/{major}/bin/{name}")
    if own.exists():
        return str(own)
    found = shutil.which(name)
    if found is None:
        service_missing(name, f"no {name} for PostgreSQL {major} (apt-get install postgresql-client-{major})")
    version = subprocess.run([found, "--version"], capture_output=True, text=True).stdout
    if int(version.split()[-1].split(".")[0]) < major:
        service_missing(name, f"{found} is older than the server ({version.strip()}, server {major})")
    return found


@pytest.fixture
def databases():
    """Two new databases (the live one and the empty one to restore into), dropped afterwards; the server's major."""
    try:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            major = int(connection.scalar(sa.text("SHOW server_version_num"))) // 10000
            for name in (SOURCE, RESTORED):
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        service_missing("PostgreSQL", str(error).splitlines()[0])
    yield database_url(SOURCE), database_url(RESTORED), major
    with admin.connect() as connection:
        for name in (SOURCE, RESTORED):
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def contents(url: str) -> dict[str, list[str]]:
    """Every table's rows as sorted hashes of their text, and every sequence's position."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            tables = connection.scalars(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).all()
            found = {table: sorted(connection.scalars(sa.text(f'SELECT md5(t::text) FROM "{table}" AS t')).all())
                     for table in tables}
            found["(sequences)"] = [f"{name}={value}" for name, value in connection.execute(sa.text(
                "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"))]
            return found
    finally:
        engine.dispose()


def files_and_reports(url: str) -> tuple[dict, dict]:
    """Each stored file's SHA-256 by key, and each kept report's PDF's SHA-256 by office and month."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            blobs = {key: hashlib.sha256(data).hexdigest()
                     for key, data in connection.execute(sa.text("SELECT key, data FROM attachment_blob"))}
            reports = {(office, month): hashlib.sha256(pdf).hexdigest() for office, month, pdf in connection.execute(
                sa.text("SELECT office_id, month, pdf FROM report"))}
            return blobs, reports
    finally:
        engine.dispose()


def test_a_dump_restored_into_an_empty_database_holds_every_case_file_and_report(databases, tmp_path):
    source_url, restored_url, major = databases
    live = create_app({**BASE_CONFIG, "DATABASE_URL": source_url})
    with live.app_context():
        upgrade_database()
        db.engine.dispose()
    runner = live.test_cli_runner()
    loaded = runner.invoke(args=["seed-demo"])
    assert loaded.exit_code == 0, loaded.output
    with live.app_context():
        last_month = (clock.today().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    kept = runner.invoke(args=["report", "monthly", last_month, "-o", str(tmp_path / "report.pdf")])
    assert kept.exit_code == 0, kept.output
    with live.app_context():
        db.engine.dispose()

    dump = tmp_path / "banjie.dump"
    subprocess.run([program("pg_dump", major), "--format=custom", f"--file={dump}", f"--dbname={libpq(source_url)}"],
                   check=True, capture_output=True, timeout=120)
    restore = subprocess.run([program("pg_restore", major), "--no-owner", "--exit-on-error",
                              f"--dbname={libpq(restored_url)}", str(dump)], capture_output=True, text=True, timeout=120)
    assert restore.returncode == 0, restore.stderr

    before, after = contents(source_url), contents(restored_url)
    for table in ("ticket", "event", "deadline", "escalation_step", "sms_message", "attachment", "attachment_blob",
                  "report", "user_account", "alembic_version"):
        assert before[table], f"the demo left {table} empty: nothing to compare"
    assert after == before
    blobs, reports = files_and_reports(source_url)
    assert files_and_reports(restored_url) == (blobs, reports)
    assert (tmp_path / "report.pdf").read_bytes() and hashlib.sha256(
        (tmp_path / "report.pdf").read_bytes()).hexdigest() in reports.values()

    restored = create_app({**BASE_CONFIG, "DATABASE_URL": restored_url})
    with restored.app_context():  # /readyz's checks of the database: it answers, its schema is the code's
        assert health.database(db.session, clock.now())["ok"]
        assert health.migrations(db.session, clock.now())["ok"]
        tracking_no = db.session.scalar(sa.text("SELECT tracking_no FROM ticket ORDER BY id DESC LIMIT 1"))
    client = restored.test_client()
    assert console_sign_in(client, "admin", DEMO_PASSWORD).status_code == 302
    page = client.get(f"/admin/case/{tracking_no}")
    assert page.status_code == 200 and tracking_no in page.get_data(as_text=True)
    # the sequences went on: a new case takes the next number, not one a restored case holds
    filed = client.post("/api/v1/tickets", json={"name": "恢复后", "phone": "13800138000", "problem_type": "too_slow",
                                                "description": "恢复之后的第一件，编号接着原来的往下排。"})
    assert filed.status_code == 201, filed.get_data(as_text=True)
    with restored.app_context():
        db.engine.dispose()
