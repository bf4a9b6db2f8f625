"""Personal information kept as PIPL asks: encrypted at rest, shown only when needed and traced, not kept forever.

- `access.py`: the access log (who saw or exported whose full number or name, when, which case, why);
- `crypto.py`: encryption at rest of citizens' names and numbers (and files in the database), blind indexes;
- `rotation.py`: the encrypted columns, `flask privacy status`, `new-key` and `rotate-key`;
- `retention.py`: anonymising ended cases (the command, the scheduled job, a citizen's deletion request);
- `export.py`: a citizen's copy of what is held about them in a case (tracking number and query code): authorised
  and logged here, drawn as a PDF by the reports room (`reports/citizen_copy.py`, through the `COPY` slot).

`flask privacy …` is the command group (`privacy_cli`); each module adds its commands to it.
"""
from __future__ import annotations

from flask.cli import AppGroup

privacy_cli = AppGroup("privacy", help="Personal information: key rotation, anonymisation, the access log.")


def init_app(app) -> None:
    """Wire the privacy pieces into the ticket room (called from `tickets.init_app`)."""
    from . import access

    access.register(app)
    from . import crypto, rotation  # encryption at rest: the blind indexes kept in step, key rotation's commands

    crypto.install()
    crypto.KEYS.set(app, crypto.KeyRing.from_config(app.config))
    rotation.register(app)
    from . import retention  # anonymising ended cases: `flask privacy anonymise`, the scheduler's job

    retention.register(app)
    app.cli.add_command(privacy_cli)
