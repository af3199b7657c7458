-- audit.lua: an exact, atomic snapshot of one activity's ledger for `seckillctl verify`.
-- Walks every buyer and order, so it costs O(buyers + orders): an operator tool, not the hot path.
--
-- KEYS[1] sk:{A}:meta
-- KEYS[2] sk:{A}:stock
-- KEYS[3] sk:{A}:reserved
-- KEYS[4] sk:{A}:sold
-- KEYS[5] sk:{A}:buyers
-- KEYS[6] sk:{A}:orders
-- KEYS[7] sk:{A}:outbox
-- KEYS[8] sk:{A}:released
--
-- Returns {{found, stock_total, stock, reserved, sold, per_user_limit,
--           buyers, units_held, orders, units_in_live_orders, outbox, released},
--          {user, held, ...} of buyers over the limit (at most 20 pairs)}
--   found = 0 when the activity does not exist (then the first list is just {0}).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {{0}, {}}
end
local meta = redis.call('HMGET', KEYS[1], 'stock_total', 'per_user_limit')
local limit = tonumber(meta[2])
local buyers = redis.call('HGETALL', KEYS[5])
local held_sum = 0
local over = {}
for i = 1, #buyers, 2 do
  local held = tonumber(buyers[i + 1])
  held_sum = held_sum + held
  if held > limit and #over < 40 then
    over[#over + 1] = buyers[i]
    over[#over + 1] = held
  end
end
local orders = redis.call('HVALS', KEYS[6])
local live_units = 0
for i = 1, #orders do
  local order = cjson.decode(orders[i])
  if redis.call('SISMEMBER', KEYS[8], order.order_id) == 0 then
    live_units = live_units + tonumber(order.quantity)
  end
end
return {{
  1,
  tonumber(meta[1]),
  tonumber(redis.call('GET', KEYS[2]) or '0'),
  tonumber(redis.call('GET', KEYS[3]) or '0'),
  tonumber(redis.call('GET', KEYS[4]) or '0'),
  limit,
  #buyers / 2,
  held_sum,
  #orders,
  live_units,
  redis.call('ZCARD', KEYS[7]),
  redis.call('SCARD', KEYS[8]),
}, over}
