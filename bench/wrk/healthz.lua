-- wrk script: GET /healthz through the same machinery as attempt.lua, so that the ceiling and
-- the scenarios cost the load generator the same per request: a table of requests formatted
-- before the clock starts (each with a bearer header of a token's size), one returned per
-- request() call, every answer's status counted in response().
--
--   wrk -t1 -c64 -d10s --latency -s bench/wrk/healthz.lua http://127.0.0.1:18181

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report.lua")

threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local token = string.rep("t", 96)
  requests = {}
  for i = 1, 1000 do
    requests[i] = wrk.format("GET", "/healthz", { ["Authorization"] = "Bearer " .. token .. i }, "")
  end
  cursor = (id * 7919) % #requests
  statuses = {}
end

function request()
  cursor = cursor % #requests + 1
  return requests[cursor]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
