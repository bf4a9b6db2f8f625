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

babel = Babel()
csrf = CSRFProtect()
login_manager = LoginManager()
talisman = Talisman()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
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
