"""Monthly closure-rate reports: figures computed in SQL from the history (versioned formulas), the PDF, its delivery."""
from __future__ import annotations


def init_app(app) -> None:
    """Wire the reports room: API, CLI (reports, 好差评), the generation actor, the scheduler's monthly job, dashboard charts."""
    from tickets.broker import bind_actors, broker
    from tickets.schedule import schedule

    from . import models  # noqa: F401  (the table, for migrations and the console)
    from . import api, cli, dashboard, display, scores, tasks

    # A setting written wrong stops the start with what is wrong, not the 1st of the month's report.
    scores.weights_from(app.config["REPORT_SCORE_WEIGHTS"])
    scores.thresholds_from(app.config["REPORT_THRESHOLDS"])
    if app.config["REPORT_MIN_CASES"] < 1:
        raise scores.BadSetting("REPORT_MIN_CASES must be 1 or more")

    app.register_blueprint(api.bp)
    app.register_blueprint(api.staff_bp)
    app.cli.add_command(cli.report_cli)
    app.cli.add_command(cli.evaluation_cli)
    bind_actors(broker(app), tasks.ACTORS)
    schedule(app, tasks.SCHEDULE_KEY, tasks.MonthlyJob(app))
    app.add_template_global(dashboard.last_month, "report_dashboard")
    app.add_template_global(display.month_label, "report_month")
    from tickets.privacy import export as citizen_export  # a citizen's copy of their case, drawn here

    from . import citizen_copy
    citizen_export.COPY.set(app, citizen_copy.copy)
