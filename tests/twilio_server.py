"""A Twilio-compatible HTTP server for tests and benchmarks.

It speaks the Programmable Messaging REST API (2010-04-01) so the official ``twilio`` SDK
can talk to it over real HTTP::

    with TwilioTestServer(account_sid, auth_token) as server:
        client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=5))
        client.api.base_url = server.url
        client.messages.create(to="+8613800138000", from_="+15005550006", body="您好")
        assert server.count_for("+8613800138000") == 1

Inbound webhooks can be signed for Flask's test client with::

    client.post(path, data=params,
                headers={"X-Twilio-Signature": twilio_signature(full_url, params, token)})

Run standalone with ``python tests/twilio_server.py --port 8089``.
"""
from __future__ import annotations

import argparse
import heapq
import hmac
import itertools
import json
import math
import operator
import re
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email.utils import format_datetime
from typing import Callable, Iterable
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "test-auth-token"
MAX_BODY_LENGTH = 1600
ROUTE = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages(?:/(?P<sid>[^/]+))?\.json$")
PHONE_OR_CHANNEL = re.compile(r"^(?:[a-z]+:)?\+?[0-9]{5,15}$")
GSM_BASIC = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
             "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENDED = "^{}\\[~]|€\f"
FAULT_DEFAULTS = {429: (20429, "Too Many Requests"), 500: (20500, "Internal Server Error"),
                  503: (20503, "Service Unavailable")}


def twilio_signature(url: str, params: dict, auth_token: str) -> str:
    """The X-Twilio-Signature Twilio would send for a form POST of `params` to `url`."""
    return RequestValidator(auth_token).compute_signature(url, params)


def signed_post(client, url: str, params: dict, auth_token: str, **kwargs):
    """POST `params` form-encoded to `url` with a valid signature.

    `client` is a requests.Session or a Flask test client (give it the full URL the app sees,
    e.g. ``http://localhost/sms/inbound``).
    """
    headers = {**kwargs.pop("headers", {}), "X-Twilio-Signature": twilio_signature(url, params, auth_token)}
    return client.post(url, data=params, headers=headers, **kwargs)


def count_segments(body: str) -> int:
    """SMS segments as Twilio bills them: GSM-7 160/153 per segment, otherwise UCS-2 70/67."""
    if all(ch in GSM_BASIC or ch in GSM_EXTENDED for ch in body):
        units, single, multi = len(body) + sum(ch in GSM_EXTENDED for ch in body), 160, 153
    else:
        units, single, multi = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def max_events_in_window(timestamps: Iterable[float], window_seconds: float = 1.0) -> int:
    """Most events inside any half-open window [t, t + window_seconds)."""
    times, best, first = sorted(timestamps), 0, 0
    for last, stamp in enumerate(times):
        while stamp - times[first] >= window_seconds:
            first += 1
        best = max(best, last - first + 1)
    return best


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(timezone.utc))


def twilio_error(status: int, code: int, message: str, headers: dict | None = None) -> Response:
    """A Twilio REST error response (the legacy shape the SDK turns into TwilioRestException)."""
    payload = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
               "status": status}
    return Response(json.dumps(payload), status=status, headers=headers, mimetype="application/json")


def json_response(payload: dict, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


@dataclass(frozen=True)
class Fault:
    """What to do with one upcoming authenticated message POST."""
    status: int | None = None
    code: int | None = None
    message: str = ""
    retry_after: float | None = None
    delay_seconds: float = 0.0
    record_first: bool = True


class QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        pass


class TwilioTestServer:
    """In-process Twilio Messaging API. Use as a context manager or call start()/stop()."""

    def __init__(self, account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN,
                 host: str = "127.0.0.1", port: int = 0, *, callback_delay: float = 0.05,
                 clock: Callable[[], datetime] | None = None, quiet: bool = True):
        if not re.fullmatch(r"AC[0-9a-fA-F]{32}", account_sid):
            raise ValueError(f"not an account SID: {account_sid!r}")
        self.account_sid, self.auth_token, self.host, self.port = account_sid, auth_token, host, port
        self.callback_delay, self.callbacks_enabled, self.quiet = callback_delay, True, quiet
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server = self._serve_thread = self._callback_thread = self._callback_session = None
        self._sequence = itertools.count()
        self.reset()

    # Lifecycle ---------------------------------------------------------------------------
    def start(self) -> TwilioTestServer:
        if self._server is not None:
            return self
        self._stopping.clear()
        handler = QuietRequestHandler if self.quiet else None
        self._server = make_server(self.host, self.port, self._wsgi_app, threaded=True, request_handler=handler)
        self._serve_thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                              name="twilio-test-server", daemon=True)
        self._callback_session = requests.Session()
        self._callback_thread = threading.Thread(target=self._deliver_status_callbacks,
                                                 name="twilio-test-callbacks", daemon=True)
        self._serve_thread.start()
        self._callback_thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        self._serve_thread.join()
        self._callback_thread.join(timeout=10)
        self._callback_session.close()
        self._server = None

    def __enter__(self) -> TwilioTestServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self._server.server_port}"

    # Configuration and recordings ----------------------------------------------------------
    def reset(self) -> None:
        """Forget messages, requests, callbacks and pending faults; empty the number sets."""
        with self._lock:
            self.invalid_numbers, self.opted_out, self.undeliverable = set(), set(), set()
            self._messages, self._requests, self._callbacks, self._arrivals = [], [], [], []
            self._by_sid, self._sent_at, self._callback_urls = {}, {}, {}
            self._faults: deque[Fault] = deque()
            self._list_faults: deque[int] = deque()  # statuses for the next GETs of the message list
            self._pending: list[tuple] = []  # heap of (due, sequence, sid, status, error_code)

    def _snapshot(self, records: list[dict]) -> list[dict]:
        with self._lock:
            return [dict(record) for record in records]

    @property
    def messages(self) -> list[dict]:
        """Accepted message resources, in arrival order, with their current status."""
        return self._snapshot(self._messages)

    @property
    def requests(self) -> list[dict]:
        """Every POST: time (monotonic), at, path, form, status (None while still answering)."""
        return self._snapshot(self._requests)

    @property
    def callbacks(self) -> list[dict]:
        """Status callbacks attempted: url, params, status (None on connection error), error."""
        return self._snapshot(self._callbacks)

    @property
    def arrivals(self) -> list[float]:
        with self._lock:
            return list(self._arrivals)

    def count_for(self, to: str) -> int:
        with self._lock:
            return sum(message["to"] == to for message in self._messages)

    def duplicates(self) -> dict[tuple[str, str], int]:
        """(to, body) pairs accepted more than once, with their counts."""
        with self._lock:
            counts = Counter((message["to"], message["body"]) for message in self._messages)
        return {pair: count for pair, count in counts.items() if count > 1}

    def max_in_window(self, window_seconds: float = 1.0) -> int:
        return max_events_in_window(self.arrivals, window_seconds)

    def wait_for_callbacks(self, n: int, timeout: float = 5.0) -> list[dict]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._callbacks) >= n, timeout):
                raise TimeoutError(f"{len(self._callbacks)} of {n} status callbacks after {timeout}s")
        return self.callbacks

    # Fault injection (applies to authenticated message POSTs, in the order queued) ---------
    def fail_next(self, n: int = 1, status: int = 429, code: int | None = None,
                  retry_after: float | None = None, message: str | None = None) -> None:
        default_code, default_message = FAULT_DEFAULTS.get(status, (20000 + status, "Error"))
        fault = Fault(status=status, code=code or default_code, message=message or default_message,
                      retry_after=retry_after)
        with self._lock:
            self._faults.extend([fault] * n)

    def fail_list_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next n GETs of the message list (what a sender reads to see whether a text got through) with
        this error status."""
        with self._lock:
            self._list_faults.extend([status] * n)

    def delay_next(self, n: int = 1, seconds: float = 1.0, record_first: bool = True) -> None:
        """Answer the next n POSTs late; with record_first the message is accepted before the wait."""
        with self._lock:
            self._faults.extend([Fault(delay_seconds=seconds, record_first=record_first)] * n)

    def hang_next(self, n: int = 1, record_first: bool = True) -> None:
        """Accept (if record_first) but do not answer until the server stops."""
        self.delay_next(n, 24 * 3600, record_first)

    # HTTP ------------------------------------------------------------------------------------
    def _wsgi_app(self, environ, start_response):
        request = Request(environ)
        entry = None
        if request.method == "POST":
            entry = {"time": time.monotonic(), "at": self.clock(), "path": request.path,
                     "form": request.form.to_dict(), "status": None}
            with self._lock:
                self._requests.append(entry)
        response = self._route(request, entry)
        if entry is not None:
            with self._lock:
                entry["status"] = response.status_code
        return response(environ, start_response)

    def _route(self, request: Request, entry: dict | None) -> Response:
        match = ROUTE.match(request.path)
        if match is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        auth = request.authorization
        if not (auth and auth.type == "basic"
                and hmac.compare_digest((auth.username or "").encode(), self.account_sid.encode())
                and hmac.compare_digest((auth.password or "").encode(), self.auth_token.encode())):
            return twilio_error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        account, sid = match.group("account", "sid")
        if account != self.account_sid:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        if sid is not None and request.method == "GET":
            with self._lock:
                message = self._by_sid.get(sid)
                return json_response(dict(message)) if message else twilio_error(
                    404, 20404, f"The requested resource {request.path} was not found")
        if sid is None and request.method == "GET":
            with self._lock:
                status = self._list_faults.popleft() if self._list_faults else None
            if status is not None:
                default_code, default_message = FAULT_DEFAULTS.get(status, (20000 + status, "Error"))
                return twilio_error(status, default_code, default_message)
            return self._list_messages(request)
        if sid is None and request.method == "POST":
            return self._create_message(request, entry["time"])
        return twilio_error(405, 20004, "Method not allowed")

    def _create_message(self, request: Request, arrived: float) -> Response:
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault and fault.status:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
            return twilio_error(fault.status, fault.code, fault.message, headers)
        if fault and not fault.record_first and self._stopping.wait(fault.delay_seconds):
            return twilio_error(503, 20503, "Service Unavailable")
        response = self._accept(request.form.to_dict(), arrived)
        if fault and fault.record_first:
            self._stopping.wait(fault.delay_seconds)
        return response

    def _accept(self, form: dict, arrived: float) -> Response:
        to, sender, body = form.get("To", ""), form.get("From"), form.get("Body", "")
        service_sid = form.get("MessagingServiceSid")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not (sender or service_sid):
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
            return twilio_error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_LENGTH:
            return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        with self._lock:
            invalid, opted_out = to in self.invalid_numbers, to in self.opted_out
        if invalid or not PHONE_OR_CHANNEL.match(to):
            return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if opted_out:
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        sid, now = "SM" + uuid.uuid4().hex, self.clock()
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        message = {
            "account_sid": self.account_sid, "api_version": API_VERSION, "body": body,
            "date_created": rfc2822(now), "date_sent": rfc2822(now), "date_updated": rfc2822(now),
            "direction": "outbound-api", "error_code": None, "error_message": None, "from": sender,
            "messaging_service_sid": service_sid, "num_media": "0", "num_segments": str(count_segments(body)),
            "price": None, "price_unit": "USD", "sid": sid, "status": "queued", "to": to, "uri": uri + ".json",
            "subresource_uris": {"media": uri + "/Media.json", "feedback": uri + "/Feedback.json"},
        }
        with self._changed:
            self._messages.append(message)
            self._by_sid[sid] = message
            self._sent_at[sid] = now
            self._arrivals.append(arrived)
            if form.get("StatusCallback"):
                self._callback_urls[sid] = form["StatusCallback"]
            final, error = ("undelivered", 30003) if to in self.undeliverable else ("delivered", None)
            due = time.monotonic() + self.callback_delay
            heapq.heappush(self._pending, (due, next(self._sequence), sid, "sent", None))
            heapq.heappush(self._pending, (due, next(self._sequence), sid, final, error))
            self._changed.notify_all()
            answer = json_response(dict(message), status=201)
        if not self.quiet:
            print(f"SMS {sid} to {to}: {body}", flush=True)
        return answer

    def _list_messages(self, request: Request) -> Response:
        args = request.args
        checks = []
        for key, compare in (("DateSent", operator.eq), ("DateSent>", operator.ge), ("DateSent<", operator.le)):
            if args.get(key):
                try:
                    checks.append(date_check(args[key], compare))
                except ValueError:
                    return twilio_error(400, 20001, f"Invalid value for {key}: {args[key]}")
        try:
            page, page_size = int(args.get("Page", 0)), min(max(int(args.get("PageSize", 50)), 1), 1000)
        except ValueError:
            return twilio_error(400, 20001, "Invalid paging parameters")
        with self._lock:
            found = [dict(message) for message in reversed(self._messages)
                     if args.get("To") in (None, message["to"]) and args.get("From") in (None, message["from"])
                     and all(check(self._sent_at[message["sid"]]) for check in checks)]
        start = page * page_size
        filters = {key: args[key] for key in ("To", "From", "DateSent", "DateSent<", "DateSent>") if key in args}
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json?"

        def page_uri(number: int) -> str:
            return base + urlencode({**filters, "PageSize": page_size, "Page": number})

        items = found[start:start + page_size]
        return json_response({
            "messages": items, "page": page, "page_size": page_size, "start": start,
            "end": start + max(len(items) - 1, 0), "uri": page_uri(page), "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if start + page_size < len(found) else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        })

    # Status callbacks --------------------------------------------------------------------------
    def _deliver_status_callbacks(self) -> None:
        while True:
            with self._changed:
                while not self._stopping.is_set() and (not self._pending or self._pending[0][0] > time.monotonic()):
                    self._changed.wait(self._pending[0][0] - time.monotonic() if self._pending else None)
                if self._stopping.is_set():
                    return
                _, _, sid, status, error_code = heapq.heappop(self._pending)
                message = self._by_sid.get(sid)
                if message is None:
                    continue
                message.update(status=status, date_updated=rfc2822(self.clock()), error_code=error_code,
                               error_message="Unreachable destination handset" if error_code else None)
                url = self._callback_urls.get(sid) if self.callbacks_enabled else None
                params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": self.account_sid, "From": message["from"],
                          "To": message["to"], "MessagingServiceSid": message["messaging_service_sid"],
                          "MessageStatus": status, "SmsStatus": status, "ApiVersion": API_VERSION,
                          "ErrorCode": str(error_code) if error_code else None}
            if url is not None:
                self._post_callback(url, {key: value for key, value in params.items() if value is not None})

    def _post_callback(self, url: str, params: dict) -> None:
        headers = {"X-Twilio-Signature": twilio_signature(url, params, self.auth_token),
                   "User-Agent": "TwilioProxy/1.1", "I-Twilio-Idempotency-Token": str(uuid.uuid4())}
        outcome = {"url": url, "params": params, "status": None, "error": None}
        try:
            outcome["status"] = self._callback_session.post(url, data=params, headers=headers, timeout=5).status_code
        except requests.RequestException as exc:
            outcome["error"] = repr(exc)
        with self._changed:
            self._callbacks.append(outcome)
            self._changed.notify_all()


def date_check(value: str, compare) -> Callable[[datetime], bool]:
    """A DateSent filter: YYYY-MM-DD compares dates (UTC), a full timestamp compares instants."""
    if "T" not in value:
        bound = date.fromisoformat(value)
        return lambda sent: compare(sent.astimezone(timezone.utc).date(), bound)
    moment = datetime.fromisoformat(value)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return lambda sent: compare(sent, moment)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a Twilio-compatible Messaging API until Ctrl-C.")
    for flag, default in [("--host", "127.0.0.1"), ("--port", 8089), ("--account-sid", DEFAULT_ACCOUNT_SID),
                          ("--auth-token", DEFAULT_AUTH_TOKEN), ("--callback-delay", 0.5)]:
        parser.add_argument(flag, default=default, type=type(default))
    args = parser.parse_args(argv)
    with TwilioTestServer(args.account_sid, args.auth_token, args.host, args.port,
                          callback_delay=args.callback_delay, quiet=False) as server:
        print(f"Twilio test server at {server.url} (account {args.account_sid})", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
