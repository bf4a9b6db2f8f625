"""The staff console (Flask-Admin): sign-in, dashboard, work queues, case pages and management."""
from __future__ import annotations

from flask_admin import Admin
from flask_admin.theme import Bootstrap4Theme
from flask_babel import lazy_gettext as _l

from tickets.slots import AppSlot

CONSOLE: AppSlot[Admin] = AppSlot("banjie.admin", "the Flask-Admin console")


def console(app=None) -> Admin:
    """The app's console (its views: `console(app)._views`)."""
    return CONSOLE.get(app)


def init_app(app) -> Admin:
    """Wire the console: its views (queues, case pages, escalation, management, appeals, SMS, reports) and sign-in."""
    from . import appeals, auth, dispatch, escalation, intake, knowledge, management, sms
    from .case import CaseView
    from .dashboard import Dashboard
    from .queues import QUEUES, QueueView
    from .reports import ReportsView
    from tickets.http import accept_uploads

    # Flask-Admin's few inline scripts carry the per-request nonce of the CSP (tickets/headers.py).
    admin = Admin(app, name=_l("Banjie console"), index_view=Dashboard(),
                  theme=Bootstrap4Theme(base_template="admin/console_base.html", fluid=True),
                  csp_nonce_generator=app.jinja_env.globals["csp_nonce"])
    with app.app_context():  # Flask-Admin probes the SQLAlchemy-Lite extension, which needs a context
        for queue in QUEUES:
            admin.add_view(QueueView(queue))
        admin.add_view(CaseView(name=_l("Case"), endpoint="case", url="/admin/case"))
        intake.register(admin)
        escalation.register(admin)
        management.register(admin)
        from . import webhooks  # 管理 → 事件推送 and 推送记录 (outbound webhooks)
        webhooks.register(admin)
        from . import access_log  # 管理 → 访问日志 (the personal-data access log)
        access_log.register(admin)
        knowledge.register(admin)
        dispatch.register(admin)
        appeals.register(admin)
        from . import clusters  # 一类事 and 主动治理
        clusters.register(admin)
        sms.register(admin)
        from . import notices  # the bell in the bar and /admin/notices
        notices.register(admin)
        admin.add_view(ReportsView(name=_l("Reports"), endpoint="reports", url="/admin/reports"))
    app.register_blueprint(auth.bp)
    accept_uploads(app, "case.act", "intake.index")  # a reply's or answer's files; a walk-in's papers
    return CONSOLE.set(app, admin)
