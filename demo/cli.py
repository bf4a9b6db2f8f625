"""`flask seed-demo`, and the demo's logins for the banner of `flask serve`."""
from __future__ import annotations

import click
import sqlalchemy as sa
from flask.cli import with_appcontext
from werkzeug.security import check_password_hash

from tickets.db import db
from tickets.models import Department, User

from .data import DEMO_PASSWORD, DEMO_USERS
from .numbers import NoTestRange
from .seed import seed


@click.command("seed-demo")
@with_appcontext
@click.option("--if-empty", is_flag=True, help="do nothing when the database already has departments")
def seed_demo(if_empty):
    """Load the demo office: six departments, one login of each role, three months of past cases and a dozen open now."""
    if if_empty and db.session.scalar(sa.select(sa.func.count()).select_from(Department)):
        click.echo("demo data already present")
        return
    try:
        loaded = seed(db.session)
    except NoTestRange as error:
        raise click.ClickException(str(error)) from None
    db.session.commit()
    click.echo(f"demo office loaded: {loaded.departments} departments, {loaded.cases} cases; "
               f"logins {', '.join(name for name, *_ in DEMO_USERS)} (password {DEMO_PASSWORD})")


def demo_logins(session) -> list[User]:
    """The demo's logins that still open with the demo password: none on a real office's database."""
    names = [name for name, *_ in DEMO_USERS]
    users = session.scalars(sa.select(User).where(User.username.in_(names), User.active.is_(True))).all()
    order = {name: index for index, name in enumerate(names)}
    return sorted((u for u in users if u.password_hash and check_password_hash(u.password_hash, DEMO_PASSWORD)),
                  key=lambda u: order[u.username])


def login_lines(session) -> list[str]:
    """The banner's lines about the demo's logins; none when the demo is not loaded (or its passwords changed)."""
    users = demo_logins(session)
    if not users:
        return []
    width = max(len(u.username) for u in users) + 2
    return [f"  demo logins (password {DEMO_PASSWORD}):"] + [
        f"    {u.username:<{width}}{u.role:<12}{u.display_name or ''}" for u in users]
