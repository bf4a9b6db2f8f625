"""The console's office tree (administrators), and users and departments per office."""
from __future__ import annotations

import sqlalchemy as sa

from tests.helpers import row, submit
from tickets.db import db
from tickets.models import Department, Office


def office_id(world, code) -> int:
    with world.app.app_context():
        return db.session.scalar(sa.select(Office.id).where(Office.code == code))


def test_admin_keeps_the_office_tree_with_the_clis_rules(network, console):
    world = network.world
    client = console("admin")
    listing = client.get("/admin/offices/").get_data(as_text=True)
    order = [listing.index(name) for name in ("东湖县办不成事窗口", "青石镇便民服务中心", "白沙镇便民服务中心",
                                              "西山县办不成事窗口", "红岩乡便民服务中心")]
    assert order == sorted(order)  # depth first: a county, then its townships
    assert "\u3000\u3000青石镇便民服务中心" in listing  # indented two levels
    new = {"code": "t13", "name": "石门镇便民服务中心", "level": "township", "parent_id": str(network.offices["c1"]),
           "area_code": "330101001000", "active": "y"}
    assert submit(client, "/admin/offices/new/", new).status_code == 302
    t13 = row(world, Office, code="t13")
    assert t13.parent_id == network.offices["c1"] and t13.path.endswith(f"/{network.offices['c1']}/{t13.id}/")
    for bad, _field in (({"level": "city"}, "level"), ({"code": "c1"}, "code"), ({"area_code": "12"}, "area"),
                               ({"parent_id": ""}, "parent")):
        response = submit(client, "/admin/offices/new/", {**new, "code": "t14", **bad})
        assert response.status_code == 200, bad  # the form again, with the field's message
        assert row(world, Office, code="t14") is None, bad
    # Moving a township under the other county moves its path; an office cannot go below itself.
    edit = f"/admin/offices/edit/?id={t13.id}"
    moved = {**new, "parent_id": str(network.offices["c2"])}
    assert submit(client, edit, moved).status_code == 302
    assert row(world, Office, code="t13").path.startswith(row(world, Office, code="c2").path)
    c2 = row(world, Office, code="c2")
    cycle = {"code": "c2", "name": c2.name, "level": "county", "parent_id": str(t13.id), "active": "y"}
    submit(client, f"/admin/offices/edit/?id={c2.id}", cycle)
    assert row(world, Office, code="c2").parent_id == network.offices["root"]


def test_only_admins_see_the_office_tree(network, console):
    for who in ("office", "office_c1", "supervisor", "leader", "dept_a"):
        response = console(who).get("/admin/offices/")
        assert response.status_code == 403, who


def test_an_office_keeps_the_departments_of_its_subtree(network, console):
    world = network.world
    client = console("office_c1")
    listing = client.get("/admin/departments/").get_data(as_text=True)
    assert "东湖县人社局" in listing and "西山县人社局" not in listing
    form = client.get("/admin/departments/new/").get_data(as_text=True)
    assert "东湖县办不成事窗口" in form and "青石镇便民服务中心" in form and "西山县办不成事窗口" not in form
    department = {"office_id": str(network.offices["t11"]), "code": "T11", "name": "青石镇社保所", "active": "y"}
    assert submit(client, "/admin/departments/new/", department).status_code == 302
    assert row(world, Department, code="T11").office_id == network.offices["t11"]
    elsewhere = {**department, "code": "X2", "office_id": str(network.offices["c2"])}
    submit(client, "/admin/departments/new/", elsewhere)
    assert row(world, Department, code="X2") is None  # not a choice of theirs
    c2_department = world.departments["C2"]
    assert client.get(f"/admin/departments/edit/?id={c2_department}").status_code in (302, 404)
    # The administrator sees every office's, and filters by office.
    admin = console("admin")
    everything = admin.get("/admin/departments/").get_data(as_text=True)
    assert "东湖县人社局" in everything and "西山县人社局" in everything


def test_users_list_names_their_office(network, console):
    listing = console("admin").get("/admin/users/?page_size=100").get_data(as_text=True)
    assert "东湖县办不成事窗口" in listing and "红岩乡便民服务中心" in listing
