-- Give a job's lease back, only while the given holder still holds it.
-- KEYS[1] the job's lease; ARGV[1] holder. 1: released, 0: held by another (or expired)
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
