"""The SMS send rate: never more than N messages in any one-second window, across every worker.

A sliding log of grant times: a send may start when fewer than N sends started in the last window.
With Redis (production) the log is a sorted set shared by all workers, kept by one Lua script on the
server's clock; embedded mode, with one process, keeps it in memory. While Redis is away a worker keeps
the rate in its own memory (so the rate holds per process, not across them) rather than failing every
send, says so once in the log, tries Redis again every RETRY_SECONDS and says when it is back.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque

log = logging.getLogger("banjie.sms")
RETRY_SECONDS = 30.0

# More than a second, so that the jitter between a permit and the request's arrival (thread and process
# scheduling on a busy host, the network) cannot squeeze N+1 arrivals into one second: tests/bench/sms.py
# measured up to 30 ms on a loaded 2-core host, so 1.03 let 51 of 50/s through; 1.1 keeps a margin.
WINDOW_SECONDS = 1.1

_ACQUIRE = """
local key, limit, window_us = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window_us)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, now .. '-' .. ARGV[3])
  redis.call('PEXPIRE', key, math.ceil(window_us / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return math.max(1, oldest[2] + window_us - now)
"""


class LocalRateLimiter:
    def __init__(self, per_second: int):
        self.per_second = per_second
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    def _try(self) -> float:
        now = time.monotonic()
        with self._lock:
            while self._starts and self._starts[0] <= now - WINDOW_SECONDS:
                self._starts.popleft()
            if len(self._starts) < self.per_second:
                self._starts.append(now)
                return 0.0
            return self._starts[0] + WINDOW_SECONDS - now

    def acquire(self) -> None:
        while (wait := self._try()) > 0:
            time.sleep(wait)


class RedisRateLimiter:
    def __init__(self, per_second: int, url: str, key: str = "banjie:sms:rate", retry_seconds: float = RETRY_SECONDS):
        import redis

        self.per_second = per_second
        self.key = key
        # A silent Redis must not hold a send for minutes: give up within a second and count locally.
        self.client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        self.script = self.client.register_script(_ACQUIRE)
        self.errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self.local = LocalRateLimiter(per_second)
        self.retry_seconds = retry_seconds
        self.down_since: float | None = None  # monotonic time of the last failed attempt, while Redis is away
        self._counter = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        down_since = self.down_since
        if down_since is not None and time.monotonic() - down_since < self.retry_seconds:
            return self.local.acquire()
        try:
            self._acquire_shared()
        except self.errors:
            with self._lock:
                first = self.down_since is None
                self.down_since = time.monotonic()
            if first:
                log.warning("SMS send rate: Redis unreachable; each worker keeps the rate in its own memory "
                            "until it is back (retried every %d s)", self.retry_seconds)
            return self.local.acquire()
        if down_since is not None:
            with self._lock:
                back, self.down_since = self.down_since is not None, None
            if back:
                log.warning("SMS send rate: Redis is back; the rate is shared by every worker again")

    def _acquire_shared(self) -> None:
        while True:
            with self._lock:
                self._counter += 1
                token = f"{id(self)}-{threading.get_ident()}-{self._counter}"
            wait_us = int(self.script(keys=[self.key], args=[self.per_second, int(WINDOW_SECONDS * 1e6), token]))
            if wait_us == 0:
                return
            time.sleep(wait_us / 1e6)


class Unlimited:
    def acquire(self) -> None:
        return None


def limiter_for(config):
    per_second = config["SMS_RATE_PER_SECOND"]
    if per_second <= 0:
        return Unlimited()
    url = config["SMS_RATE_REDIS_URL"] or (config["BROKER_URL"] if config["BROKER_URL"].startswith("redis") else "")
    return RedisRateLimiter(per_second, url) if url else LocalRateLimiter(per_second)
