"""The production stack's pieces on their own: `flask prod check` (tickets/production.py), the refusal of a per-host
SECRET_KEY, deploy/respawn.py, deploy/gunicorn.conf.py, the Procfile, the systemd units and the environment example.
tests/test_prod_stack.py runs them together under `make prod`.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from hypothesis import given
from hypothesis import strategies as st

from app import SETTINGS, create_app
from tests.helpers import BASE_CONFIG, free_port
from tickets import production
from tickets.production import check_command, masked, setting_findings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
PRODUCTION = {"DATABASE_URL": "postgresql://banjie@db.internal/banjie", "BROKER_URL": "redis://redis.internal:6379/0",
              "RATELIMIT_STORAGE_URI": "redis://redis.internal:6379/1", "SMS_BACKEND": "twilio",
              "PUBLIC_BASE_URL": "https://banjie.example.gov.cn", "REPORT_FONT": "/usr/share/fonts/cjk.ttc"}


def config(**changes) -> dict:
    app = create_app({**BASE_CONFIG, **PRODUCTION, **changes})
    return app.config


def texts(found, refuse: bool) -> list[str]:
    return [finding.text for finding in found if finding.refuse is refuse]


# --- numeric settings: each within its range (app.RANGES), else start-up stops naming it --------------------------

@pytest.mark.parametrize("name, value", [
    ("PORT", 70724), ("PORT", 0), ("SWEEP_INTERVAL_SECONDS", 0), ("SWEEP_INTERVAL_SECONDS", -30),
    ("ESCALATION_BATCH_SIZE", 0), ("ESCALATION_BATCH_SIZE", -1), ("SURVEY_OPEN_DAYS", 0),
    ("SESSION_IDLE_MINUTES", 0), ("TWILIO_TIMEOUT_SECONDS", float("nan")), ("TWILIO_TIMEOUT_SECONDS", float("inf")),
    ("WORKER_THREADS", 0), ("PROXY_COUNT", -1), ("DUPLICATE_TEXT_THRESHOLD", 1.5), ("READY_TIMEOUT_SECONDS", 61),
    ("DATABASE_CONNECT_TIMEOUT_SECONDS", 0), ("ESCALATION_BATCH_SIZE", 2.5), ("PORT", True),
])
def test_a_number_out_of_its_range_stops_start_up_naming_the_setting(name, value):
    from app import range_text

    with pytest.raises(ValueError) as refused:
        create_app({**BASE_CONFIG, "DATABASE_URL": "sqlite://", name: value})
    assert str(refused.value) == f"{name} must be {'a whole number' if SETTINGS[name][1] is int else 'a number'} " \
                                 f"from {range_text(name)}, not {value!r}"


def test_every_number_has_a_range_and_both_ends_start(monkeypatch):
    from app import RANGES, check_range, from_environment

    numbers = {name for name, (_default, kind) in SETTINGS.items() if kind in (int, float)}
    assert set(RANGES) == numbers
    for name, (low, high, _unit) in RANGES.items():
        for value in (low, high, SETTINGS[name][0]):
            check_range(name, value)
        for value in (low - 1, high + 1, float("nan")):
            with pytest.raises(ValueError, match=f"^{name} must be"):
                check_range(name, value)
        monkeypatch.setenv(name, str(high + 1))  # the processes that read a setting before any app: worker.py
        with pytest.raises(ValueError, match=f"^{name} must be"):
            from_environment(name)
        monkeypatch.delenv(name)


def test_the_check_says_a_number_out_of_range_in_one_line():
    result = run_check(lambda: create_app({**BASE_CONFIG, **PRODUCTION, "PORT": 70724}))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["refused: PORT must be a whole number from 1 to 65535, not 70724"]


def test_flask_serve_refuses_a_port_out_of_range_before_it_listens(tmp_path):
    """Not PORT mod 65536 (where the socket would bind) under a banner naming PORT: the start stops, as for any other
    setting create_app refuses, its last line the refusal."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASK_")}
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}", "BROKER_URL": "", "PORT": str(65536 + 5188)})
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "serve"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "Banjie on" not in done.stdout
    assert done.stderr.strip().splitlines()[-1] == \
        "ValueError: PORT must be a whole number from 1 to 65535, not 70724", done.stderr


# --- flask prod check ------------------------------------------------------------------------------------------------

def test_a_complete_production_configuration_has_nothing_to_say():
    assert setting_findings(config()) == []


@pytest.mark.parametrize("changes, says", [
    ({"DATABASE_URL": "sqlite:////srv/banjie/banjie.db"}, "DATABASE_URL is a SQLite file"),
    ({"BROKER_URL": ""}, "BROKER_URL is not set"),
])
def test_production_is_refused_without_postgresql_or_a_broker(changes, says):
    refusals = texts(setting_findings(config(**changes)), refuse=True)
    assert len(refusals) == 1 and refusals[0].startswith(says)


def test_an_instance_file_key_is_refused_in_production_and_never_generated_with_a_broker(tmp_path):
    with pytest.raises(ValueError, match="SECRET_KEY is not set: with BROKER_URL"):
        create_app({**BASE_CONFIG, **PRODUCTION, "SECRET_KEY": ""})
    embedded = create_app({**BASE_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}", "SECRET_KEY": ""})
    assert embedded.config["SECRET_KEY_FILE"].endswith("secret_key")
    assert any(text.startswith("SECRET_KEY is not set") for text in texts(setting_findings(embedded.config), True))


@pytest.mark.parametrize("changes, says", [
    ({"RATELIMIT_STORAGE_URI": "memory://"}, "RATELIMIT_STORAGE_URI is memory://"),
    ({"BROKER_URL": "amqp://rabbit.internal"}, "SMS_RATE_REDIS_URL is not set and BROKER_URL is not Redis"),
    ({"SMS_BACKEND": "outbox"}, "SMS_BACKEND is outbox"),
    ({"PUBLIC_BASE_URL": "http://banjie.example.gov.cn"}, "PUBLIC_BASE_URL is http://"),
    ({"ATTACHMENT_STORAGE": "directory", "ATTACHMENT_DIR": "."}, "ATTACHMENT_STORAGE is directory"),
    ({"REPORT_FONT": ""}, "REPORT_FONT is not set"),
])
def test_what_one_host_would_get_away_with_is_a_warning(changes, says):
    found = setting_findings(config(**changes))
    assert texts(found, refuse=True) == []
    assert [text for text in texts(found, refuse=False) if text.startswith(says)]


def test_with_rabbitmq_a_redis_for_the_sms_rate_settles_it():
    assert setting_findings(config(BROKER_URL="amqp://rabbit.internal", SMS_RATE_REDIS_URL="redis://r:6379/2")) == []


@given(user=st.from_regex(r"[a-z]{1,8}", fullmatch=True), password=st.from_regex(r"[A-Z0-9!~*]{1,24}", fullmatch=True),
       port=st.one_of(st.none(), st.integers(1, 65535)))
def test_a_password_in_a_url_is_never_printed(user, password, port):
    url = f"postgresql+psycopg://{user}:{password}@db.internal{f':{port}' if port else ''}/banjie"
    assert masked(url) == url.replace(f":{password}@", ":***@")
    assert masked(url.replace(f":{password}@", "@")) == url.replace(f":{password}@", "@")  # nothing to hide


def test_an_ipv6_database_keeps_its_address_and_loses_its_password():
    assert masked("postgresql://banjie:s3cret@[fd00::5]:5432/banjie") == "postgresql://banjie:***@[fd00::5]:5432/banjie"


@given(password=st.text(st.characters(blacklist_categories=("Cs",)), min_size=6, max_size=24))
def test_a_password_of_any_characters_is_never_printed_as_written_or_escaped(password):
    """#, / and ? in a password (which urlsplit took for the fragment, the path or the query), escaped or not."""
    from urllib.parse import quote

    for written in (quote(password, safe=""), password):
        url = f"postgresql+psycopg://banjie:{written}@db.internal:5432/banjie"
        shown = masked(url)
        assert written not in shown or written in "postgresql+psycopg://banjie:@db.internal:5432/banjie", shown


@pytest.mark.parametrize("url, shown", [
    ("postgresql://banjie:s3cr#et@127.0.0.1:1/banjie", "postgresql://banjie:***@127.0.0.1:1/banjie"),
    ("postgresql://banjie:s3/cr?et@db/banjie", "postgresql://banjie:***@db/banjie"),
    ("postgresql://banjie:s3cr@et@db/banjie", "postgresql://banjie:***@db/banjie"),
    ("postgresql://banjie@db/banjie?sslmode=require&password=s3cr%23et", "postgresql://banjie@db/banjie?password=***&sslmode=require"),
    ("postgresql://banjie@db/banjie?sslpassword=s3cret", "postgresql://banjie@db/banjie?sslpassword=***"),
    ("redis://:s3cret@redis.internal:6379/0", "redis://:***@redis.internal:6379/0"),
    ("redis://redis.internal:6379/1?password=s3cret", "redis://redis.internal:6379/1?password=***"),
    ("amqp://banjie:s3cret@rabbit.internal//", "amqp://banjie:***@rabbit.internal//"),
    ("https://hooks.example.gov.cn/banjie?token=s3cret", "https://hooks.example.gov.cn/banjie?token=***"),
    ("memory://", "memory://"),
    ("redis://redis.internal:s3cret/0", "(unreadable URL)"),
])
def test_a_password_or_a_secret_parameter_is_masked_in_any_url(url, shown):
    assert masked(url) == shown


@pytest.mark.parametrize("url", ["postgresql://banjie:s3cr#et@127.0.0.1:{port}/banjie",
                                 "postgresql://banjie@127.0.0.1:{port}/banjie?password=s3cr%23et"])
def test_the_check_never_prints_a_database_password_it_cannot_use(url):
    closed = free_port()
    result = run_check(lambda: create_app({**BASE_CONFIG, **PRODUCTION, "DATABASE_URL": url.format(port=closed),
                                           "BROKER_URL": f"redis://:s3cret@127.0.0.1:{closed}/0"}))
    assert result.exit_code == 1 and "refused: DATABASE_URL postgresql+psycopg://banjie" in result.output
    assert "s3cr" not in result.output, result.output


@given(st.text())
def test_an_error_or_a_setting_is_said_in_one_line(text):
    for line in (production.first_line(ValueError(text)), production.Finding(True, text).line(),
                 production.one_line(masked(text))):
        assert len(line.splitlines()) <= 1 and not re.search(r"[\x00-\x1f\x7f-\x9f]", line)
    assert production.first_line(ValueError(text))  # never nothing: the error's kind at least


def run_check(app_factory, *args):
    return CliRunner().invoke(check_command, list(args), obj=ScriptInfo(create_app=app_factory))


def test_the_check_refuses_in_one_line_per_reason_with_status_1():
    result = run_check(lambda: create_app({**BASE_CONFIG, **PRODUCTION, "DATABASE_URL": "sqlite://", "BROKER_URL": ""}))
    assert result.exit_code == 1
    refusals = [line for line in result.output.splitlines() if line.startswith("refused: ")]
    assert [line.split(" ")[1] for line in refusals] == ["DATABASE_URL", "BROKER_URL"]


def test_a_setting_that_stops_the_app_is_one_line_not_a_traceback():
    result = run_check(lambda: create_app({**BASE_CONFIG, **PRODUCTION, "SECRET_KEY": ""}))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"refused: {production.first_line(ValueError(_secret_message()))}"]


def _secret_message() -> str:
    from app import SECRET_KEY_NEEDED
    return SECRET_KEY_NEEDED


def test_unreachable_services_are_refused_with_the_reason():
    closed = free_port()
    result = run_check(lambda: create_app({**BASE_CONFIG, **PRODUCTION,
                                           "DATABASE_URL": f"postgresql://u:hunter2hunter2@127.0.0.1:{closed}/x",
                                           "BROKER_URL": f"redis://127.0.0.1:{closed}/0"}))
    assert result.exit_code == 1
    assert re.search(r"refused: DATABASE_URL postgresql\+psycopg://u:\*\*\*@127\.0\.0\.1:\d+/x does not answer: .*"
                     r"(refused|failed)", result.output)
    assert re.search(r"refused: BROKER_URL redis://127.0.0.1:\d+/0 does not answer: .*refused", result.output)
    assert "hunter2" not in result.output


def test_the_check_passes_against_the_real_services(postgres_database, redis_url):
    result = run_check(lambda: create_app({**BASE_CONFIG, **PRODUCTION, "DATABASE_URL": postgres_database,
                                           "BROKER_URL": redis_url, "RATELIMIT_STORAGE_URI": redis_url}), "--strict")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("ready: database postgresql+psycopg://")


def test_flask_finds_the_check_even_when_the_app_cannot_be_built():
    assert "prod" in {entry.name for entry in importlib.metadata.entry_points(group="flask.commands")}
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLASK_")}
    env.update({"BROKER_URL": "redis://127.0.0.1:9/0", "SECRET_KEY": ""})
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "prod", "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert (done.stdout + done.stderr).strip().splitlines() == [
        f"refused: {production.first_line(ValueError(_secret_message()))}"]


# --- deploy/respawn.py ---------------------------------------------------------------------------------------------

SLEEPER = "import os, sys, time; print(os.getpid(), flush=True); time.sleep(120)"


def pids_printed(stream, count: int, timeout: float = 20.0) -> list[int]:
    pids, deadline = [], time.monotonic() + timeout
    while len(pids) < count:
        assert time.monotonic() < deadline, f"only {pids}"
        line = stream.readline()
        if line.strip().isdigit():
            pids.append(int(line))
    return pids


def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # a zombie of ours counts as gone
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_respawn_starts_a_killed_command_again_and_stops_it_once_when_told(log_format):
    """... and says so in one line, in the stack's format (JSON like every other line, or text)."""
    import json

    wrapper = subprocess.Popen([sys.executable, str(DEPLOY / "respawn.py"), sys.executable, "-c", SLEEPER],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "LOG_FORMAT": log_format})
    try:
        [first] = pids_printed(wrapper.stdout, 1)
        os.kill(first, signal.SIGKILL)
        [second] = pids_printed(wrapper.stdout, 1)
        assert second != first and wrapper.poll() is None
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=10) == 0
        assert gone(second)
        (said,) = wrapper.stderr.read().splitlines()
        if log_format == "json":
            line = json.loads(said)
            assert (line["logger"], line["level"], line["request_id"]) == ("banjie.respawn", "INFO", "-")
            said = line["message"]
        else:
            assert said.startswith("respawn: ")
        assert f"(pid {first}) ended (killed by signal 9)" in said and "starting it again in 1 s" in said
    finally:
        wrapper.kill()
        wrapper.wait()
        wrapper.stdout.close()
        wrapper.stderr.close()


@pytest.mark.slow
def test_the_command_does_not_outlive_a_wrapper_killed_with_9():
    wrapper = subprocess.Popen([sys.executable, str(DEPLOY / "respawn.py"), sys.executable, "-c", SLEEPER],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        [child] = pids_printed(wrapper.stdout, 1)
        os.kill(wrapper.pid, signal.SIGKILL)
        wrapper.wait(timeout=10)
        assert gone(child)
    finally:
        wrapper.stdout.close()


# --- gunicorn, the Procfile, the units, the environment -------------------------------------------------------------

def test_gunicorn_listens_and_scales_as_the_settings_say(monkeypatch):
    monkeypatch.setenv("HOST", "::1")
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("WEB_WORKERS", "3")
    monkeypatch.setenv("WEB_THREADS", "4")
    settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert settings["bind"] == ["[::1]:8123"] and settings["workers"] == 3
    assert (settings["threads"], settings["worker_class"]) == (4, "gthread")
    assert settings["wsgi_app"] == "app:create_app()" and callable(settings["child_exit"])
    for name in ("HOST", "PORT", "WEB_WORKERS", "WEB_THREADS"):
        monkeypatch.delenv(name)
    settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    defaults = {name: SETTINGS[name][0] for name in ("HOST", "PORT", "WEB_WORKERS", "WEB_THREADS")}
    assert settings["bind"] == [f"{defaults['HOST']}:{defaults['PORT']}"]
    assert (settings["workers"], settings["threads"]) == (defaults["WEB_WORKERS"], defaults["WEB_THREADS"])


def test_gunicorn_refuses_what_the_app_refuses_before_it_binds(monkeypatch):
    from app import RANGES

    settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert {name: RANGES[name][:2] for name in settings["RANGES"]} == settings["RANGES"]
    for name, value in (("PORT", "70724"), ("PORT", "0"), ("WEB_WORKERS", "0"), ("WEB_THREADS", "-1")):
        monkeypatch.setenv(name, value)
        with pytest.raises(SystemExit, match=f"^{name} must be a whole number from "):
            runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
        monkeypatch.delenv(name)


def test_gunicorns_master_imports_none_of_the_app():
    """What the master imports, the workers it forks after a reload keep: they must import the release's code."""
    done = subprocess.run([sys.executable, "-c", "import runpy, sys; runpy.run_path('deploy/gunicorn.conf.py');"
                           " print(sorted({'app', 'tickets', 'flask'} & set(sys.modules)))"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.slow  # a gunicorn master and its worker, reloaded
def test_gunicorns_own_lines_are_json_like_every_other_line_also_after_a_reload(tmp_path):
    """With LOG_FORMAT=json every line gunicorn writes is one JSON object with the app's keys: the master's own (starting,
    listening, workers booted, signals, shutting down; request_id '-') as well as the workers' and the access log's,
    and still after a reload (HUP), which makes gunicorn's handlers anew."""
    import json

    import requests

    from tests.helpers import PRIVACY_INDEX_KEY, PRIVACY_KEYS

    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WEB_WORKERS": "1", "WEB_THREADS": "1",
           "LOG_FORMAT": "json", "DATABASE_URL": f"sqlite:///{tmp_path / 'banjie.db'}", "SECRET_KEY": "gunicorn-log",
           "PRIVACY_KEYS": PRIVACY_KEYS, "PRIVACY_INDEX_KEY": PRIVACY_INDEX_KEY, "BROKER_URL": ""}
    out, err = open(tmp_path / "out.log", "wb"), open(tmp_path / "err.log", "wb")
    master = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", str(DEPLOY / "gunicorn.conf.py")],
                              cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True)

    def lines() -> list[str]:
        return [line for name in ("out.log", "err.log") for line in (tmp_path / name).read_text().splitlines()]

    def answers() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    def wait(condition, what: str) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline and master.poll() is None, f"{what}:\n" + "\n".join(lines())
            time.sleep(0.2)

    try:
        wait(answers, "gunicorn to answer")
        master.send_signal(signal.SIGHUP)
        wait(lambda: sum("Booting worker" in line for line in lines()) == 2, "a new worker after the reload")
        wait(answers, "gunicorn to answer after the reload")
    finally:
        master.terminate()
        master.wait(30)
        out.close()
        err.close()
    parsed = [json.loads(line) for line in lines()]  # every line: one JSON object
    assert all({"time", "level", "logger", "pid", "request_id", "message"} <= set(line) or
               line["logger"] == "gunicorn.access" for line in parsed), parsed
    own = [line["message"] for line in parsed if line["pid"] == master.pid]
    for said in ("Starting gunicorn", "Listening at", "Handling signal: hup", "Handling signal: term",
                 "Shutting down: Master"):
        assert any(message.startswith(said) for message in own), own
    assert {line["request_id"] for line in parsed if line["pid"] == master.pid} == {"-"}
    access = [line["status"] for line in parsed if line["logger"] == "gunicorn.access"]
    assert len(access) >= 2 and set(access) == {"200"}  # before and after the reload


def test_every_process_of_the_procfile_runs_under_respawn():
    entries = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert set(entries) == {"web", "worker", "scheduler"}
    assert all(command.split()[:2] == ["python", "deploy/respawn.py"] for command in entries.values())


UNITS = sorted(DEPLOY.glob("*.service"))


@pytest.mark.parametrize("unit", UNITS, ids=[unit.name for unit in UNITS])
def test_the_systemd_units_verify(unit, tmp_path):
    """With the checkout where the units expect /srv/banjie, `systemd-analyze verify` finds nothing wrong."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    text = unit.read_text().replace("/srv/banjie", str(ROOT))
    assert "Restart=always" in text or "Type=oneshot" in text
    name = unit.name.replace("@.", "@1.")
    (tmp_path / name).write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / name)], capture_output=True,
                          text=True, timeout=60)
    complaints = [line for line in (done.stdout + done.stderr).splitlines() if name in line]
    assert complaints == [] and done.returncode == 0, done.stdout + done.stderr


SECRETS = ("SECRET_KEY", "TWILIO_AUTH_TOKEN", "METRICS_TOKEN")


def test_the_environment_example_names_only_settings_and_holds_no_secret():
    assignments = [line.split("=", 1) for line in (DEPLOY / "banjie.env.example").read_text().splitlines()
                   if line and not line.startswith("#")]
    assert assignments and all(name in SETTINGS for name, _ in assignments)
    assert all(name not in SECRETS for name, _ in assignments)
    assert all(urlsplit(value).password is None for _, value in assignments)  # no password in a URL either
