-- Erase one job: its hash and every key that is only its, its entries in the indexes, and the
-- idempotency key while it still names this job; announce the change so watchers wake.
-- KEYS[1] job hash, KEYS[2] index of queued jobs, KEYS[3] index of running jobs,
-- KEYS[4] the requester's index of jobs, KEYS[5] the job's idempotency key (KEYS[1] when none),
-- KEYS[6..] other keys that belong to this job alone (its lease, its event stream)
-- ARGV: job id, change channel
-- returns 1 when the job's record was there, 0 when it was not (the rest is cleaned either way)
local existed = redis.call('EXISTS', KEYS[1])
if KEYS[5] ~= KEYS[1] and redis.call('GET', KEYS[5]) == ARGV[1] then
  redis.call('DEL', KEYS[5])
end
redis.call('DEL', KEYS[1])
for i = 6, #KEYS do
  redis.call('DEL', KEYS[i])
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[2], 0)
return existed
