-- Create a queued job, unless its idempotency key already names a live one, or an admission
-- (core.jobs.admission) refuses it.
-- KEYS[1] job hash, KEYS[2] index of queued jobs, KEYS[3] the requester's index of jobs,
-- KEYS[4] the job's event stream, KEYS[5] idempotency key (optional), then the admission's keys
-- ARGV: job id, record, request, job ttl, idempotency ttl, job key prefix, change channel,
--       now (epoch s), request fingerprint ('' for none), the job.queued event (JSON),
--       most events the stream keeps; with an admission, the number of the KEYS above that are
--       the job's (4 or 5), then the admission's arguments
-- returns {job id, 1} created, {existing job id, 0} the key's job (same fingerprint, or one
-- side has none), or {existing job id, -1} the key's job was created from another request;
-- with an admission, its answer comes third, and {'', -2, answer} is its refusal (nothing written)
local admit = nil -- the admission hook (core.jobs.admission)
local own = #KEYS
local admission = nil
if admit then
  own = tonumber(ARGV[12])
  local keys, argv = {}, {}
  for i = own + 1, #KEYS do keys[#keys + 1] = KEYS[i] end
  for i = 13, #ARGV do argv[#argv + 1] = ARGV[i] end
  admission = function(new_job) return admit(keys, argv, new_job) end
end
if own == 5 then
  local existing = redis.call('GET', KEYS[5])
  if existing and redis.call('EXISTS', ARGV[6] .. existing) == 1 then
    local stored = redis.call('HGET', ARGV[6] .. existing, 'fingerprint')
    local outcome = 0
    if ARGV[9] ~= '' and stored and stored ~= '' and stored ~= ARGV[9] then
      outcome = -1
    end
    if admission then
      local admitted, answer = admission(false)
      if not admitted then return {'', -2, answer} end
      return {existing, outcome, answer}
    end
    return {existing, outcome}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('job ' .. ARGV[1] .. ' already exists')
end
local answer = nil
if admission then
  local admitted
  admitted, answer = admission(true)
  if not admitted then return {'', -2, answer} end
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'version', 1, 'record', ARGV[2], 'request', ARGV[3],
  'fingerprint', ARGV[9])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
-- the requester's index: newest last; entries older than a record's lifetime are gone anyway
redis.call('ZADD', KEYS[3], ARGV[8], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (tonumber(ARGV[8]) - tonumber(ARGV[4])))
redis.call('EXPIRE', KEYS[3], ARGV[4])
if own == 5 then
  redis.call('SET', KEYS[5], ARGV[1], 'EX', ARGV[5])
end
-- the job.queued event, its id the record's version (1); the stream lives as long as the record
redis.call('DEL', KEYS[4])
redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[11], '1-0', 'event', ARGV[10])
redis.call('EXPIRE', KEYS[4], ARGV[4])
redis.call('PUBLISH', ARGV[7], 1)
if answer then return {ARGV[1], 1, answer} end
return {ARGV[1], 1}
