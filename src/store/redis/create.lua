-- Create a new session with count 0 and its TTL, in one step.
-- KEYS[1]: session:{<uuid>} (a fresh server-generated id)   ARGV[1]: TTL in seconds
redis.call('HSETNX', KEYS[1], 'count', 0)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
