# Banjie: `make run` serves the embedded default, `make test` runs the suite. Both set up .venv themselves:
# `make run` installs what running needs, `make test` adds the test tools (pyproject's `test` extra).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
FLASK := $(BIN)/flask --app app
# pytest-xdist workers for `make test`: the tests wait on servers, worker processes and the browser much of the
# time, so more workers than cores pay (on two cores: 8.0 min with 4, 8.3 with 3, 9.5 serial, all on a busy shared
# host; 3.5 min with 4 on a quiet one).
# Each worker has its own databases (tests/conftest.py). `--dist loadgroup` hands out one test at a time, the longest
# first, and a module's tests that share a module-scoped fixture (a browser, a served office) as one group
# (tests/conftest.py `LONGEST_FIRST`): with the default `load`, batches of consecutive tests queued behind the two
# five-minute route walks left the other workers idle at the end (replaying the 2026-12-02 timing run's durations
# through both schedulers: 1,400 to 1,530 s with `load`, 1,140 to 1,290 s with this).
TEST_WORKERS ?= 4
TEST_DIST ?= loadgroup
FAST_MARKERS := not postgres and not redis and not browser and not slow
CATALOGS := $(wildcard translations/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGS:.po=.mo)

.PHONY: run prod test test-fast bench bench-photo bench-sms bench-escalation bench-reports bench-offices bench-attachments bench-clerk bench-duplicates bench-clusters bench-webhooks bench-observability bench-anonymise messages translations clean help

help:
	@echo "make run    - serve Banjie on http://$${HOST:-127.0.0.1}:$${PORT:-5000} (SQLite, in-process worker, SMS outbox, demo data)"
	@echo "make prod   - the production stack: gunicorn, dramatiq workers, the scheduler (needs DATABASE_URL, BROKER_URL, SECRET_KEY)"
	@echo "make test   - run the test suite in parallel (PostgreSQL, Redis and Chromium tests run when those are reachable)"
	@echo "make test-fast - the SQLite-only lane: no PostgreSQL, Redis, browser or slow tests, fewer hypothesis examples"
	@echo "make bench  - filing benchmark with the bare Flask + psycopg ceiling beside it (needs PostgreSQL, Redis)"
	@echo "make bench-observability - the cost of metrics and JSON logs on filing: off and on alternated (needs PostgreSQL, Redis)"
	@echo "make bench-photo - filing with one 3 MB 12-megapixel photo: tickets/s, p99 and each worker's peak memory (needs PostgreSQL, Redis)"
	@echo "make bench-sms - send 10,000 SMS through the Twilio test server with dramatiq workers (needs PostgreSQL, Redis)"
	@echo "make bench-escalation - time escalation sweeps over 1,000,000 open cases (needs PostgreSQL)"
	@echo "make bench-reports - time the city's and a county's monthly report (100,000 cases of 2,000,000, 48 offices; needs PostgreSQL)"
	@echo "make bench-clerk - clicks, key presses and time for a clerk to take ten new cases to 办理中 (Chromium)"
	@echo "make bench-attachments - time and memory of checking one upload: 12 and 48 megapixel photos, HEIC, PNG, PDF"
	@echo "make bench-clusters - time the 一类事 list (city, county, admin) and the report's 高频诉求 among 2,000,000 cases (needs PostgreSQL)"
	@echo "make bench-duplicates - time possible-duplicate suggestions and the filing's cluster read among 2,000,000 cases (needs PostgreSQL)"
	@echo "make bench-offices - time a county's and the city's queue pages and staff list on 48 offices, 2,000,000 cases (needs PostgreSQL, Redis)"
	@echo "make bench-webhooks - deliver 10,000 webhook events to a local receiver with dramatiq workers: deliveries/s, latency, no duplicates (needs PostgreSQL, Redis)"
	@echo "make bench-anonymise - anonymise 1,000,000 closed cases: dry run, a run interrupted at half and resumed; time and peak memory (needs PostgreSQL)"
	@echo "make translations - compile the message catalogs (make run and make test do it themselves)"
	@echo "make messages - extract new user-facing text into the catalogs (then translate the new entries)"
	@echo "make clean  - remove .venv, the embedded database and the compiled catalogs"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

translations/%/LC_MESSAGES/messages.mo: translations/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel -q compile -i $< -o $@

translations: $(COMPILED)

run: $(STAMP) translations
	$(FLASK) db upgrade
	$(FLASK) seed-demo --if-empty
	$(FLASK) serve

# The production stack of the Procfile (gunicorn, dramatiq workers, the scheduler), each process started again when
# it dies (deploy/respawn.py). `flask prod check` refuses first, in one line, without PostgreSQL, a broker or SECRET_KEY;
# the schema is migrated once, before any process starts; the host's metrics directory starts empty.
prod: export PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/instance/prometheus
prod: $(STAMP) translations
	mkdir -p "$$PROMETHEUS_MULTIPROC_DIR"
	$(FLASK) prod check
	$(FLASK) db upgrade
	find "$$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/honcho start

test: $(TEST_STAMP) translations
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist $(TEST_DIST) $(PYTEST_ARGS)

test-fast: $(TEST_STAMP) translations
	$(BIN)/python -m pytest -n 2 -m "$(FAST_MARKERS)" --hypothesis-profile=fast $(PYTEST_ARGS)

bench: $(TEST_STAMP) translations
	$(BIN)/python tests/bench/run.py

# Filing with one photo (issue 15): 16 clients, gunicorn -w 4 -k sync; BENCH_ARGS e.g. "--requests 2000 --duration 15".
bench-photo: $(TEST_STAMP) translations
	$(BIN)/python tests/bench/run.py --photo-only --configs sync:4 $(BENCH_ARGS)

# Filing with metrics and JSON logs off and on, alternated (issue 18); BENCH_ARGS e.g. "--rounds 3 --requests 3000".
bench-observability: $(TEST_STAMP) translations
	$(BIN)/python tests/bench/observability.py $(BENCH_ARGS)

bench-sms: $(TEST_STAMP) translations
	$(BIN)/python tests/bench/sms.py $(BENCH_SMS_ARGS)
bench-escalation: $(TEST_STAMP) translations
	$(BIN)/python tests/bench/escalation.py
bench-reports: $(TEST_STAMP) translations
	$(BIN)/python tests/bench/reports.py --reuse $(BENCH_ARGS)
bench-offices: $(TEST_STAMP) translations
	$(BIN)/python tests/bench/offices.py $(BENCH_ARGS)
bench-clerk: $(TEST_STAMP) translations
	$(BIN)/python tests/bench/clerk.py $(BENCH_ARGS)
# Issue 17: builds bench_duplicates once (reused while it holds 2,000,000 cases); BENCH_ARGS e.g. "--filing".
bench-duplicates: $(TEST_STAMP) translations
	$(BIN)/python tests/bench/duplicates.py --reuse $(BENCH_ARGS)
bench-attachments: $(TEST_STAMP)
	$(BIN)/python tests/bench/attachments.py $(BENCH_ARGS)
bench-clusters: $(TEST_STAMP) translations
	$(BIN)/python tests/bench/clusters.py --reuse $(BENCH_ARGS)
# Outbound webhooks: a backlog of 10,000 events drained, then 10,000 at a steady rate; BENCH_ARGS e.g. "--rate 200".
bench-webhooks: $(TEST_STAMP) translations
	$(BIN)/python tests/bench/webhooks.py $(BENCH_ARGS)
# Retention: its own database banjie_bench_anonymise, rebuilt; BENCH_ARGS e.g. "--cases 100000" on a small machine.
bench-anonymise: $(TEST_STAMP) translations
	$(BIN)/python tests/bench/anonymise.py $(BENCH_ARGS)

# Developers: after adding or changing user-facing text, refresh the catalogs and translate the new entries.
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
		--project banjie --version 0.1 -o translations/messages.pot $(wildcard tickets escalation notify reports admin) app.py templates
	$(BIN)/pybabel update -i translations/messages.pot -d translations --no-fuzzy-matching

clean:
	rm -rf $(VENV) instance/banjie.db* $(COMPILED)
