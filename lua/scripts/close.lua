-- close.lua: end an activity now; later attempts answer ENDED.
--
-- KEYS[1] sk:{A}:meta
--
-- Returns {code}:
--   0 CLOSED
--   1 ALREADY_CLOSED
--   2 NOT_FOUND
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {2}
end
if redis.call('HGET', KEYS[1], 'closed') == '1' then
  return {1}
end
redis.call('HSET', KEYS[1], 'closed', '1')
return {0}
