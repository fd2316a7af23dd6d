-- Apply one client message to a session, atomically.
-- KEYS[1]: session:{<uuid>}   ARGV[1]: TTL in seconds   ARGV[2]: seq, or "" when the frame had none
-- Returns {count, duplicate}: a seq not greater than last_seq is not counted again (duplicate = 1).
local key = KEYS[1]
local seq = ARGV[2]
if seq ~= '' then
  local last = redis.call('HGET', key, 'last_seq')
  if last and tonumber(seq) <= tonumber(last) then
    redis.call('EXPIRE', key, ARGV[1])
    return {tonumber(redis.call('HGET', key, 'count') or '0'), 1}
  end
  redis.call('HSET', key, 'last_seq', seq)
end
local count = redis.call('HINCRBY', key, 'count', 1)
redis.call('EXPIRE', key, ARGV[1])
return {count, 0}
