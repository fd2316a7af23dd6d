-- Resume a session if it is still live, refreshing its TTL.
-- KEYS[1]: session:{<uuid>}   ARGV[1]: TTL in seconds
-- Returns the session's count, or nil when it does not exist (never created, or expired).
local count = redis.call('HGET', KEYS[1], 'count')
if count then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  return tonumber(count)
end
return false
