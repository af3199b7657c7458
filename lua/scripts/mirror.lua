-- mirror.lua: mirror one status change of a whole persisted batch into the ledger in one call
-- (the writer, after each database commit), instead of one call per order. Each order moves to
-- ARGV[1] only from ARGV[2], so a late or repeated mirror never moves an order backwards.
--
-- The records are cjson's own output (no spaces; every string value escaped, so `"status":"…"`
-- can only be the status field), so the status is replaced in place rather than the record
-- decoded and encoded again: the per-order cost is a HGET, a search and a HSET.
--
-- KEYS[1] sk:{A}:orders   hash order id -> order record (JSON)
-- ARGV[1] new status
-- ARGV[2] the status an order must be in for the change to apply
-- ARGV[3..] order ids (of this activity)
--
-- Returns {changed, already, unknown, not_allowed}: how many of the orders came to each of
-- set_status.lua's outcomes (CHANGED, ALREADY, UNKNOWN, NOT_ALLOWED).
local to = '"status":"' .. ARGV[1] .. '"'
local from = '"status":"' .. ARGV[2] .. '"'
local changed, already, unknown, not_allowed = 0, 0, 0, 0
for i = 3, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if not raw then
    unknown = unknown + 1
  elseif string.find(raw, to, 1, true) then
    already = already + 1
  else
    local at = string.find(raw, from, 1, true)
    if at then
      redis.call('HSET', KEYS[1], ARGV[i], string.sub(raw, 1, at - 1) .. to .. string.sub(raw, at + #from))
      changed = changed + 1
    else
      not_allowed = not_allowed + 1
    end
  end
end
return {changed, already, unknown, not_allowed}
