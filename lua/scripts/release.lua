-- release.lua: give a won order's stock back to the sale (cancel / payment timeout).
-- Idempotent per order id: the second release of the same order changes nothing.
--
-- KEYS[1] sk:{A}:stock
-- KEYS[2] sk:{A}:reserved
-- KEYS[3] sk:{A}:buyers      hash user -> units held
-- KEYS[4] sk:{A}:orders      hash order id -> order record (JSON)
-- KEYS[5] sk:{A}:released    set of released order ids
-- ARGV[1] order id
-- ARGV[2] new status to record (e.g. "cancelled")
--
-- Returns {code, stock_left}:
--   0 RELEASED          stock returned; stock_left after the release
--   1 ALREADY_RELEASED  nothing changed
--   2 UNKNOWN_ORDER     no such order in this activity
--   3 NOT_RELEASABLE    the order is paid (or past it): its stock is final
local raw = redis.call('HGET', KEYS[4], ARGV[1])
if not raw then
  return {2, 0}
end
if redis.call('SISMEMBER', KEYS[5], ARGV[1]) == 1 then
  return {1, tonumber(redis.call('GET', KEYS[1]) or '0')}
end
local order = cjson.decode(raw)
if order.status == 'paid' or order.status == 'refunding' or order.status == 'refunded' then
  return {3, tonumber(redis.call('GET', KEYS[1]) or '0')}
end
local qty = tonumber(order.quantity)
local stock = redis.call('INCRBY', KEYS[1], qty)
redis.call('DECRBY', KEYS[2], qty)
if redis.call('HINCRBY', KEYS[3], order.user_id, -qty) <= 0 then
  redis.call('HDEL', KEYS[3], order.user_id)
end
-- sk:{A}:user_order keeps naming this order: the buyer can still learn it was cancelled (buyer.lua),
-- and deduct.lua reads it only for a user holding their whole allowance, which takes a later win
-- (and that win names itself).
-- The status is replaced in the stored text, never the record re-encoded (cjson would write a
-- large amount as 1e+14).
redis.call('HSET', KEYS[4], ARGV[1], (string.gsub(raw, '"status":"[a-z_]+"', '"status":"' .. ARGV[2] .. '"', 1)))
redis.call('SADD', KEYS[5], ARGV[1])
return {0, stock}
