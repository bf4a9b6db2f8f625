"""`flask seed-demo`."""
from __future__ import annotations

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from tickets.db import db
from tickets.models import Department

from .data import DEMO_PASSWORD, DEMO_USERS
from .numbers import NoTestRange
from .seed import seed


@click.command("seed-demo")
@with_appcontext
@click.option("--if-empty", is_flag=True, help="do nothing when the database already has departments")
def seed_demo(if_empty):
    """Load the demo office: six departments, one login of each role, three months of past cases and 14 recent ones."""
    if db.session.scalar(sa.select(sa.func.count()).select_from(Department)):
        if if_empty:
            click.echo("demo data already present")
            return
        # the demo's departments and logins would collide with what is there (and have no place in a real office's data)
        raise click.ClickException("the database already has departments: the demo loads only into an empty database "
                                   "(--if-empty skips it without an error)")
    try:
        loaded = seed(db.session)
    except NoTestRange as error:
        raise click.ClickException(str(error)) from None
    db.session.commit()
    click.echo(f"demo office loaded: {loaded.departments} departments, {loaded.cases} cases; "
               f"logins {', '.join(name for name, *_ in DEMO_USERS)} (password {DEMO_PASSWORD})")

