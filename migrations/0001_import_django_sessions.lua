-- 0001: import the Django Channels deployment's sessions into switchyard's layout.
-- Old: string keys session:<uuid>:count with a TTL. New: hash session:{<uuid>} with field
-- count, the same TTL (none stays none). Expand only: the old keys are left to expire.
-- A hash that already exists is never overwritten, so running this again changes nothing.
-- One new key per call, so that on a Redis Cluster a call touches one slot: `migrate` reads the
-- old key (GET, PTTL) and passes its value here.
-- KEYS[1]: session:{<uuid>}   ARGV[1]: the old count   ARGV[2]: the old key's PTTL (ms; < 0: none)
-- Returns 1 when imported, 0 when not (already there, or not a number).
local count = tonumber(ARGV[1])
if not count or redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'count', math.floor(count))
local ttl = tonumber(ARGV[2])
if ttl and ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
