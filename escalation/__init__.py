"""Time: the working-day calendar, deadline policies, the escalation ladder (催办 → 督办 → 挂牌督办), its sweeper
and the scheduler that runs every room's periodic jobs."""
from __future__ import annotations


def init_app(app) -> None:
    """Wire the escalation room: the calendar and policies deadlines are computed with, the ladder, its
    reactions to workflow events, the sweeper's actor and the CLI."""
    from tickets import clock, deadlines
    from tickets.broker import bind_actors, broker
    from tickets.workflow import reactions

    from . import cli, operations, store, tasks
    from .ladder import ladder_from_config
    from .policies import DeadlinePolicy

    settings = store.SETTINGS.set(app, store.SettingsCache(app.config["ESCALATION_CACHE_SECONDS"]))
    operations.LADDER.set(app, ladder_from_config(app.config["ESCALATION_LADDER"]))
    deadlines.POLICY.set(app, DeadlinePolicy(calendar_source=settings.calendar, tz=clock.zone_of(app.config),
                                             overrides_source=settings.overrides))
    bind_actors(broker(app), tasks.ACTORS)
    operations.register(reactions(app))
    cli.register(app)
