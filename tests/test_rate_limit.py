"""Public endpoints are rate limited per client, with a clear 429 in the error shape."""
import pytest

from tests.helpers import page_csrf

BODY = {"name": "王五", "phone": "13800138000", "problem_type": "other", "description": "限流测试内容", "privacy": "y"}


def test_filing_is_limited_across_api_and_form(make_app):
    app = make_app(RATELIMIT_PUBLIC="3/minute")
    client = app.test_client()
    assert [client.post("/api/v1/tickets", json=BODY).status_code for _ in range(2)] == [201, 201]
    form = client.post("/", data={**BODY, "csrf_token": page_csrf(client)})
    assert form.status_code == 303
    limited = client.post("/api/v1/tickets", json=BODY)
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert "请稍后再试" in limited.get_json()["error"]["message"]
    assert int(limited.headers["Retry-After"]) > 0
    page = client.post("/", data={**BODY, "csrf_token": page_csrf(client)})
    assert page.status_code == 429 and "请稍后再试" in page.get_data(as_text=True)
    # another client is not affected
    other = app.test_client()
    assert other.post("/api/v1/tickets", json=BODY, environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 201


def test_off_disables_the_limit(make_app):
    app = make_app(RATELIMIT_PUBLIC="off")
    client = app.test_client()
    assert all(client.post("/api/v1/tickets", json=BODY).status_code == 201 for _ in range(40))


def test_workers_share_one_budget_through_redis(make_app, redis_url):
    """Behind gunicorn each worker is its own process; with Redis storage they count together."""
    config = {"RATELIMIT_PUBLIC": "4/minute", "RATELIMIT_STORAGE_URI": redis_url}
    first, second = make_app(**config).test_client(), make_app(**config).test_client()
    codes = [client.post("/api/v1/tickets", json=BODY).status_code for client in (first, second) * 3]
    assert codes == [201, 201, 201, 201, 429, 429]


def test_limits_are_evaluated_once_per_request(make_app, monkeypatch):
    """Every limit is on its route, so Flask-Limiter's pass before each request (for limits that are not)
    is left out: a limited request is evaluated once, by its route, and counted once."""
    from tickets.extensions import limiter

    app = make_app(RATELIMIT_PUBLIC="3/minute")
    manager = limiter.limit_manager
    with app.test_request_context():
        assert manager.application_limits == [] and manager.default_limits == []
        assert all(manager.blueprint_limits(app, name) == [] for name in app.blueprints)
    assert all(getattr(hook, "__func__", None) is not type(limiter)._check_request_limit
               for hook in app.before_request_funcs[None])
    evaluated, hits = [], []
    check, hit = limiter._check_request_limit, limiter.limiter.hit
    monkeypatch.setattr(limiter, "_check_request_limit", lambda *a, **k: (evaluated.append(k), check(*a, **k))[1])
    monkeypatch.setattr(limiter.limiter, "hit", lambda *a, **k: (hits.append(a), hit(*a, **k))[1])
    client = app.test_client()
    assert client.post("/api/v1/tickets", json=BODY).status_code == 201
    assert [k.get("in_middleware") for k in evaluated] == [False] and len(hits) == 1
    evaluated.clear(), hits.clear()
    assert client.get("/api/v1/problem-types").status_code == 200
    assert len(evaluated) == 1 and len(hits) == 1
    evaluated.clear(), hits.clear()
    assert client.get("/").status_code == 200 and evaluated == [] and hits == []  # the form: no limit of its own
    assert [client.post("/api/v1/tickets", json=BODY).status_code for _ in range(3)] == [201, 201, 429]


def test_a_system_filing_with_its_token_has_its_own_budget_and_a_made_up_token_has_none(make_app):
    """A 12345 platform files a whole city's cases from one address: its filings count against its token
    (RATELIMIT_INTEGRATION), never against the public's per-client limit, and the public's never against it.
    A token that is unknown, revoked or not allowed to file buys nothing: it counts as the address's."""
    import sqlalchemy as sa

    from tests.helpers import seed_world
    from tickets.accounts import issue_token
    from tickets.db import db
    from tickets.models import User

    app = make_app(RATELIMIT_PUBLIC="2/minute", RATELIMIT_INTEGRATION="4/minute")
    world = seed_world(app, app.test_client())
    with app.app_context():
        office = db.session.scalar(sa.select(User).where(User.username == "office"))
        filing, reading = issue_token(db.session, office, "12345", "file"), issue_token(db.session, office, "q", "read")
        db.session.commit()
    staff = {**BODY, "channel": "hotline"}
    client = app.test_client()

    def file(token=None, body=staff):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.post("/api/v1/tickets", json=body, headers=headers).status_code

    assert [file(filing) for _ in range(4)] == [201] * 4  # twice the public's limit, from the same address
    assert file(filing) == 429  # its own budget spent
    assert [file(body=BODY) for _ in range(2)] == [201, 201]  # the public at that address is untouched
    assert file(body=BODY) == 429
    assert file("bj_made_up") == 429  # counted as the address's, which is spent: no way round the limit
    assert file(reading) == 429  # a token that may not file is no filing token
    assert file(world.tokens["office"]) == 201  # another system's token: a budget of its own


def test_open311_filing_counts_against_its_api_key(make_app):
    import sqlalchemy as sa

    from tests.helpers import seed_world
    from tickets.accounts import issue_token
    from tickets.db import db
    from tickets.models import User

    app = make_app(RATELIMIT_PUBLIC="1/minute", RATELIMIT_INTEGRATION="3/minute")
    seed_world(app, app.test_client())
    with app.app_context():
        key = issue_token(db.session, db.session.scalar(sa.select(User).where(User.username == "office")), "o", "file")
        db.session.commit()
    client = app.test_client()
    form = {"service_code": "too_slow", "first_name": "三", "last_name": "张", "phone": "13800138000",
            "description": "营业执照变更办了一个月还没有结果。"}
    codes = [client.post("/open311/v2/requests.json", data={**form, "api_key": key}).status_code for _ in range(4)]
    assert codes == [201, 201, 201, 429]
    assert client.post("/open311/v2/requests.json", data=form).status_code == 403  # no key: the public's budget


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("name", ["RATELIMIT_PUBLIC", "RATELIMIT_LOOKUP", "RATELIMIT_INTEGRATION", "LOGIN_RATELIMIT",
                                  "LOGIN_RATELIMIT_CLIENT"])
@pytest.mark.parametrize("value", ["3 per minut", "5/15 minuts", "", "none", "off"])
def test_a_rate_limit_the_limiter_cannot_read_stops_start_up_naming_it(make_app, name, value):
    """Not a limit silently gone: the limiter would log the parse error at each request and let it through."""
    if value == "off" and name == "RATELIMIT_PUBLIC":
        make_app(**{name: value})  # lifts the public limits: a choice, not a typo
        return
    with pytest.raises(ValueError) as refused:
        make_app(**{name: value})
    assert str(refused.value).startswith(f"{name}={value!r} is not a rate limit: write it like 30/minute")


def test_a_malformed_login_limit_from_the_environment_is_refused_by_prod_check_in_one_line(monkeypatch):
    from click.testing import CliRunner
    from flask.cli import ScriptInfo

    from app import create_app
    from tests.helpers import BASE_CONFIG
    from tickets.production import check_command

    monkeypatch.setenv("LOGIN_RATELIMIT", "3 per 15 minuts")
    result = CliRunner().invoke(check_command, [], obj=ScriptInfo(
        create_app=lambda: create_app({**BASE_CONFIG, "DATABASE_URL": "sqlite://"})))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "refused: LOGIN_RATELIMIT='3 per 15 minuts' is not a rate limit: write it like 30/minute or 5 per 15 minutes"]
