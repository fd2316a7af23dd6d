-- 0001: import the Django Channels deployment's sessions into switchyard's layout.
-- Old: string keys session:<uuid>:count with a TTL. New: hash session:{<uuid>} with field
-- count, the same TTL (none stays none). Expand only: the old keys are left to expire.
-- A hash that already exists is never overwritten, so running this again changes nothing.
-- KEYS: a batch of old keys (from SCAN MATCH session:*:count). Returns the number imported.
local uuid = '^session:(%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x):count$'
local imported = 0
for _, old in ipairs(KEYS) do
  local id = string.match(old, uuid)
  if id then
    local new = 'session:{' .. string.lower(id) .. '}'
    local count = redis.call('GET', old)
    if count and tonumber(count) and redis.call('EXISTS', new) == 0 then
      local ttl = redis.call('PTTL', old)
      redis.call('HSET', new, 'count', math.floor(tonumber(count)))
      if ttl > 0 then
        redis.call('PEXPIRE', new, ttl)
      end
      imported = imported + 1
    end
  end
end
return imported
