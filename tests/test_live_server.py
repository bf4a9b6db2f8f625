"""The live server the browser and SMS tests run the app on closes every response it was given, even one a
dropped connection left half sent (werkzeug's development server can skip that): an open file found later by
the garbage collector fails whatever test happens to be running then."""
from __future__ import annotations

import gc
import sys

from werkzeug.test import EnvironBuilder

from tests.browser import closing


def test_a_file_half_sent_to_a_dropped_connection_is_closed_when_the_server_lets_go(app, monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    served = closing(app.wsgi_app)
    started = []
    body = served(EnvironBuilder(path="/static/favicon.svg").get_environ(), lambda *args: started.append(args))
    assert started[0][0] == "200 OK"
    next(iter(body))  # the first chunk went out; then the connection dropped and nobody called close()
    del body
    gc.collect()
    assert [hook.exc_value for hook in unraisable] == []
