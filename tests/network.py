"""A city's network of windows for tests: the `network` fixture, on top of `world` (whose office becomes the city's).

    root  市民服务中心 (city)          departments A, B, C (world's)   office, supervisor, leader (world's)
    ├── c1  东湖县 (county)            department C1 东湖县人社局        office_c1, supervisor_c1, leader_c1, dept_c1
    │   ├── t11  青石镇 (township)                                       office_t11, supervisor_t11, leader_t11
    │   └── t12  白沙镇 (township)                                       office_t12
    └── c2  西山县 (county)            department C2 西山县人社局        office_c2, supervisor_c2, leader_c2, dept_c2
        └── t21  红岩乡 (township)                                       office_t21

Every user has an API token in `world.tokens` (so `world.act("office_c1", ...)` works) and a console password
(`world.console("office_c1")`). `network.file("t11")` files a case at that window through the public API.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from tickets import offices
from tickets.accounts import create_user, issue_token
from tickets.db import db
from tickets.models import Department, Office, Ticket

OFFICES = (  # code, name, level, parent
    ("c1", "东湖县办不成事窗口", "county", "root"),
    ("t11", "青石镇便民服务中心", "township", "c1"),
    ("t12", "白沙镇便民服务中心", "township", "c1"),
    ("c2", "西山县办不成事窗口", "county", "root"),
    ("t21", "红岩乡便民服务中心", "township", "c2"),
)
DEPARTMENTS = (("C1", "东湖县人社局", "c1"), ("C2", "西山县人社局", "c2"))
USERS = (  # username, role, office code, department code
    ("office_c1", "office", "c1", None), ("supervisor_c1", "supervisor", "c1", None),
    ("leader_c1", "leader", "c1", None), ("dept_c1", "department", None, "C1"),
    ("office_t11", "office", "t11", None), ("supervisor_t11", "supervisor", "t11", None),
    ("leader_t11", "leader", "t11", None), ("office_t12", "office", "t12", None),
    ("office_c2", "office", "c2", None), ("supervisor_c2", "supervisor", "c2", None),
    ("leader_c2", "leader", "c2", None), ("dept_c2", "department", None, "C2"),
    ("office_t21", "office", "t21", None),
)
# Who belongs where, for matrices: the root's users are world's own ("office", "supervisor", "leader").
OFFICE_OF = {"office": "root", "supervisor": "root", "leader": "root",
             **{username: code for username, _role, code, _dept in USERS if code}}


@dataclass
class Network:
    world: object
    offices: dict = field(default_factory=dict)      # code -> id
    departments: dict = field(default_factory=dict)  # code -> id (world's A, B, C too)

    def file(self, office_code: str = "root", **overrides) -> str:
        """A new case at that window, filed by a citizen through the API; its tracking number."""
        body = {} if office_code == "root" else {"office_code": office_code}
        return self.world.file(**body, **overrides)["tracking_no"]

    def office_of(self, tracking_no: str) -> str:
        """The code of the window that owns the case now."""
        with self.world.app.app_context():
            return db.session.scalar(sa.select(Office.code).join(Ticket, Ticket.office_id == Office.id)
                                     .where(Ticket.tracking_no == tracking_no))


def build_network(world) -> Network:
    network = Network(world)
    with world.app.app_context():
        session = db.session
        network.offices["root"] = offices.root_id(session)
        for code, name, level, parent in OFFICES:
            network.offices[code] = offices.create_office(session, code=code, name=name, level=level,
                                                          parent_code=parent).id
        for code, name, office in DEPARTMENTS:
            department = Department(code=code, name=name, office_id=network.offices[office],
                                    supervisor_phone="+8613900000011", leader_phone="+8613900000012")
            session.add(department)
            session.flush()
            world.departments[code] = department.id
        network.departments.update(world.departments)
        for username, role, office, department in USERS:
            user = create_user(session, username, role, office_code=office, department_code=department)
            world.users[username] = user.id
            world.tokens[username] = issue_token(session, user)
        session.commit()
    return network


@pytest.fixture
def network(world) -> Network:
    return build_network(world)
