"""Accessibility rules of every page, by kind: each template that begins an HTML document states its language and
every page template reaches one; the public pages render the locale's tag, label every field, and announce a form's
errors once (a focused summary; per-field messages as descriptions, not live regions); the 长辈模式 switch renders
from its cookie and its no-script address never leads off the site. In a browser, with axe-core:
tests/test_browser_accessibility.py."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import file_by_form, page_csrf
from tickets.elder import COOKIE, local_path

DOCUMENT = re.compile(r"<html\b[^>]*>", re.I)
EXTENDS = re.compile(r"""{%-?\s*extends\s+(?:["']([^"']+)["']|(\w+))""")
COMMENT = re.compile(r"{#.*?#}", re.S)
# Template sources and the 长辈模式 switch's redirect: no query runs, so PostgreSQL would add nothing.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def html_templates(app) -> dict[str, str]:
    """Every HTML template the app can render (ours, Flask-Admin's), by name, as the app's loader resolves the name
    (ours first: admin/base.html is our copy), without Jinja comments."""
    env = app.jinja_env
    return {name: COMMENT.sub("", env.loader.get_source(env, name)[0])
            for name in env.list_templates() if name.endswith(".html")}


def theme_base(app, variable: str) -> str:
    assert variable == "admin_base_template", variable
    (console,) = app.extensions["admin"]
    return console.theme.base_template


@SQLITE_ONLY
def test_every_template_that_begins_a_document_states_the_locales_language(app):
    templates = html_templates(app)
    documents = {name: DOCUMENT.search(text).group(0) for name, text in templates.items() if DOCUMENT.search(text)}
    assert {"base.html", "admin/base.html", "admin/plain.html"} <= set(documents), documents
    wrong = {name: tag for name, tag in documents.items() if 'lang="{{ html_lang }}"' not in tag}
    assert not wrong, f"<html> without lang=\"{{{{ html_lang }}}}\": {wrong}"
    # a page's skeleton without <html> would be a document without a language
    headless = [name for name, text in templates.items() if re.search(r"<(head|body)\b", text) and name not in documents]
    assert not headless, headless


@SQLITE_ONLY
def test_every_page_template_ends_in_a_document_that_states_its_language(app):
    """A template that extends another ends, through its chain, in one that begins the document (with lang):
    public pages in base.html, the console's in admin/base.html (through Flask-Admin's own layouts) or
    admin/plain.html."""
    templates = html_templates(app)
    documents = {name for name, text in templates.items() if DOCUMENT.search(text)}
    pages = 0
    for name, text in templates.items():
        if not EXTENDS.search(text):
            continue
        pages += 1
        chain = [name]
        while chain[-1] not in documents and len(chain) < 20:
            parent = EXTENDS.search(templates.get(chain[-1], ""))
            if parent is None:
                break
            # Flask-Admin's master.html extends the console's base template, named by its theme
            chain.append(parent.group(1) or theme_base(app, parent.group(2)))
        assert chain[-1] in documents, f"{' → '.join(chain)} never reaches a template with <html lang>"
    assert pages > 30


class Fields(HTMLParser):
    """What the rules below read of a page: <html>'s attributes, the form controls with whether a <label> wraps
    them, the ids of labels' `for`, every element's id and text, live regions and autofocus."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, markup: str):
        super().__init__()
        self.html, self.controls, self.label_for, self.ids, self.live, self.autofocus = {}, [], set(), {}, [], []
        self.links = []
        self._stack = []  # (tag, attrs)
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.html = attrs
        if tag == "label" and attrs.get("for"):
            self.label_for.add(attrs["for"])
        if tag in ("input", "select", "textarea"):
            self.controls.append({"tag": tag, **attrs, "_wrapped": any(t == "label" for t, _ in self._stack)})
        if attrs.get("role") == "alert" or "aria-live" in attrs or attrs.get("role") == "status":
            self.live.append((tag, attrs))
        if "autofocus" in attrs:
            self.autofocus.append((tag, attrs))
        if tag == "a" and any(a.get("id") == "error-summary" for _, a in self._stack):
            self.links.append(attrs.get("href", ""))
        if attrs.get("id"):
            self.ids[attrs["id"]] = ""
        if tag not in self.VOID:
            self._stack.append((tag, attrs))

    def handle_endtag(self, tag):
        if any(t == tag for t, _ in self._stack):
            while self._stack.pop()[0] != tag:
                pass

    def handle_data(self, data):
        for _tag, attrs in self._stack:
            if attrs.get("id"):
                self.ids[attrs["id"]] += data


def unlabelled(page: Fields) -> list[str]:
    missing = []
    for control in page.controls:
        if control["tag"] == "input" and control.get("type") in ("hidden", "submit", "button", "image", "reset"):
            continue
        named = (control.get("id") in page.label_for or control["_wrapped"] or control.get("aria-label")
                 or any(page.ids.get(i, "").strip() for i in control.get("aria-labelledby", "").split()))
        if not named:
            missing.append(f"<{control['tag']} name={control.get('name')} id={control.get('id')}>")
    return missing


def public_pages(world):
    """(name, status, page) for each kind of public page a citizen meets, with and without errors."""
    client = world.client
    yield "form", 200, client.get("/")
    yield "form-errors", 422, file_by_form(client, name="", phone="12345", problem_type="", description="短")
    yield "csrf-refused", 400, client.post("/", data={"name": "x"})  # the error page: the form came from elsewhere
    yield "track", 200, client.get("/track")
    token = page_csrf(client, "/track")
    yield "track-errors", 404, client.post("/track", data={"tracking_no": "BJ20990101-0001", "code": "WRONGONE",
                                                           "csrf_token": token})
    yield "recover", 200, client.get("/track/recover")
    token = page_csrf(client, "/track/recover")
    yield "recover-errors", 422, client.post("/track/recover", data={"tracking_no": "", "phone": "", "csrf_token": token})
    yield "not-found", 404, client.get("/no-such-page")
    assert file_by_form(client, phone="17000000100").status_code == 303
    yield "filed", 200, client.get("/filed")
    no = re.search(r'id="tracking-no">([^<]+)<', client.get("/filed").get_data(as_text=True)).group(1)
    yield "case-submitted", 200, client.get(f"/track/{no}")
    for who, action, body in (("office", "accept", {}), ("office", "transfer", {"department_id": world.departments["A"]}),
                              ("dept_a", "reply", {"content": "已办结。"}), ("office", "approve", {})):
        world.act(who, no, action, **body)
    yield "case-closed-survey-open", 200, client.get(f"/track/{no}")


@pytest.mark.parametrize("lang, html_lang", [("zh_CN", "zh-CN"), ("en", "en")])
def test_every_public_page_states_its_language_and_labels_every_field(world, lang, html_lang):
    world.client.get("/", query_string={"lang": lang})  # the choice is remembered for the visit
    seen = []
    for name, status, response in public_pages(world):
        assert response.status_code == status, name
        page = Fields(response.get_data(as_text=True))
        assert page.html.get("lang") == html_lang, name
        assert not unlabelled(page), (name, unlabelled(page))
        seen.append(name)
    assert len(seen) == 11


def test_a_forms_errors_are_announced_once_and_tied_to_their_fields(world):
    for name, _status, response in public_pages(world):
        page = Fields(response.get_data(as_text=True))
        errors = name.endswith("-errors")
        # the summary is the one announcement: focused on arrival; nothing in the page is a live region besides
        # the status of a step done (a flash) and, when empty, a script's own message area
        assert [a.get("id") for _t, a in page.autofocus] == (["error-summary"] if errors else []), name
        assert not [a for _t, a in page.live if a.get("role") == "alert"], name
        if not errors:
            continue
        invalid = [c for c in page.controls if c.get("aria-invalid") == "true"]
        assert invalid, name
        for control in invalid:
            described = control.get("aria-describedby", "").split()
            assert any(i.endswith("-error") and page.ids.get(i, "").strip() for i in described) \
                or control.get("type") == "radio", (name, control)  # a radio button: its fieldset names the error
        for href in page.links:
            assert href.startswith("#") and href[1:] in page.ids, (name, href)
        assert len(page.links) == len({c.get("name") for c in invalid}), (name, page.links)


def test_the_elder_mode_renders_from_its_cookie_with_both_wordings(world):
    client = world.client
    normal = Fields(client.get("/track?no=BJ20261122-0001").get_data(as_text=True))
    assert "class" not in normal.html
    page = client.get("/track?no=BJ20261122-0001").get_data(as_text=True)
    assert 'aria-pressed="false"' in page and 'name="on" value="1"' in page
    assert 'name="next" value="/track?no=BJ20261122-0001"' in page
    # the switch without a script: a cookie for a year, then back where it was
    response = client.get("/elder", query_string={"on": "1", "next": "/track?no=BJ20261122-0001"})
    assert response.status_code == 303 and response.headers["Location"] == "/track?no=BJ20261122-0001"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=1;") and "Max-Age=31536000" in cookie and "SameSite=Lax" in cookie
    assert "HttpOnly" not in cookie  # static/banjie.js writes the same cookie
    page = client.get("/track").get_data(as_text=True)
    assert Fields(page).html.get("class") == "elder"
    assert 'aria-pressed="true"' in page and 'name="on" value="0"' in page
    # both wordings are there (the stylesheet shows one), the plain one in its own span
    assert '<span class="wording-full">' in page and '<span class="wording-plain">' in page
    response = client.get("/elder", query_string={"on": "0"})
    assert response.headers["Location"] == "/" and response.headers["Set-Cookie"].startswith(f"{COOKIE}=0;")
    assert "class" not in Fields(client.get("/").get_data(as_text=True)).html


NEXT = re.compile(r'<input type="hidden" name="next" value="([^"]*)">')


@SQLITE_ONLY
def test_the_switch_on_every_page_answered_to_a_post_leads_to_a_page(world):
    """Every public page a POST answers (a form sent back with its errors) carries the switch; its `next` is a page
    (200), never a POST-only step's address (a 405: 补充材料, 撤回, the rating, 下载我的信息 have no page of their own)."""
    import html

    filed = world.file()
    no = filed["tracking_no"]
    client = world.app.test_client()
    client.post("/track", data={"tracking_no": no, "code": filed["query_code"], "csrf_token": page_csrf(client, "/track")})
    csrf = page_csrf(client, f"/track/{no}")
    posts = sorted(rule.rule for rule in world.app.url_map.iter_rules() if "POST" in rule.methods
                   and not rule.rule.startswith(("/admin", "/api", "/open311", "/sms", "/static", "/webhooks"))
                   and set(rule.arguments) <= {"tracking_no"})
    assert "/track/<tracking_no>/supplement" in posts and "/track/my-data" in posts, posts
    answered = []
    for rule in posts:
        path = rule.replace("<tracking_no>", no)
        response = client.post(path, data={"csrf_token": csrf})
        found = NEXT.search(response.get_data(as_text=True))
        if found is None:
            continue
        answered.append(path)
        switched = client.get("/elder", query_string={"on": "1", "next": html.unescape(found.group(1))})
        landing = client.get(switched.headers["Location"])
        assert landing.status_code == 200, (path, response.status_code, switched.headers["Location"], landing.status_code)
    assert {f"/track/{no}/supplement", f"/track/{no}/withdraw", f"/track/{no}/rating", "/track/my-data"} <= set(answered)


HOSTILE = ["//evil.example/", "https://evil.example/", "http:/evil.example", "/\\evil.example", "\\\\evil.example",
           "/\t/evil.example", "/\n/evil.example", "javascript:alert(1)", "evil.example", " //evil.example",
           "/%2F/evil.example", "///evil.example", "\x00/", "data:text/html,x", "/\u2028/evil.example", ""]


@SQLITE_ONLY
@pytest.mark.parametrize("target", HOSTILE)
def test_the_elder_switch_goes_back_only_to_a_page_of_this_site(world, target):
    response = world.client.get("/elder", query_string={"on": "1", "next": target})
    assert response.status_code in (303, 400), target  # a NUL is refused before (tickets/http.py)
    if response.status_code == 303:
        assert stays_here(response.headers["Location"]), (target, response.headers["Location"])


SITE = "https://banjie.example/track"


def stays_here(location: str) -> bool:
    """Where a browser goes from a page of this site with this Location: it drops tabs and line breaks and reads a
    backslash as a slash, so check what it would resolve."""
    seen = re.sub(r"[\t\n\r]", "", location).replace("\\", "/")
    resolved = urlsplit(urljoin(SITE, seen))
    return resolved.scheme == "https" and resolved.netloc == "banjie.example"


@given(st.one_of(st.text(max_size=30), st.text(alphabet="/\\:.@?#%\t\n evil", max_size=20),
                 st.builds(lambda a, b: a + b, st.sampled_from(["/", "//", "/\\", "\\", "http:", "/%09/"]),
                           st.text(max_size=15))))
def test_the_elder_switch_never_leads_off_the_site(target):
    path = local_path(target)
    assert path is None or (path == target and stays_here(path)), target
