-- Create a queued job, unless its idempotency key already names a live one.
-- KEYS[1] job hash, KEYS[2] index of queued jobs, KEYS[3] the requester's index of jobs,
-- KEYS[4] the job's event stream, KEYS[5] idempotency key (optional)
-- ARGV: job id, record, request, job ttl, idempotency ttl, job key prefix, change channel,
--       now (epoch s), request fingerprint ('' for none), the job.queued event (JSON),
--       most events the stream keeps
-- returns {job id, 1} created, {existing job id, 0} the key's job (same fingerprint, or one
-- side has none), or {existing job id, -1} the key's job was created from another request
if #KEYS == 5 then
  local existing = redis.call('GET', KEYS[5])
  if existing and redis.call('EXISTS', ARGV[6] .. existing) == 1 then
    local stored = redis.call('HGET', ARGV[6] .. existing, 'fingerprint')
    if ARGV[9] ~= '' and stored and stored ~= '' and stored ~= ARGV[9] then
      return {existing, -1}
    end
    return {existing, 0}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('job ' .. ARGV[1] .. ' already exists')
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'version', 1, 'record', ARGV[2], 'request', ARGV[3],
  'fingerprint', ARGV[9])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
-- the requester's index: newest last; entries older than a record's lifetime are gone anyway
redis.call('ZADD', KEYS[3], ARGV[8], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (tonumber(ARGV[8]) - tonumber(ARGV[4])))
redis.call('EXPIRE', KEYS[3], ARGV[4])
if #KEYS == 5 then
  redis.call('SET', KEYS[5], ARGV[1], 'EX', ARGV[5])
end
-- the job.queued event, its id the record's version (1); the stream lives as long as the record
redis.call('DEL', KEYS[4])
redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[11], '1-0', 'event', ARGV[10])
redis.call('EXPIRE', KEYS[4], ARGV[4])
redis.call('PUBLISH', ARGV[7], 1)
return {ARGV[1], 1}
