"""Flask extensions, created unbound here and attached in app.py with `init_app`."""
from __future__ import annotations

import logging
import threading

from flask import current_app
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect


class RouteLimiter(Limiter):
    """Flask-Limiter, evaluated once per request.

    Every limit of Banjie is on its route (the public ones through `public_limit`, sign-in's in admin/auth.py),
    and the route's decorator evaluates it. Flask-Limiter also evaluates, before every request, the limits
    that are not on a route (application-wide, default, meta and blueprint limits); Banjie has none, so that
    pass found nothing on every request, at the cost of a second evaluation (issue 11, item 20). It is left
    out unless the configuration brings such limits (RATELIMIT_APPLICATION, RATELIMIT_DEFAULT, RATELIMIT_META).
    A limit on a blueprint would need it back: tests/test_rate_limit.py checks that there is none.
    """

    def init_app(self, app) -> None:
        super().init_app(app)
        manager = self.limit_manager
        if not (manager.application_limits or manager.default_limits or app.config.get("RATELIMIT_META")):
            app.before_request_funcs[None].remove(self._check_request_limit)


babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
talisman = Talisman()
limiter = RouteLimiter(key_func=get_remote_address, default_limits=[])
log = logging.getLogger("banjie.ratelimit")


class LimiterHealth:
    """Says in the log when the rate limits' shared storage (Redis) goes away and when it is back.

    Flask-Limiter does the degrading (RATELIMIT_IN_MEMORY_FALLBACK_ENABLED): while its storage is away it
    counts in this process's memory and looks for the storage again now and then (after 1, 2, 4 ... 32
    seconds). This says so once per outage and process, at WARNING and in Banjie's words, where the
    library says it at INFO or not at all.
    """

    KEY = "banjie.ratelimit_degraded"

    def __init__(self):
        self._lock = threading.Lock()

    def init_app(self, app) -> None:
        app.extensions[self.KEY] = False
        app.teardown_request(self.look)

    def look(self, _error=None) -> None:
        if not limiter.initialized:
            return
        degraded = limiter.limiter.storage is not limiter.storage  # the strategy runs on the fallback storage
        state = current_app.extensions
        with self._lock:
            if degraded == state.get(self.KEY):
                return
            state[self.KEY] = degraded
        if degraded:
            log.warning("rate limit storage unreachable: limits are counted in this process's memory until it is back")
        else:
            log.warning("rate limit storage is back: limits are shared by every process again")


limiter_health = LimiterHealth()


def public_limits_off() -> bool:
    return current_app.config["RATELIMIT_PUBLIC"].strip().lower() == "off"


def public_limit(limit_provider, scope: str, **kwargs):
    """A per-client limit shared by every public route of `scope`; RATELIMIT_PUBLIC=off lifts them all."""
    return limiter.shared_limit(limit_provider, scope=scope, exempt_when=public_limits_off, **kwargs)
