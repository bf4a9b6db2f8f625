"""The SMS send rate: never more than N messages in any one-second window, across every worker.

A sliding log of grant times: a send may start when fewer than N sends started in the last window.
With Redis (production) the log is a sorted set shared by all workers, kept by one Lua script on the
server's clock; embedded mode, with one process, keeps it in memory.
"""
from __future__ import annotations

import threading
import time
from collections import deque

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
    def __init__(self, per_second: int, url: str, key: str = "banjie:sms:rate"):
        import redis

        self.per_second = per_second
        self.key = key
        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(_ACQUIRE)
        self._counter = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
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
