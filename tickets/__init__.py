"""The heart of Banjie: tickets, departments, users, the workflow, intake pages and the JSON API.

Also the platform pieces every room uses (db, clock, broker, errors, http, validation, phones, secrets,
slots, reactions, schedule), wired by `platform.init_app` before any room.
"""
from __future__ import annotations


def init_app(app) -> None:
    """Wire the ticket room: the public pages, the JSON API, its error answers and the CLI."""
    from . import api, cli, dispatch, views
    from .http import register_error_handlers

    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)
    register_error_handlers(app)
    cli.register(app)
    dispatch.register_cli(app)
