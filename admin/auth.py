"""Console sign-in and sign-out (Flask-Login), with throttling of repeated failures (Flask-Limiter)."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from tickets import clock, logins
from tickets.db import db
from tickets.extensions import limiter
from tickets.http import local_path
from tickets.models import User

bp = Blueprint("auth", __name__, url_prefix="/admin")

# Compared against when the username is unknown, so that a wrong name and a wrong password take as long.
_NO_SUCH_USER = generate_password_hash("no such user")


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(_l("Enter your username.")), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password.")), Length(max=200)])
    next = HiddenField()


def _login_failed(response) -> bool:
    return response.status_code == 401


def _account_key() -> str:
    """A failure budget per client and account, so one caller cannot lock a colleague out from elsewhere."""
    username = (request.form.get("username") or "").strip().lower()[:64]
    return f"{get_remote_address()}|{username}"


def account_limit() -> str:
    return current_app.config["LOGIN_RATELIMIT"]


def client_limit() -> str:
    return current_app.config["LOGIN_RATELIMIT_CLIENT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(account_limit, key_func=_account_key, methods=["POST"], deduct_when=_login_failed,
               scope="login-account")
@limiter.limit(client_limit, methods=["POST"], deduct_when=_login_failed, scope="login-client")
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = local_path(request.args.get("next")) or ""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(local_path(request.args.get("next")) or url_for("admin.index"))
    status = 200
    if form.validate_on_submit():
        username = form.username.data.strip()
        user = db.session.scalar(sa.select(User).where(User.username == username))
        password_ok = check_password_hash(user.password_hash if user and user.password_hash else _NO_SUCH_USER,
                                          form.password.data)
        if user is not None and user.password_hash and password_ok and user.active:
            lang = session.get("lang")
            session.clear()  # a fresh session on sign-in: nothing an attacker planted survives
            if lang:
                session["lang"] = lang
            session[logins.SESSION_KEY] = logins.start(db.session, user, clock.now())
            login_user(user)
            db.session.commit()
            return redirect(local_path(form.next.data) or url_for("admin.index"))
        status = 401
        form.password.errors = [_("The username or password is not correct.")]
    elif request.method == "POST":
        status = 400 if form.csrf_token.errors else 422
    return render_template("admin/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    lang = session.get("lang")
    logins.end(db.session, session.get(logins.SESSION_KEY), clock.now())
    db.session.commit()
    logout_user()
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))
