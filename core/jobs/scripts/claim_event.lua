-- Claim one callback event of a job, once.
-- KEYS[1] job hash; ARGV[1] field, ARGV[2] value. 1: claimed now, 0: claimed before, -1: no job
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
