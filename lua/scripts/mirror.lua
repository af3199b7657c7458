-- mirror.lua: mirror one status change of a whole persisted batch into the ledger in one call
-- (the writer, after each database commit), instead of one call per order. Each order moves to
-- ARGV[1] only from ARGV[2], so a late or repeated mirror never moves an order backwards.
--
-- KEYS[1] sk:{A}:orders   hash order id -> order record (JSON)
-- ARGV[1] new status
-- ARGV[2] the status an order must be in for the change to apply
-- ARGV[3..] order ids (of this activity)
--
-- Returns {changed, already, unknown, not_allowed}: how many of the orders came to each of
-- set_status.lua's outcomes (CHANGED, ALREADY, UNKNOWN, NOT_ALLOWED).
local changed, already, unknown, not_allowed = 0, 0, 0, 0
for i = 3, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if not raw then
    unknown = unknown + 1
  else
    local order = cjson.decode(raw)
    if order.status == ARGV[1] then
      already = already + 1
    elseif order.status == ARGV[2] then
      order.status = ARGV[1]
      redis.call('HSET', KEYS[1], ARGV[i], cjson.encode(order))
      changed = changed + 1
    else
      not_allowed = not_allowed + 1
    end
  end
end
return {changed, already, unknown, not_allowed}
