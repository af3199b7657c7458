-- deduct.lua: a batch of buyers' attempts on one activity (the hot path), decided in arrival order.
--
-- Atomically, for each attempt: sale-window check, per-user limit check, stock check; for each
-- winner: decrement, record the buyer, record the order, put it in the outbox and make it
-- findable by its id. The gateway sends every attempt that arrived while its previous call was in
-- flight as one call (a batch of one is an ordinary single attempt). Per winner it costs one read
-- of the buyer and one HSETNX of the order; everything else is written once per batch. Time comes
-- from Redis (TIME), so every gateway instance judges the window alike.
--
-- KEYS[1] sk:{A}:meta        hash: starts_at, ends_at (unix ms), per_user_limit, price_cents, closed
-- KEYS[2] sk:{A}:stock       available units
-- KEYS[3] sk:{A}:reserved    units won but not yet paid
-- KEYS[4] sk:{A}:buyers      hash user -> units held
-- KEYS[5] sk:{A}:user_order  hash user -> latest order id
-- KEYS[6] sk:{A}:orders      hash order id -> order record (JSON)
-- KEYS[7] sk:{A}:outbox      zset order id -> created_at ms (not yet confirmed published)
-- KEYS[7 + i] sk:order:<order id of attempt i>   string: the order's activity id, written on a win
--                             (the order-id index; keys outside the activity's slot, so given on a
--                             single node only: on a Redis Cluster KEYS stops at 7 and the caller
--                             writes the index right after this call)
-- ARGV[1] activity id (copied into the order records)
-- ARGV[2 + 4(i-1) ..] attempt i: user id, quantity (>= 1), order id (decimal string, unique across
--                     gateway instances), channel
--
-- Returns one {code, order_id, stock_left, status, record} per attempt, in order (record: the order
-- JSON on WON, else ''):
--   0 WON            order recorded; order_id = the attempt's order id
--   1 REPEAT         the user's allowance is used up; order_id = their latest order, status = its status
--   2 SOLD_OUT       not enough stock left
--   3 LIMIT_EXCEEDED quantity would take the user over per_user_limit
--   4 NOT_STARTED    before starts_at
--   5 ENDED          at or after ends_at, or closed by an operator
--   6 NOT_FOUND      no such activity
--   7 ID_TAKEN       the order id already names an order: nothing written, retry with a fresh id
-- A user twice in one batch is judged the second time with the first attempt's units counted.
local attempts = (#ARGV - 1) / 4
local function all(code)
  local out = {}
  for i = 1, attempts do
    out[i] = {code, '', 0, '', ''}
  end
  return out
end

local meta = redis.call('HMGET', KEYS[1], 'starts_at', 'ends_at', 'per_user_limit', 'price_cents', 'closed')
if not meta[1] then
  return all(6)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if meta[5] == '1' or now >= tonumber(meta[2]) then
  return all(5)
end
if now < tonumber(meta[1]) then
  return all(4)
end

local RECORD = '{"order_id":"%s","activity_id":"%s","user_id":"%s","quantity":%d,"amount_cents":%d,'
  .. '"channel":%s,"status":"queued","created_at":%d,"per_user_limit":%d}'
local limit = tonumber(meta[3])
local price = tonumber(meta[4])
local activity = ARGV[1]
local indexed = #KEYS > 7
local stock = tonumber(redis.call('GET', KEYS[2]) or '0')
local taken = 0
local held_now = {}      -- user -> units, once read or changed in this batch
local latest = {}        -- user -> order id won in this batch
local buyers, user_orders, outbox, index = {}, {}, {}, {}
local out = {}
for i = 1, attempts do
  local base = 2 + 4 * (i - 1)
  local user, qty, order_id, channel = ARGV[base], tonumber(ARGV[base + 1]), ARGV[base + 2], ARGV[base + 3]
  local held = held_now[user]
  if not held then
    held = tonumber(redis.call('HGET', KEYS[4], user) or '0')
    held_now[user] = held
  end
  if held + qty > limit then
    if held > 0 and held >= limit then
      local previous = latest[user] or redis.call('HGET', KEYS[5], user)
      if not previous then
        out[i] = {1, '', 0, '', ''}
      elseif latest[user] then
        out[i] = {1, previous, 0, 'queued', ''}
      else
        local record = redis.call('HGET', KEYS[6], previous)
        out[i] = {1, previous, 0, record and string.match(record, '"status":"([a-z_]+)"') or '', ''}
      end
    else
      out[i] = {3, '', 0, '', ''}
    end
  elseif stock < qty then
    out[i] = {2, '', stock, '', ''}
  else
    -- Built as text, not with cjson.encode: ids are [A-Za-z0-9_-] (the callers' types check it),
    -- numbers are integers (%d: exact, never 1e+14), the channel is encoded as a JSON string.
    local record = string.format(RECORD, order_id, activity, user, qty, qty * price,
      cjson.encode(channel), now, limit)
    if redis.call('HSETNX', KEYS[6], order_id, record) == 0 then
      out[i] = {7, '', stock, '', ''}
    else
      stock = stock - qty
      taken = taken + qty
      held_now[user] = held + qty
      latest[user] = order_id
      buyers[#buyers + 1] = user
      buyers[#buyers + 1] = held + qty
      user_orders[#user_orders + 1] = user
      user_orders[#user_orders + 1] = order_id
      outbox[#outbox + 1] = now
      outbox[#outbox + 1] = order_id
      if indexed then
        index[#index + 1] = KEYS[7 + i]
        index[#index + 1] = activity
      end
      out[i] = {0, order_id, stock, 'queued', record}
    end
  end
end
if taken > 0 then
  redis.call('DECRBY', KEYS[2], taken)
  redis.call('INCRBY', KEYS[3], taken)
  -- A user twice in the batch appears twice; the later pair (the larger count) wins.
  redis.call('HSET', KEYS[4], unpack(buyers))
  redis.call('HSET', KEYS[5], unpack(user_orders))
  redis.call('ZADD', KEYS[7], unpack(outbox))
  if indexed then
    redis.call('MSET', unpack(index))
  end
end
return out
