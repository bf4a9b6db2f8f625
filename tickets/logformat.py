"""The JSON line every Banjie process writes (LOG_FORMAT=json): one object per line with time (UTC), level, logger,
pid, request_id, message, exc_info and extras; and which format a process logs in.

Kept apart from tickets/logs.py (which adds the request id and the redaction to every handler) because the processes
that build no app format their own lines with it too (`outside_the_app`): gunicorn's master (deploy/gunicorn.conf.py),
dramatiq's main process (worker.py) and deploy/respawn.py. They load this file by its path, under a name of their own,
so it must import nothing but the standard library and python-json-logger. Whatever gunicorn's master imports stays in
every worker it forks, and after a reload those must run the release's code.
"""
from __future__ import annotations

import logging
import os
import time

LOG_FORMATS = ("text", "json")
NO_REQUEST = "-"  # the request_id of a line no request caused


def outside_requests(record: logging.LogRecord) -> bool:
    """A filter for the lines of a process that serves no request itself (gunicorn's master): NO_REQUEST as their id."""
    if not hasattr(record, "request_id"):
        record.request_id = NO_REQUEST
    return True


def resolved(configured: str, broker_url: str) -> str:
    """LOG_FORMAT as set, or by default JSON in production (a broker: processes apart) and text without (make run)."""
    return configured or ("json" if broker_url else "text")


def utc_time(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    class BanjieJson(JsonFormatter):
        """One JSON object per line: time (UTC), level, logger, pid, request_id, message, exc_info, and extras."""

        def add_fields(self, log_data, record, message_dict):
            log_data["time"] = utc_time(record)
            super().add_fields(log_data, record, message_dict)

    return BanjieJson("%(levelname)s %(name)s %(process)d %(request_id)s %(message)s",
                      rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
                      reserved_attrs=[*RESERVED_ATTRS, "_banjie_redacted"], json_ensure_ascii=False)


def outside_the_app(handlers) -> bool:
    """For a process that builds no app (gunicorn's master, dramatiq's main process, deploy/respawn.py): these handlers
    write the JSON of every other line, with NO_REQUEST as the id, when the environment asks for JSON as the app would
    read it (LOG_FORMAT, BROKER_URL); whether it does."""
    if resolved(os.environ.get("LOG_FORMAT", ""), os.environ.get("BROKER_URL", "")) != "json":
        return False
    for handler in handlers:
        handler.setFormatter(json_formatter())
        handler.addFilter(outside_requests)
    return True
