-- Resume a session if it is still live, refreshing its TTL.
-- KEYS[1]: session:{<uuid>}   ARGV[1]: TTL in seconds
-- Returns {count, last_seq}, or nil when it does not exist (never created, or expired).
local session = redis.call('HMGET', KEYS[1], 'count', 'last_seq')
if session[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  return {tonumber(session[1]), tonumber(session[2] or '0')}
end
return false
