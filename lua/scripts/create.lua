-- create.lua: preload a new activity. Never overwrites an existing one.
--
-- KEYS[1] sk:{A}:meta
-- KEYS[2] sk:{A}:stock
-- KEYS[3] sk:{A}:reserved
-- KEYS[4] sk:{A}:sold
-- ARGV[1] name
-- ARGV[2] price_cents
-- ARGV[3] stock_total
-- ARGV[4] per_user_limit
-- ARGV[5] starts_at (unix ms)
-- ARGV[6] ends_at (unix ms)
--
-- Returns {code}:
--   0 CREATED
--   1 EXISTS   an activity with this id exists (or left keys behind); nothing written
if redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3], KEYS[4]) > 0 then
  return {1}
end
redis.call('HSET', KEYS[1],
  'name', ARGV[1],
  'price_cents', ARGV[2],
  'stock_total', ARGV[3],
  'per_user_limit', ARGV[4],
  'starts_at', ARGV[5],
  'ends_at', ARGV[6],
  'closed', '0')
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], '0')
redis.call('SET', KEYS[4], '0')
return {0}
