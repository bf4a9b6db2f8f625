"""A live server in a thread and Playwright driving Debian's Chromium, for tests that use the site as people do."""
from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from tests.helpers import CONSOLE_PASSWORD, service_missing

ARTIFACTS = pathlib.Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = os.environ.get("BANJIE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


class _ClosedWhenDropped:
    """A response body that is closed when it is dropped, if the server did not close it."""

    def __init__(self, body):
        self.body = body
        self.closed = False

    def __iter__(self):
        return iter(self.body)

    def close(self):
        if not self.closed:
            self.closed = True
            if hasattr(self.body, "close"):
                self.body.close()

    def __del__(self):
        self.close()


def closing(app):
    """The app for werkzeug's development server, whose every response body is closed.

    When a browser drops a connection while a file is being sent (a page left before its favicon arrived),
    werkzeug 3.1's server can fail reading the dropped socket in its clean-up and skip closing the body: the
    open file is then found by the garbage collector, in whatever test runs next, as a ResourceWarning.
    """
    def serve(environ, start_response):
        return _ClosedWhenDropped(app(environ, start_response))
    return serve


class LiveServer:
    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, closing(app), threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()


@pytest.fixture
def browser_page():
    if not shutil.which(CHROMIUM) and not pathlib.Path(CHROMIUM).exists():
        service_missing("Chromium", f"{CHROMIUM} not found (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # a phone-sized window: the public pages are mobile first
        context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", device_scale_factor=2)
        page = context.new_page()
        violations = watch_csp(page)
        yield page
        context.close()
        browser.close()
    if violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(violations))


@pytest.fixture(scope="module")
def module_chromium():
    """One Chromium for all the tests of a module (a launch costs seconds); each test opens its own context
    (`context_page`): its own cookies, window size and language."""
    if not shutil.which(CHROMIUM) and not pathlib.Path(CHROMIUM).exists():
        service_missing("Chromium", f"{CHROMIUM} not found (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def context_page(browser, *, width=390, height=844, locale="zh-CN", **options):
    """A page in a new context of `browser` (a phone-sized window unless told), failing the test on any CSP
    violation it reports, as `browser_page` does."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale=locale, **options)
    page = context.new_page()
    violations = watch_csp(page)
    try:
        yield page
    finally:
        context.close()
    if violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(violations))


@contextlib.contextmanager
def served_office(sqlite_template, directory: pathlib.Path):
    """`world`'s small office in an app of its own (a copy of the migrated SQLite database in `directory`, a movable
    clock), served by a live server: one for all the browser tests of a module, which share what they file.
    Yields (url, world, clock)."""
    from app import create_app
    from notify.state import BACKEND
    from tests.helpers import BASE_CONFIG, Clock, seed_world
    from tickets.clock import set_clock
    from tickets.db import db

    path = directory / "banjie.db"
    shutil.copy(sqlite_template, path)
    clock = Clock()
    # the browser keeps the static files for the module (they do not change meanwhile): a third of each page's time
    app = create_app({**BASE_CONFIG, "DATABASE_URL": f"sqlite:///{path}", "SEND_FILE_MAX_AGE_DEFAULT": 3600})
    set_clock(app, clock)
    world = seed_world(app, app.test_client())
    try:
        with LiveServer(app) as server:
            yield server.url, world, clock
    finally:
        backend = BACKEND.find(app)
        if backend is not None:
            backend.close()
        with app.app_context():
            db.engine.dispose()


def watch_csp(page) -> list[str]:
    """Every CSP violation the page reports (Chromium logs each as a console error), with the page's address.

    A script, style or handler that the policy blocks fails silently for people; here it fails the test.
    """
    violations = []

    def on_console(message):
        if message.type == "error" and "Content Security Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    return violations


def loaded_width(image) -> int:
    """The natural width of an <img> once it has loaded or failed (0 for a broken picture).

    Thumbnails are `loading="lazy"`: the page's load event does not wait for them, so reading naturalWidth right after
    `goto` races the picture's request.
    """
    return image.evaluate(
        """img => img.complete ? img.naturalWidth : new Promise(done => {
            img.addEventListener("load", () => done(img.naturalWidth));
            img.addEventListener("error", () => done(0));
        })"""
    )


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, url, who):
    """Sign in through the console's form as `who` (whose password `world.console(who)` set)."""
    page.goto(url + "/admin/")
    page.wait_for_url("**/admin/login**")
    assert page.locator("h1").inner_text() == "工作人员登录"
    page.fill("#username", who)
    page.fill("#password", CONSOLE_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/admin/")


def sign_out(page):
    page.click("text=退出")
    page.wait_for_selector("text=您已安全退出。")
