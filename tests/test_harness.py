"""The test harness's own shortcuts (tests/conftest.py) hand the tests what the libraries would have made."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine.base import Engine

from tests.helpers import seed_world
from tickets.db import db


def test_sql_an_earlier_engine_compiled_is_what_this_engine_compiles(make_app):
    """`share_compiled_sql`: an app's engine runs SQL that another app's engine compiled; compiled again for its own
    dialect, each statement of a filing, a staff action and a console page is the same SQL with the same
    parameters."""
    if not hasattr(Engine, "shared_compiled_sql"):
        pytest.skip("this run compiles SQL for each engine (BANJIE_TEST_COMPILE_EACH_ENGINE=1)")
    shared = Engine.shared_compiled_sql
    first = make_app()
    world = seed_world(first, first.test_client())
    filed = world.file()
    world.act("office", filed["tracking_no"], "accept")
    assert world.console("office").get(f"/admin/case/{filed['tracking_no']}").status_code == 200
    second = make_app(BABEL_DEFAULT_LOCALE="en")
    with second.app_context():
        db.session.execute(sa.text("SELECT 1"))  # the dialect reads the server's settings at its first connection
        dialect = db.engine.dialect
        assert db.engine._compiled_cache is shared
        kind = shared.kind(dialect)
        earlier = [(key, compiled) for key, compiled in shared.compiled.items()
                   if key[0] == kind and compiled.dialect is not dialect]
        assert len(earlier) > 20
        for (_kind, _statement, column_keys, _translated, for_executemany), compiled in earlier:
            own = compiled.statement._compiler(dialect, column_keys=list(column_keys), for_executemany=for_executemany)
            assert (own.string, own.positiontup) == (compiled.string, compiled.positiontup)
