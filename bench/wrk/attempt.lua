-- wrk script: one buying attempt per request, each by the next user of a token file.
--
--   wrk -t1 -c64 -d10s --latency -s bench/wrk/attempt.lua http://127.0.0.1:18181 -- TOKENS ACTIVITY
--
-- TOKENS holds one bearer token per line (`seckillctl token mint --users 1..N --out TOKENS`).
-- Threads start at different offsets so they do not walk the same users in step. At the end,
-- report.lua prints the summary with the answers counted by HTTP status (202 won, 200 repeat,
-- 409 sold out / limit, 429, 503).

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "report.lua")

threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Every request is formatted once, before the clock starts (wrk runs init before it), so the
-- load generator spends per request only what it spends on GET /healthz.
-- ACTIVITY may be several ids separated by commas (the `cluster` scenario, one per master):
-- the n-th user of the file then buys in the (n mod k)-th activity, always the same one.
function init(args)
  local paths = {}
  for id in string.gmatch(args[2], "[^,]+") do
    paths[#paths + 1] = "/v1/activities/" .. id .. "/orders"
  end
  requests = {}
  for line in io.lines(args[1]) do
    local path = paths[#requests % #paths + 1]
    requests[#requests + 1] = wrk.format("POST", path, { ["Authorization"] = "Bearer " .. line }, "")
  end
  if #requests == 0 then
    error("no tokens in " .. args[1])
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
