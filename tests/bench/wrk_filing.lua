-- wrk script for tests/bench/run.py, which passes the arguments; by hand, e.g.
--   wrk -t1 -c16 -d60s -s tests/bench/wrk_filing.lua http://127.0.0.1:PORT -- post 6000 138,139 keep-alive 15
--
-- Script arguments (after "--"):
--   1. mode: "post" files tickets (POST /api/v1/tickets), "get" reads GET /api/v1/problem-types
--   2. requests: at most that many are sent (delay() holds each connection back once they are out)
--   3. comma-separated mobile prefixes (run.py checks each with the app's own phone parser)
--   4. "close" to send Connection: close (a new connection per request), else keep-alive
--   5. seconds: no request is started after that long
-- When either bound is reached and every response is in, the thread stops and sends wrk SIGINT, which
-- ends the run there (wrk alone always runs for the full -d, which run.py sets longer, as a safety
-- net). So no request is left in flight and the tickets filed match the 201s exactly. Meant for -t 1:
-- one Lua state then sees every connection.
-- done() prints one line "BENCH_JSON {...}" with status counts, the tracking numbers received and the
-- measured span (first request to last response), which run.py parses.
--
-- Latency percentiles are wrk's, which include its coordinated-omission correction (stats_correct):
-- responses slower than twice the mean interval add synthetic samples, so the tail reads somewhat
-- higher than a plain closed-loop client would report.

local ffi = require("ffi")
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
  int kill(int pid, int sig);
  int getpid(void);
]]
local CLOCK_MONOTONIC, SIGINT = 1, 2
local function now_us()
  local ts = ffi.new("bench_timespec")
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

local mode, limit, prefixes, deadline_us
local received = 0
local issued = 0
local HOLD_MS = 3600 * 1000
statuses = {}   -- globals: read back with thread:get() in done()
tracking = {}
started_us = 0
stopped_us = 0
local get_request

local names = {"张三", "李四", "王五", "赵六", "陈晓明", "刘芳", "周杰", "吴敏"}
local problems = {"too_slow", "cannot_handle", "too_hard", "other"}
local descriptions = {
  "营业执照变更办了一个月还没有结果，窗口说系统有问题。",
  "社保转移材料交了三次，每次都说缺一样东西。",
  "不动产登记预约不上，网上一直显示没有号。",
}

function init(args)
  mode = args[1] or "post"
  limit = tonumber(args[2] or "0") or 0
  prefixes = {}
  for p in string.gmatch(args[3] or "138", "[^,]+") do table.insert(prefixes, p) end
  math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
  wrk.headers["Content-Type"] = "application/json"
  if args[4] == "close" then wrk.headers["Connection"] = "close" end
  get_request = wrk.format("GET", "/api/v1/problem-types", {}, nil)
  started_us = now_us()
  deadline_us = started_us + (tonumber(args[5] or "0") or 0) * 1e6
end

local function sending_over()
  return (limit > 0 and issued >= limit) or (deadline_us > started_us and now_us() >= deadline_us)
end

local function phone()
  local n = prefixes[math.random(#prefixes)] .. string.format("%08d", math.random(0, 99999999))
  return n:sub(1, 3) .. " " .. n:sub(4, 7) .. " " .. n:sub(8, 11)
end

-- wrk calls delay() before every request it sends on a connection (the first one included), so it
-- is where sending is counted and stopped; request() is also called once by wrk to check the script.
function delay()
  if sending_over() then
    return HOLD_MS
  end
  issued = issued + 1
  return 0
end

function request()
  if mode == "get" then
    return get_request
  end
  local body = string.format(
    '{"name": "%s", "phone": "%s", "problem_type": "%s", "description": "%s"}',
    names[math.random(#names)], phone(), problems[math.random(#problems)],
    descriptions[math.random(#descriptions)])
  return wrk.format("POST", "/api/v1/tickets", nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if mode == "post" and status == 201 then
    local no = string.match(body, '"tracking_no"%s*:%s*"([^"]+)"')
    if no then tracking[#tracking + 1] = no end
  end
  received = received + 1
  if received == issued and sending_over() then
    stopped_us = now_us()
    wrk.thread:stop()
    ffi.C.kill(ffi.C.getpid(), SIGINT)  -- wakes wrk's main thread from sleep(duration); it then reports
  end
end

function done(summary, latency, requests)
  local status_parts = {}
  local counts = {}
  local numbers = {}
  local first, last, all_stopped = nil, 0, true
  for _, thread in ipairs(threads) do
    local s, e = thread:get("started_us"), thread:get("stopped_us")
    if not first or s < first then first = s end
    if e == 0 then all_stopped = false elseif e > last then last = e end
    local st = thread:get("statuses") or {}
    for code, n in pairs(st) do counts[code] = (counts[code] or 0) + n end
    local tr = thread:get("tracking") or {}
    for _, no in ipairs(tr) do numbers[#numbers + 1] = '"' .. no .. '"' end
  end
  for code, n in pairs(counts) do status_parts[#status_parts + 1] = '"' .. code .. '": ' .. n end
  local e = summary.errors
  local span = all_stopped and (last - first) or summary.duration
  local out = string.format(
    '{"duration_us": %d, "span_us": %d, "stopped_by_count": %s, "requests": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d}, "latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}, ' ..
    '"statuses": {%s}, "tracking_nos": [%s]}',
    summary.duration, span, tostring(all_stopped), summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    table.concat(status_parts, ", "), table.concat(numbers, ","))
  io.write("BENCH_JSON " .. out .. "\n")
end
