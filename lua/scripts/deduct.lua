-- deduct.lua: one buyer's attempt on one activity (the hot path).
--
-- Atomically: sale-window check, per-user limit check, stock check, decrement,
-- record the buyer, record the order, put it in the outbox and make it findable by its id.
-- Time comes from Redis (TIME), so every gateway instance judges the window alike.
--
-- KEYS[1] sk:{A}:meta        hash: starts_at, ends_at (unix ms), per_user_limit, price_cents, closed
-- KEYS[2] sk:{A}:stock       available units
-- KEYS[3] sk:{A}:reserved    units won but not yet paid
-- KEYS[4] sk:{A}:buyers      hash user -> units held
-- KEYS[5] sk:{A}:user_order  hash user -> latest order id
-- KEYS[6] sk:{A}:orders      hash order id -> order record (JSON)
-- KEYS[7] sk:{A}:outbox      zset order id -> created_at ms (not yet confirmed published)
-- KEYS[8] sk:order:<ARGV[3]> string: the order's activity id, written on a win (the order-id
--                             index; a key outside the activity's slot: single node only)
-- ARGV[1] user id
-- ARGV[2] quantity (>= 1)
-- ARGV[3] order id (decimal string, unique across gateway instances)
-- ARGV[4] channel
-- ARGV[5] activity id (copied into the order record)
--
-- Returns {code, order_id, stock_left, status, record} (record: the order JSON on WON, else ''):
--   0 WON            order recorded; order_id = ARGV[3]
--   1 REPEAT         the user's allowance is used up; order_id = their latest order, status = its status
--   2 SOLD_OUT       not enough stock left
--   3 LIMIT_EXCEEDED quantity would take the user over per_user_limit
--   4 NOT_STARTED    before starts_at
--   5 ENDED          at or after ends_at, or closed by an operator
--   6 NOT_FOUND      no such activity
--   7 ID_TAKEN       ARGV[3] already names an order: nothing written, retry with a fresh id
local meta = redis.call('HMGET', KEYS[1], 'starts_at', 'ends_at', 'per_user_limit', 'price_cents', 'closed')
if not meta[1] then
  return {6, '', 0, '', ''}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if meta[5] == '1' or now >= tonumber(meta[2]) then
  return {5, '', 0, '', ''}
end
if now < tonumber(meta[1]) then
  return {4, '', 0, '', ''}
end

local user = ARGV[1]
local qty = tonumber(ARGV[2])
local limit = tonumber(meta[3])
local held = tonumber(redis.call('HGET', KEYS[4], user) or '0')
if held + qty > limit then
  if held > 0 and held >= limit then
    local previous = redis.call('HGET', KEYS[5], user)
    if not previous then
      return {1, '', 0, '', ''}
    end
    local record = redis.call('HGET', KEYS[6], previous)
    local status = record and cjson.decode(record).status or ''
    return {1, previous, 0, status, ''}
  end
  return {3, '', 0, '', ''}
end

local stock = tonumber(redis.call('GET', KEYS[2]) or '0')
if stock < qty then
  return {2, '', stock, '', ''}
end
if redis.call('HEXISTS', KEYS[6], ARGV[3]) == 1 then
  return {7, '', stock, '', ''}
end
stock = redis.call('DECRBY', KEYS[2], qty)
redis.call('INCRBY', KEYS[3], qty)
redis.call('HINCRBY', KEYS[4], user, qty)
redis.call('HSET', KEYS[5], user, ARGV[3])
local record = cjson.encode({
  order_id = ARGV[3],
  activity_id = ARGV[5],
  user_id = user,
  quantity = qty,
  amount_cents = qty * tonumber(meta[4]),
  channel = ARGV[4],
  status = 'queued',
  created_at = now,
  per_user_limit = limit,
})
redis.call('HSET', KEYS[6], ARGV[3], record)
redis.call('ZADD', KEYS[7], now, ARGV[3])
redis.call('SET', KEYS[8], ARGV[5])
return {0, ARGV[3], stock, 'queued', record}
