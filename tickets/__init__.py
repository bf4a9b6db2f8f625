"""The heart of Banjie: tickets, departments, users, the workflow, intake pages and the JSON API.

Also the platform pieces every room uses (db, clock, broker, errors, http, validation, phones, secrets,
slots, reactions, schedule), wired by `platform.init_app` before any room.
"""
from __future__ import annotations


def init_app(app) -> None:
    """Wire the ticket room: the public pages, the JSON API, Open311, their error answers and the CLI."""
    from . import api, cli, dispatch, storage, tasks, views
    from .broker import bind_actors, broker
    from .http import accept_uploads, register_error_handlers
    from .schedule import schedule

    storage.check_settings(app.config)
    from .health import readiness_check
    readiness_check(app, "attachments", storage.volume_check, database=False)  # the volume, when files live on one

    app.register_blueprint(api.bp)
    app.register_blueprint(views.bp)
    from . import open311  # GeoReport v2 (before the error handlers: its unknown addresses answer in its own shape)
    app.register_blueprint(open311.bp)
    from . import elder  # 长辈模式: the /elder switch and the templates' elder_mode, wording()
    elder.init_app(app)
    register_error_handlers(app)
    cli.register(app)
    dispatch.register_cli(app)
    accept_uploads(app, "public.submit", "public.supplement", "api.file_ticket", "api.supplement_ticket",
                   "api.staff_action")
    bind_actors(broker(app), tasks.ACTORS)
    from .workflow import merging, names, reactions
    reactions(app).on(*names(closes_case=True), merging.answered)  # 并单: the cases joined to one hear its answer
    reactions(app).on(*names(rates_survey=True), merging.rated)  # and a joined citizen's 差评 reopens that one
    from . import notices  # the console's bell: a notice for whom an event concerns (after the actions are defined)
    notices.register(app)
    schedule(app, "held-attachments", tasks.schedule_purge)
    from . import monitoring  # cases by status and overdue, read at each metrics scrape
    monitoring.register(app)
    schedule(app, "idempotency-keys", tasks.schedule_idempotency_purge)
    from . import privacy  # PIPL: encryption at rest, the access log, retention (flask privacy …)
    privacy.init_app(app)
