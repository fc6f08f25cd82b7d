-- Forget an idempotency key, only while it still names the given job.
-- KEYS[1] idempotency key; ARGV[1] job id. 1: released, 0: it names another job (or none)
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
