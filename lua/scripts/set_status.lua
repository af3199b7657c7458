-- set_status.lua: mirror an order's status into the ledger (the writer calls it after each
-- database commit), only along an allowed transition so a late or repeated mirror cannot move
-- an order backwards.
--
-- KEYS[1] sk:{A}:orders   hash order id -> order record (JSON)
-- ARGV[1] order id
-- ARGV[2] new status
-- ARGV[3..] statuses the order may be in for the change to apply
--
-- Returns {code, status}:
--   0 CHANGED      status = the new status
--   1 ALREADY      the order already has the new status
--   2 UNKNOWN      no such order
--   3 NOT_ALLOWED  status = the order's current status; nothing changed
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return {2, ''}
end
local order = cjson.decode(raw)
if order.status == ARGV[2] then
  return {1, order.status}
end
for i = 3, #ARGV do
  if order.status == ARGV[i] then
    -- The status is replaced in the stored text, never the record re-encoded (cjson would
    -- write a large amount as 1e+14).
    redis.call('HSET', KEYS[1], ARGV[1], (string.gsub(raw, '"status":"[a-z_]+"', '"status":"' .. ARGV[2] .. '"', 1)))
    return {0, ARGV[2]}
  end
end
return {3, order.status}
