-- lease.lua: keep or take an id-generator worker lease (one per gateway instance).
--
-- KEYS[1] sk:idgen:worker:<n>
-- ARGV[1] instance token (random, per process)
-- ARGV[2] lease time in ms
--
-- Returns 1 when the caller holds the lease afterwards (renewed or newly taken), 0 when another
-- instance holds it.
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
