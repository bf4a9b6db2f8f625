"""Flask extensions, created unbound here and attached in app.py with `init_app`."""
from __future__ import annotations

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


def public_limits_off() -> bool:
    return current_app.config["RATELIMIT_PUBLIC"].strip().lower() == "off"


def public_limit(limit_provider, scope: str, **kwargs):
    """A per-client limit shared by every public route of `scope`; RATELIMIT_PUBLIC=off lifts them all."""
    return limiter.shared_limit(limit_provider, scope=scope, exempt_when=public_limits_off, **kwargs)
