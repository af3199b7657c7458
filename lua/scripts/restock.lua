-- restock.lua: set an activity's total stock; the available stock follows.
-- Refuses to go below what is already won or sold.
--
-- KEYS[1] sk:{A}:meta
-- KEYS[2] sk:{A}:stock
-- KEYS[3] sk:{A}:reserved
-- KEYS[4] sk:{A}:sold
-- ARGV[1] new stock_total (>= 0)
--
-- Returns {code, value}:
--   0 RESTOCKED   value = available stock now
--   1 BELOW_TAKEN value = reserved + sold (the smallest allowed total); nothing written
--   2 NOT_FOUND
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {2, 0}
end
local taken = tonumber(redis.call('GET', KEYS[3]) or '0') + tonumber(redis.call('GET', KEYS[4]) or '0')
local total = tonumber(ARGV[1])
if total < taken then
  return {1, taken}
end
redis.call('HSET', KEYS[1], 'stock_total', ARGV[1])
redis.call('SET', KEYS[2], total - taken)
return {0, total - taken}
