-- wrk script: one buying attempt per request, each by the next user of a token file.
--
--   wrk -t1 -c64 -d10s --latency -s bench/wrk/attempt.lua http://127.0.0.1:18181 -- TOKENS ACTIVITY
--
-- TOKENS holds one bearer token per line (`seckillctl token mint --users 1..N --out TOKENS`).
-- Threads start at different offsets so they do not walk the same users in step. At the end,
-- the answers are counted by HTTP status (202 won, 200 repeat, 409 sold out / limit, 429, 503).

local threads = {}

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

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for status, n in pairs(counts) do
      totals[status] = (totals[status] or 0) + n
    end
  end
  local line = "statuses:"
  for status, n in pairs(totals) do
    line = line .. " " .. status .. "=" .. n
  end
  io.write(line .. "\n")
end
