import pytest


def test_file_and_look_up(world):
    filed = world.file()
    response = world.client.get(f"/api/v1/tickets/{filed['tracking_no']}?code={filed['query_code']}")
    assert response.status_code == 200
    assert response.get_json()["status"] == "submitted"


@pytest.mark.slow  # a real server process
def test_flask_serve_answers_on_host_and_port(tmp_path):
    """`make run` ends in `flask serve`: it must really listen, in embedded mode, with its in-process worker."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import requests

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    flask = Path(sys.executable).with_name("flask")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}", "SECRET_KEY": "serve-test",
           "HOST": "127.0.0.1", "PORT": str(port), "BROKER_URL": ""}
    subprocess.run([flask, "--app", "app", "db", "upgrade"], cwd=root, env=env, check=True, capture_output=True)
    server = subprocess.Popen([flask, "--app", "app", "serve"], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except requests.ConnectionError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "flask serve did not start listening"
                time.sleep(0.2)
        assert response.status_code == 200 and "反映" in response.text
        types = requests.get(f"http://127.0.0.1:{port}/api/v1/problem-types", timeout=2).json()
        assert {t["code"] for t in types} == {"cannot_handle", "too_slow", "too_hard", "other"}
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()


def test_flask_serve_stopped_with_a_job_running_ends_in_seconds_not_dramatiqs_ten_minutes(app, monkeypatch):
    """Ctrl-C on `make run` while the in-process worker is on a job that does not end (a provider that never
    answers): `flask serve` waits `job_stop_seconds` for it, then ends; what the job had not done waits in the
    outbox. Dramatiq's own default would hold the terminal for ten minutes."""
    import threading
    import time

    import dramatiq

    import app as app_module
    from tickets.broker import broker

    app.config.update(TWILIO_TIMEOUT_SECONDS=0.5, WEBHOOK_TIMEOUT_SECONDS=0.5)
    assert app_module.job_stop_seconds(app.config) == 6
    started, release = threading.Event(), threading.Event()

    @dramatiq.actor(queue_name="serve-stop-test", broker=broker(app))
    def stuck():
        started.set()
        release.wait(120)

    class Server:  # what Werkzeug's server does on Ctrl-C: serve_forever returns (it swallows KeyboardInterrupt)
        def serve_forever(self):
            stuck.send()
            assert started.wait(30), "the in-process worker never took the job"

    monkeypatch.setattr(app_module, "make_server", lambda *args, **kwargs: Server())
    began = time.monotonic()
    try:
        result = app.test_cli_runner().invoke(args=["serve"])
        took = time.monotonic() - began
    finally:
        release.set()
    assert result.exit_code == 0, result.output
    assert took < 30, f"flask serve took {took:.0f} s to stop"


def test_python_worker_py_gives_dramatiq_the_same_bound_on_a_stop(monkeypatch):
    """Production's worker processes (`python worker.py`, which `make prod` and the systemd units run) stop within the
    same bound as `flask serve`'s in-process worker, inside the units' TimeoutStopSec (60 s)."""
    import worker
    from app import job_stop_seconds

    monkeypatch.setenv("TWILIO_TIMEOUT_SECONDS", "20")
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "3")
    command = worker.dramatiq_command()
    bound = command[command.index("--worker-shutdown-timeout") + 1]
    assert bound == "25000" == str(int(job_stop_seconds({"TWILIO_TIMEOUT_SECONDS": 20,
                                                         "WEBHOOK_TIMEOUT_SECONDS": 3}) * 1000))
    assert command[-1] == "worker"
    monkeypatch.delenv("TWILIO_TIMEOUT_SECONDS")
    monkeypatch.delenv("WEBHOOK_TIMEOUT_SECONDS")
    defaults = worker.dramatiq_command()
    assert int(defaults[defaults.index("--worker-shutdown-timeout") + 1]) == 25_000 < 60_000
