-- confirm.lua: a paid order's units move from reserved to sold (final).
-- Idempotent: confirming a paid order again changes nothing.
--
-- KEYS[1] sk:{A}:reserved
-- KEYS[2] sk:{A}:sold
-- KEYS[3] sk:{A}:orders      hash order id -> order record (JSON)
-- KEYS[4] sk:{A}:released    set of released order ids
-- ARGV[1] order id
--
-- Returns {code}:
--   0 CONFIRMED         reserved -> sold, status "paid"
--   1 ALREADY_CONFIRMED nothing changed
--   2 UNKNOWN_ORDER     no such order in this activity
--   3 NOT_CONFIRMABLE   the order's stock was released (cancelled): it cannot be sold
local raw = redis.call('HGET', KEYS[3], ARGV[1])
if not raw then
  return {2}
end
local order = cjson.decode(raw)
if order.status == 'paid' or order.status == 'refunding' or order.status == 'refunded' then
  return {1}
end
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then
  return {3}
end
local qty = tonumber(order.quantity)
redis.call('DECRBY', KEYS[1], qty)
redis.call('INCRBY', KEYS[2], qty)
-- The status is replaced in the stored text, never the record re-encoded (cjson would write a
-- large amount as 1e+14).
redis.call('HSET', KEYS[3], ARGV[1], (string.gsub(raw, '"status":"[a-z_]+"', '"status":"paid"', 1)))
return {0}
