"""Time: the working-day calendar, deadline policies, the escalation ladder (催办 → 督办 → 挂牌督办), its sweeper
and the scheduler that runs every room's periodic jobs."""
from __future__ import annotations


def init_app(app) -> None:
    """Wire the escalation room: the calendar and policies deadlines are computed with, the ladder, its
    reactions to workflow events, the sweeper's actor and the CLI."""
    from tickets import clock, deadlines
    from tickets.broker import bind_actors, broker
    from tickets.workflow import reactions

    from . import cli, monitoring, operations, store, tasks
    from .calendar import parse_office_hours
    from .ladder import ladder_from_config
    from .policies import DEFAULT_WORKING_HOURS, MAX_WORKING_HOURS, DeadlinePolicy

    # malformed settings stop start-up with a clear message
    office_hours = parse_office_hours(app.config["OFFICE_HOURS"])
    contact_hours = app.config["FIRST_CONTACT_HOURS"]
    if isinstance(contact_hours, bool) or not isinstance(contact_hours, int) or \
            not 1 <= contact_hours <= MAX_WORKING_HOURS:
        raise ValueError(f"FIRST_CONTACT_HOURS must be a whole number of working hours from 1 to {MAX_WORKING_HOURS},"
                         f" not {contact_hours!r}")
    settings = store.SETTINGS.set(app, store.SettingsCache(app.config["ESCALATION_CACHE_SECONDS"]))
    operations.LADDER.set(app, ladder_from_config(app.config["ESCALATION_LADDER"]))
    deadlines.POLICY.set(app, DeadlinePolicy(calendar_source=settings.calendar, tz=clock.zone_of(app.config),
                                             overrides_source=settings.overrides,
                                             hour_defaults={**DEFAULT_WORKING_HOURS, "contact": contact_hours},
                                             office_hours=office_hours))
    bind_actors(broker(app), tasks.ACTORS)
    operations.register(reactions(app))
    cli.register(app)
    monitoring.register(app)  # /readyz: scheduler and workers heartbeats; metrics: steps due, heartbeat ages
