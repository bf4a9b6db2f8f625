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


def test_each_url_rule_parsed_once_is_what_werkzeug_parses(make_app):
    """`share_url_rules`: an app's rules take the parts and trace an earlier app's equal rules were parsed into, and
    converters of their own; parsed again by Werkzeug for this app's map, every rule is the same: parts, trace,
    arguments, each converter's class, pattern and settings, bound to this map; and the app matches and builds its
    URLs."""
    from werkzeug.routing.rules import Rule

    if not hasattr(Rule, "shared_rules"):
        pytest.skip("this run parses every rule for each app (BANJIE_TEST_PARSE_EACH_RULE=1)")
    make_app()
    app = make_app(BABEL_DEFAULT_LOCALE="en")
    rules = list(app.url_map.iter_rules())
    assert len(rules) > 150 and len(Rule.shared_rules) >= len({rule.rule for rule in rules})
    for rule in rules:
        own = rule.empty()
        own.map, own.strict_slashes, own.merge_slashes, own.subdomain = (app.url_map, rule.strict_slashes,
                                                                          rule.merge_slashes, rule.subdomain)
        Rule.compile_each(own)
        assert (rule._parts, rule._trace, rule.arguments) == (own._parts, own._trace, own.arguments), rule.rule
        assert rule._converters.keys() == own._converters.keys()
        for name, converter in rule._converters.items():
            theirs = own._converters[name]
            assert (type(converter), converter.regex, converter.weight, converter.part_isolating) == (
                type(theirs), theirs.regex, theirs.weight, theirs.part_isolating), (rule.rule, name)
            assert vars(converter).keys() == vars(theirs).keys() and converter.map is app.url_map
            assert {k: v for k, v in vars(converter).items() if k != "map"} == {
                k: v for k, v in vars(theirs).items() if k != "map"}
    adapter = app.url_map.bind("localhost")
    assert adapter.match("/api/v1/tickets/BJ20261116-0001", "GET")[1] == {"tracking_no": "BJ20261116-0001"}
    with app.test_request_context():
        from flask import url_for

        assert url_for("api.public_ticket", tracking_no="BJ20261116-0001") == "/api/v1/tickets/BJ20261116-0001"
