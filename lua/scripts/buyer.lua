-- buyer.lua: what one buyer holds in an activity, and their latest order (read only).
--
-- KEYS[1] sk:{A}:buyers      hash user -> units held
-- KEYS[2] sk:{A}:user_order  hash user -> latest order id (kept after a release, so a buyer
--                             whose order was cancelled still learns it)
-- KEYS[3] sk:{A}:orders      hash order id -> order record (JSON)
-- ARGV[1] user id
--
-- Returns {held, order_id, record}: units held now (0 if none), the latest order's id and its
-- record ('' and '' if the user never won here).
local held = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local order_id = redis.call('HGET', KEYS[2], ARGV[1])
if not order_id then
  return {held, '', ''}
end
return {held, order_id, redis.call('HGET', KEYS[3], order_id) or ''}
