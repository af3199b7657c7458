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

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = "Bearer " .. line
  end
  if #tokens == 0 then
    error("no tokens in " .. args[1])
  end
  path = "/v1/activities/" .. args[2] .. "/orders"
  cursor = (id * 7919) % #tokens
  statuses = {}
end

function request()
  cursor = cursor % #tokens + 1
  return wrk.format("POST", path, { ["Authorization"] = tokens[cursor] }, "")
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
