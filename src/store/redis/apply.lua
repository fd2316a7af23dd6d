-- Apply one client message to a session, atomically. Never creates a session.
-- KEYS[1]: session:{<uuid>}   ARGV[1]: TTL in seconds   ARGV[2]: seq, or "" when the frame had none
-- The seq rule is gapless: only last_seq + 1 is applied; a seq not greater than last_seq is a
-- duplicate (not counted again); a jump is refused, nothing changed.
-- Returns {outcome, value}: {0, count} counted, {1, count} duplicate, {2, expected seq} gap,
-- {3, 0} the session does not exist (expired).
local key = KEYS[1]
local session = redis.call('HMGET', key, 'count', 'last_seq')
if not session[1] then
  return {3, 0}
end
local seq = ARGV[2]
if seq ~= '' then
  local last = tonumber(session[2] or '0')
  local wanted = tonumber(seq)
  if wanted <= last then
    redis.call('EXPIRE', key, ARGV[1])
    return {1, tonumber(session[1])}
  end
  if wanted ~= last + 1 then
    return {2, last + 1}
  end
  redis.call('HSET', key, 'last_seq', seq)
end
local count = redis.call('HINCRBY', key, 'count', 1)
redis.call('EXPIRE', key, ARGV[1])
return {0, count}
