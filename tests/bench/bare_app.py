"""The bare ceiling of the filing benchmark: the least a Flask + psycopg filing endpoint can do on this stack.

tests/bench/run.py serves it with the same gunicorn configuration, against the same PostgreSQL database,
and drives it with the same wrk script and clients as the product's `POST /api/v1/tickets`. Each POST
parses the JSON body, writes one row of the width of a ticket (`bench_bare_ticket`, which run.py creates)
and commits: one INSERT and one COMMIT, nothing else. What the product files per second divided by what
this files is the share of the stack's capacity the product's own work leaves.

Not part of the product: no validation, no deadline, no history, no SMS, no rate limit, no broker.
"""
from __future__ import annotations

import os
import secrets
import threading

import psycopg
from flask import Flask, jsonify, request

TABLE_SQL = """
CREATE SEQUENCE IF NOT EXISTS bench_bare_no;
CREATE TABLE IF NOT EXISTS bench_bare_ticket (
    id bigserial PRIMARY KEY,
    tracking_no varchar(24) NOT NULL UNIQUE DEFAULT ('BARE-' || lpad(nextval('bench_bare_no')::text, 8, '0')),
    query_code_hash varchar(100) NOT NULL,
    citizen_name varchar(50) NOT NULL,
    phone varchar(20) NOT NULL,
    problem_type varchar(20) NOT NULL,
    description text NOT NULL,
    channel varchar(16) NOT NULL,
    status varchar(16) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_bench_bare_ticket_phone ON bench_bare_ticket (phone);
"""

INSERT_SQL = """
INSERT INTO bench_bare_ticket (query_code_hash, citizen_name, phone, problem_type, description, channel, status)
VALUES (%s, %s, %s, %s, %s, 'api', 'submitted')
RETURNING tracking_no, status, created_at
"""

_local = threading.local()  # one connection per gunicorn worker thread, opened after the fork


def _connection() -> psycopg.Connection:
    connection = getattr(_local, "connection", None)
    if connection is None or connection.closed:
        connection = _local.connection = psycopg.connect(os.environ["BARE_DATABASE_URL"])
    return connection


def create_app() -> Flask:
    app = Flask(__name__)
    app.json.ensure_ascii = False

    @app.post("/api/v1/tickets")
    def file_ticket():
        """One INSERT and a commit."""
        data = request.get_json(force=True)
        connection = _connection()
        try:
            tracking_no, status, created_at = connection.execute(INSERT_SQL, (
                secrets.token_hex(44), data["name"], data["phone"], data["problem_type"], data["description"])).fetchone()
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        return jsonify({"tracking_no": tracking_no, "status": status, "created_at": created_at.isoformat()}), 201

    @app.get("/api/v1/problem-types")
    def ready():
        """run.py's readiness probe."""
        return jsonify([])

    return app
