"""Console sessions end when they should: sign-out, a new password, a role or department change, deactivation,
idle time and an absolute lifetime. Tested as an intruder would: with a copy of the victim's cookie."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.helpers import page_csrf, seed_world
from tickets.db import db
from tickets.models import User, UserSession


def copy_of(world, client):
    """Another browser holding the same session cookie (stolen, or left on a shared computer)."""
    other = world.app.test_client()
    other.set_cookie("session", client.get_cookie("session").value)
    return other


def signed_out(client) -> bool:
    """The console sends the holder to sign in, and the staff API refuses the cookie."""
    page = client.get("/admin/cases/")
    api = client.get("/api/v1/staff/tickets")
    assert page.status_code in (200, 302) and api.status_code in (200, 401)
    if page.status_code == 302:
        assert page.headers["Location"].startswith("/admin/login")
    assert (page.status_code == 302) == (api.status_code == 401), (page.status_code, api.status_code)
    return page.status_code == 302


def sessions_of(world, who):
    with world.app.app_context():
        return db.session.scalars(sa.select(UserSession).where(UserSession.user_id == world.users[who])
                                  .order_by(UserSession.id)).all()


def test_sign_out_ends_the_session_for_every_copy_of_the_cookie(world):
    client = world.console("office")
    stolen = copy_of(world, client)
    assert not signed_out(stolen)
    assert client.post("/admin/logout", data={"csrf_token": page_csrf(client, "/admin/")}).status_code == 302
    assert signed_out(stolen) and signed_out(client)
    [row] = sessions_of(world, "office")
    assert row.revoked_reason == "sign_out" and row.revoked_at is not None
    # the database keeps a hash of the key, never the key the cookie carries
    with stolen.session_transaction() as cookie:
        assert "sid" not in cookie or cookie["sid"] not in row.key_hash
    # API tokens are another matter: they keep working
    assert world.get("office", "/api/v1/staff/tickets").status_code == 200


def edit_dept_a(world, admin, **changes):
    data = {"username": "dept_a", "role": "department", "department_id": str(world.departments["A"]),
            "active": "y", **changes}
    path = f"/admin/users/edit/?id={world.users['dept_a']}"
    response = admin.post(path, data={k: v for k, v in data.items() if v is not None}
                          | {"csrf_token": page_csrf(admin, path)})
    assert response.status_code == 302, response.get_data(as_text=True)


@pytest.mark.parametrize("change, reason", [
    ({"new_password": "brand-new-password"}, "password"),
    ({"role": "office", "department_id": ""}, "role"),
    ({"department_id": "B"}, "role"),
    ({"active": None}, "deactivated"),
])
def test_an_account_change_ends_its_sessions(world, change, reason):
    if change.get("department_id") == "B":
        change = {**change, "department_id": str(world.departments["B"])}
    victim = world.console("dept_a")
    stolen = copy_of(world, victim)
    assert not signed_out(stolen)
    admin = world.console("admin")
    edit_dept_a(world, admin, **change)
    assert signed_out(stolen) and signed_out(victim)
    assert [row.revoked_reason for row in sessions_of(world, "dept_a")] == [reason]
    assert not signed_out(admin)  # the administrator's own session is another account's
    if reason != "deactivated":
        assert world.get("dept_a", "/api/v1/staff/tickets").status_code == 200  # tokens are unaffected


def test_a_harmless_change_keeps_the_session(world):
    victim = world.console("dept_a")
    edit_dept_a(world, world.console("admin"), display_name="王芳", phone="139 0000 0008")
    assert not signed_out(victim)
    assert sessions_of(world, "dept_a")[0].revoked_at is None


def test_idle_sessions_expire_and_activity_keeps_them(world, clock):
    client = world.console("supervisor")
    for _ in range(3):  # an hour and a half of work, a request every 29 minutes
        clock.advance(minutes=29)
        assert not signed_out(client)
    clock.advance(minutes=30, seconds=1)
    assert signed_out(client)
    assert sessions_of(world, "supervisor")[0].revoked_reason == "idle"
    assert not signed_out(world.console("supervisor"))  # signing in again starts afresh


def test_sessions_end_after_their_lifetime_however_busy(make_app, clock):
    app = make_app(SESSION_IDLE_MINUTES=10, SESSION_MAX_HOURS=1)
    world = seed_world(app, app.test_client())
    client = world.console("leader")
    for _ in range(6):
        clock.advance(minutes=9, seconds=59)
        assert not signed_out(client)
    clock.advance(minutes=1)
    assert signed_out(client)
    assert sessions_of(world, "leader")[0].revoked_reason == "expired"


def test_last_seen_is_written_at_most_once_a_minute(world, clock):
    client = world.console("office")
    [start] = sessions_of(world, "office")
    clock.advance(seconds=30)
    for _ in range(5):
        assert client.get("/admin/").status_code == 200
    assert sessions_of(world, "office")[0].last_seen_at == start.last_seen_at
    clock.advance(seconds=31)
    assert client.get("/admin/").status_code == 200
    assert sessions_of(world, "office")[0].last_seen_at == clock.now


def test_a_cookie_from_before_sessions_were_kept_is_refused(world):
    """A cookie signed with the right key but naming only a user id (as every cookie did before) signs nobody in."""
    client = world.app.test_client()
    with client.session_transaction() as cookie:
        cookie["_user_id"] = str(world.users["admin"])
        cookie["_fresh"] = True
    assert signed_out(client)
    with world.app.app_context():
        assert db.session.get(User, world.users["admin"]).active
