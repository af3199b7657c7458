-- report.lua: wrk's summary as one JSON line, `wrk-json: {...}`, for the bench harness.
--
-- Used alone (`wrk -s bench/wrk/report.lua URL`, e.g. for GET /healthz) or loaded by a script
-- that keeps a `statuses` table (HTTP status -> count) in each thread, listed in the global
-- `threads`; the statuses of all threads are then added up into the line.

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads or {}) do
    for status, n in pairs(thread:get("statuses") or {}) do
      totals[status] = (totals[status] or 0) + n
    end
  end
  local statuses = {}
  for status, n in pairs(totals) do
    statuses[#statuses + 1] = string.format('"%d":%d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'wrk-json: {"requests":%d,"duration_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d},' ..
    '"statuses":{%s}}\n',
    summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    table.concat(statuses, ",")))
end
