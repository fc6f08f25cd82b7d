-- What a callback attempt needs, in one round trip: claim its event, or only see whether someone
-- has, and read the job's version, record and request.
-- KEYS[1] job hash; ARGV[1] claim field, ARGV[2] claim value, ARGV[3] '1': claim, '0': only look.
-- returns {-1} for no job, else {claimed, version, record, request}: claimed is 1 when this call
-- took the claim (claiming) or someone holds it (looking), else 0
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local claimed
if ARGV[3] == '1' then
  claimed = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
else
  claimed = redis.call('HEXISTS', KEYS[1], ARGV[1])
end
local found = redis.call('HMGET', KEYS[1], 'version', 'record', 'request')
return {claimed, found[1], found[2], found[3]}
