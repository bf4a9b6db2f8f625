"""A webhook receiver for tests and the benchmark: a threaded HTTP server on a free local port that records every
request, checks its signature as the README tells receivers to (`verify`, copied from there), and answers what the
test asks for (a status per request, a delay, a request held until the test lets it go).

    with WebhookReceiver(secret) as receiver:
        ... subscribe receiver.url ...
        receiver.wait_for(3)
        assert receiver.duplicates() == {}
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# --- the README's verification snippet (Webhooks → Verifying a request), word for word ---------------------------

def verify(secret: str, headers, body: bytes, tolerance: int = 300) -> bool:
    """Whether a request really comes from Banjie, and is recent (a replayed old request fails)."""
    timestamp = headers.get("X-Banjie-Timestamp", "")
    signature = headers.get("X-Banjie-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False
    signed = timestamp.encode() + b"." + body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


# ------------------------------------------------------------------------------------------------------------------

@dataclass
class Received:
    headers: dict
    body: bytes
    arrived: float   # time.time()
    verified: bool
    status: int | None = None  # what the receiver answered (None: it never answered, e.g. the sender went away)

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def delivery(self) -> str:
        return self.headers.get("X-Banjie-Delivery", "")


class WebhookReceiver:
    """Records requests; answers `statuses.pop(0)` while there are any, else `default_status`."""

    def __init__(self, secret: str = "", *, default_status: int = 200, port: int = 0, record_bodies: bool = True):
        self.secret = secret
        self.default_status = default_status
        self.statuses: list[int] = []
        self.delay = 0.0           # seconds before answering every request
        self.content_type = "application/json"  # of every answer (a charset the sender cannot read, for one)
        self.hold_next = 0         # the next n requests are recorded, then held until `release` is set
        self.release = threading.Event()
        self.record_bodies = record_bodies
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would
            # the answer's headers and body are two writes: without this, Nagle's algorithm holds the body back until
            # the sender's delayed acknowledgement (40 ms a request on Linux), which no real server does
            disable_nagle_algorithm = True

            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                record = Received(dict(self.headers), body if receiver.record_bodies else b"", time.time(),
                                  verify(receiver.secret, self.headers, body) if receiver.secret else False)
                with receiver._lock:
                    held = receiver.hold_next > 0
                    receiver.hold_next -= held
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
                    receiver.received.append(record)
                    receiver._arrived.notify_all()
                if held:
                    receiver.release.wait(60)
                if receiver.delay:
                    time.sleep(receiver.delay)
                answer = json.dumps({"ok": 200 <= status < 300, "status": status}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", receiver.content_type)
                    self.send_header("Content-Length", str(len(answer)))
                    if 300 <= status < 400:
                        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.end_headers()
                    self.wfile.write(answer)
                    record.status = status
                except OSError:  # the sender went away (killed, or timed out)
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/banjie"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # reading what arrived ----------------------------------------------------------------------------------------
    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out: {len(self.received)} of {count} requests arrived")
                self._arrived.wait(left)
            return list(self.received)

    def counts(self) -> Counter:
        """How many requests each delivery id got."""
        with self._lock:
            return Counter(r.delivery for r in self.received)

    def duplicates(self) -> dict:
        return {key: n for key, n in self.counts().items() if n > 1}

    def of_type(self, event_type: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.headers.get("X-Banjie-Event") == event_type]
