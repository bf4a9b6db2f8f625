"""How much a clerk does to take ten new cases to 办理中 in the console: clicks, key presses and wall time.

    make bench-clerk            (or: .venv/bin/python tests/bench/clerk.py [--cases 10])

Issue 16 sets its goal on this: at least three times fewer interactions than before its work. Each run builds a fresh
office (SQLite, in a temporary directory; no other service), files `--cases` new cases through the API, serves the
app in a thread and drives Debian's Chromium with Playwright, signed in as the office's clerk, twice:

* **mouse**: from 待受理, open the first case; on each, 受理并转办 to the department (the citizen named none, the
  dispatch catalogue has no rule for it: the list, or one click on it once the page offers it among 常用部门); the
  console opens the queue's next case by itself;
* **keyboard**: the same with the keyboard alone: j and Enter open the first case, t focuses 受理并转办's department
  list, arrow keys choose, Ctrl+Enter sends.

Before issue 16 (commit abe0987, same setup): the clerk opened each case from the queue, pressed 受理, chose the
department, pressed 转办 and went back to 待受理: 60 interactions with the mouse (6 per case), 850 with the keyboard
(85 per case; 27 Tab presses to reach the first case). BEFORE below keeps those figures for the table.

Counted: every click, every key press (typed text would count one press per character; the path needs none), and
the wall time from the first case to the last. Signing in is not counted. Prints a table and writes
bench-results/clerk.json. The path is the shortest the console offers at the time of the run; it is written against
the console's markup (`#action-accept_and_transfer`, `.quick-department`, `#queue-done`, the queue's case links)
and shortcuts (static/console.js), and a console that changes them must change this script with it.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench-results" / "clerk.json"
QUEUE = "/admin/queue-intake/"
DEPARTMENT = "市场监督管理局"
BEFORE = {"mouse": 60, "keyboard": 850}  # interactions for ten cases on the console before issue 16 (abe0987)


class Counted:
    """A Playwright page whose clicks and key presses are counted."""

    def __init__(self, page):
        self.page, self.clicks, self.keys = page, 0, 0
        self.steps: dict[str, int] = {}  # interactions by step of the path, all cases together

    def step(self, name: str, since: int) -> None:
        self.steps[name] = self.steps.get(name, 0) + self.clicks + self.keys - since

    @property
    def count(self) -> int:
        return self.clicks + self.keys

    def click(self, selector: str) -> None:
        self.page.locator(selector).first.click()
        self.clicks += 1

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)
        self.keys += 1

    def tab_to(self, selector: str, limit: int = 400) -> None:
        """Tab until the focused element matches `selector` (counted), from where the focus is."""
        for _ in range(limit):
            if self.page.evaluate("s => !!document.activeElement && document.activeElement.matches(s)", selector):
                return
            self.press("Tab")
        raise RuntimeError(f"{selector} never took the focus in {limit} Tab presses")


def setup(folder: Path, cases: int):
    from app import create_app
    from tests.helpers import BASE_CONFIG, seed_world
    from tickets.schema import upgrade_database

    app = create_app({**BASE_CONFIG, "DATABASE_URL": f"sqlite:///{folder / 'clerk.db'}", "LOGIN_RATELIMIT": "1000/minute"})
    with app.app_context():
        upgrade_database("head")
    world = seed_world(app, app.test_client())
    numbers = [world.file(description=f"第{n + 1}件：营业执照变更跑了三次窗口都说材料不全，没有一次性告知。")["tracking_no"]
               for n in range(cases)]
    world.console("office")  # sets the clerk's password
    return app, world, numbers


def mouse_clerk(page: Counted, url: str, numbers: list[str]) -> None:
    """Open the first case of 待受理; on each, 受理并转办 to the department (one click on it when the case page offers
    it among its 常用部门, else the list and the form's button); the console then opens the queue's next case."""
    page.page.goto(url + QUEUE)
    page.click(f"a[href*='/admin/case/{numbers[0]}']")
    for no in numbers:
        page.page.wait_for_selector(f"h1:has-text('{no}')")
        since = page.count
        quick = page.page.locator(f"#action-accept_and_transfer button.quick-department:has-text('{DEPARTMENT}')")
        if quick.count():
            quick.first.click()
            page.clicks += 1
        else:
            page.click("#action-accept_and_transfer select[name=department_id]")
            page.page.select_option("#action-accept_and_transfer select[name=department_id]", label=DEPARTMENT)
            page.clicks += 1  # choosing the option in the opened list
            page.click("#action-accept_and_transfer button[type=submit]:not(.quick-department)")
        page.page.wait_for_load_state()
        page.step("受理并转办", since)


def keyboard_clerk(page: Counted, url: str, numbers: list[str]) -> None:
    """j and Enter open the first case of 待受理; on each, t puts the focus on 受理并转办's department list, the arrow
    keys choose the department, Ctrl+Enter sends the form; the console then opens the queue's next case."""
    page.page.goto(url + QUEUE)
    page.page.wait_for_load_state("load")
    since = page.count
    page.press("j")
    page.press("Enter")
    page.step("open the first case", since)
    for no in numbers:
        page.page.wait_for_selector(f"h1:has-text('{no}')")
        page.page.wait_for_load_state("load")  # console.js, which the keys need, comes last
        since = page.count
        page.press("t")
        while page.page.evaluate("() => document.activeElement.selectedOptions[0].text") != DEPARTMENT:
            page.press("ArrowDown")
        page.press("Control+Enter")
        page.page.wait_for_load_state()
        page.step("受理并转办", since)
    page.page.wait_for_selector("#queue-done")


def run(cases: int) -> dict:
    import logging

    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS, LiveServer
    from tests.helpers import CONSOLE_PASSWORD

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the live server's access log
    results = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, clerk in (("mouse", mouse_clerk), ("keyboard", keyboard_clerk)):
            with tempfile.TemporaryDirectory() as folder:
                app, world, numbers = setup(Path(folder), cases)
                with LiveServer(app) as server:
                    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")
                    page = context.new_page()
                    page.on("dialog", lambda dialog: dialog.accept())
                    page.goto(server.url + "/admin/login")
                    page.fill("#username", "office")
                    page.fill("#password", CONSOLE_PASSWORD)
                    page.click("button[type=submit]")
                    page.wait_for_url(server.url + "/admin/")
                    counted = Counted(page)
                    start = time.perf_counter()
                    clerk(counted, server.url, numbers)
                    wall = time.perf_counter() - start
                    context.close()
                statuses = {world.ticket("office", no)["status"] for no in numbers}
                if statuses != {"transferred"}:
                    raise RuntimeError(f"the {name} clerk left cases in {statuses}")
                results[name] = {"cases": cases, "clicks": counted.clicks, "keys": counted.keys,
                                 "interactions": counted.count, "wall_s": round(wall, 1), "steps": counted.steps}
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--label", default="", help="a name for this run in the JSON (e.g. the commit)")
    args = parser.parse_args()
    results = run(args.cases)
    print(f"{'clerk':<9} {'cases':>5} {'clicks':>7} {'keys':>6} {'interactions':>13} {'per case':>9} {'wall s':>7} "
          f"{'before':>7} {'fewer':>6}")
    for name, r in results.items():
        before = BEFORE[name] * r["cases"] / 10
        r["before"], r["times_fewer"] = before, round(before / r["interactions"], 1)
        print(f"{name:<9} {r['cases']:>5} {r['clicks']:>7} {r['keys']:>6} {r['interactions']:>13} "
              f"{r['interactions'] / r['cases']:>9.1f} {r['wall_s']:>7.1f} {before:>7.0f} {r['times_fewer']:>5}x")
        if r["steps"]:
            print("          " + ", ".join(f"{step} {n / r['cases']:.1f}" for step, n in r["steps"].items()) + " per case")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"label": args.label, "results": results}, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
