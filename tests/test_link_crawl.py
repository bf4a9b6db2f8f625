"""Every link a console page shows opens for the one reading it: each role signs in and follows the links of its pages
from the home page on (a crawl, not a list of known pages), in an office with a case in every state, a merge, a
一类事 with its 主动治理 task. A link that answers 4xx or sends its reader to the sign-in page is a fault of the page
that showed it (a department's handler was once shown links to merged reports that were no case of its own)."""
from __future__ import annotations

import html
import re
from collections import deque
from urllib.parse import urljoin, urlsplit

import pytest

from tests.helpers import page_csrf
from tests.test_route_walk import seed

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
ROLES = ("admin", "office", "dept_a", "dept_b", "supervisor", "leader")
HREF = re.compile(r'href="([^"#]+)"')
# Not followed: signing out, switching the language, files, PDFs and exports (their own tests read them), and the
# lists' sorting, paging, filtering and look-up variants of a page already followed.
SKIP = re.compile(r"/logout|/export|lang=|/static/|\.pdf$|\.csv$|/files/|sort=|page=|/ajax/|flt\d|elder")
MAX_PAGES = 400


def crawl(client, start: str = "/admin/") -> tuple[int, list]:
    seen, queue, bad, pages = {start}, deque([(start, None)]), [], 0
    while queue and pages < MAX_PAGES:
        path, parent = queue.popleft()
        pages += 1
        response = client.get(path)
        if response.status_code >= 400 or "/admin/login" in response.headers.get("Location", ""):
            bad.append((response.status_code, path, parent))
        elif response.status_code == 200 and response.mimetype == "text/html":
            for href in HREF.findall(response.get_data(as_text=True)):
                target = urlsplit(urljoin("http://localhost" + path, html.unescape(href)))
                link = target.path + (f"?{target.query}" if target.query else "")
                if target.netloc == "localhost" and not SKIP.search(link) and link not in seen:
                    seen.add(link)
                    queue.append((link, path))
        response.close()
    return pages, bad


@pytest.fixture
def office(world):
    seed(world)
    first = world.file()["tracking_no"]
    world.act("office", first, "accept")
    world.act("office", first, "transfer", department_id=world.departments["A"])
    joined = world.file(phone="13900139000")["tracking_no"]
    world.act("office", joined, "accept")
    world.act("office", joined, "merge", into=first, note="同一问题")
    clerk = world.console("office")
    clusters = clerk.get("/admin/clusters/").get_data(as_text=True)
    cluster = re.search(r'href="/admin/clusters/(\d+)"', clusters)  # the world files the same problem again and again
    assert cluster
    detail = f"/admin/clusters/{cluster.group(1)}"
    opened = clerk.post(f"{detail}/governance", data={
        "department_id": str(world.departments["B"]), "working_days": "", "content": "请统一梳理。",
        "csrf_token": page_csrf(clerk, detail)})
    assert opened.status_code == 302
    return world


@SQLITE_ONLY
@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
def test_every_link_of_every_page_opens_for_its_reader(office, role):
    pages, bad = crawl(office.console(role))
    assert pages > 5  # it got in
    assert bad == [], bad[:20]
