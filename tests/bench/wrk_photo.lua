-- wrk script for the photo phase of tests/bench/run.py (`--photo --photo-client wrk`): files tickets with one
-- photo as multipart/form-data. It loads wrk_filing.lua (same folder) for the counting, the stop at the
-- request or time bound and the BENCH_JSON line, and replaces only the request. run.py passes the
-- arguments; by hand, e.g.
--   wrk -t1 -c16 -d60s -s tests/bench/wrk_photo.lua http://127.0.0.1:PORT -- post 200 138,139 keep-alive 15 \
--       /tmp/photo-body.bin 512 13 'multipart/form-data; boundary=...'
--
-- Script arguments (after "--"): the five of wrk_filing.lua (mode "post"), then
--   6. the path of the whole multipart body, built once by run.py, with a placeholder phone number in it
--   7. the placeholder's 1-based offset in that file
--   8. the placeholder's length (a phone number of random_phone()'s shape, "138 1234 5678", has the same)
--   9. the Content-Type header, with the body's boundary
-- Each request is the body with a different mainland mobile number in place of the placeholder: the
-- request line, the headers and the text before the number are built once (`front`), so a request costs
-- one concatenation of the ~3.4 MB rest; wrk then copies it into the connection's buffer.

local source = debug.getinfo(1, "S").source
local folder = source:match("^@(.*/)") or "./"
dofile(folder .. "wrk_filing.lua")

local filing_init = init
local prefixes = {}
local front, back

local function phone()
  local n = prefixes[math.random(#prefixes)] .. string.format("%08d", math.random(0, 99999999))
  return n:sub(1, 3) .. " " .. n:sub(4, 7) .. " " .. n:sub(8, 11)
end

function init(args)
  filing_init(args)  -- mode, bounds, the clock; sets Content-Type to JSON, replaced below
  for p in string.gmatch(args[3] or "138", "[^,]+") do table.insert(prefixes, p) end
  local file = assert(io.open(args[6], "rb"))
  local body = file:read("*a")
  file:close()
  local at, length = tonumber(args[7]), tonumber(args[8])
  wrk.headers["Content-Type"] = args[9]
  -- The whole request with the placeholder, split around it: Content-Length does not change with the number.
  local whole = wrk.format("POST", "/api/v1/tickets", nil, body)
  local offset = #whole - #body
  front = whole:sub(1, offset + at - 1)
  back = whole:sub(offset + at + length)
end

function request()
  return front .. phone() .. back
end
