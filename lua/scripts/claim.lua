-- claim.lua: the outbox relay takes orders that waited too long to be confirmed published.
--
-- Entries older than ARGV[1] ms are returned and their score is moved to now, so another relay
-- (another gateway instance) leaves them alone for the same period: safe with many instances.
-- Entries whose order record is gone are dropped from the outbox.
--
-- KEYS[1] sk:{A}:outbox   zset order id -> ms when last (re)queued
-- KEYS[2] sk:{A}:orders   hash order id -> order record (JSON)
-- ARGV[1] minimum age in ms
-- ARGV[2] maximum entries to claim
--
-- Returns the claimed order records (JSON strings), oldest first.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]), 'LIMIT', 0, tonumber(ARGV[2]))
local records = {}
for i = 1, #ids do
  local record = redis.call('HGET', KEYS[2], ids[i])
  if record then
    redis.call('ZADD', KEYS[1], 'XX', now, ids[i])
    records[#records + 1] = record
  else
    redis.call('ZREM', KEYS[1], ids[i])
  end
end
return records
