-- Create a queued job, unless its idempotency key already names a live one.
-- KEYS[1] job hash, KEYS[2] index of queued jobs, KEYS[3] idempotency key (optional)
-- ARGV: job id, record, request, job ttl, idempotency ttl, job key prefix, change channel, now (epoch s)
-- returns {job id, 1} created, or {existing job id, 0}
if #KEYS == 3 then
  local existing = redis.call('GET', KEYS[3])
  if existing and redis.call('EXISTS', ARGV[6] .. existing) == 1 then
    return {existing, 0}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('job ' .. ARGV[1] .. ' already exists')
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'version', 1, 'record', ARGV[2], 'request', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
if #KEYS == 3 then
  redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[5])
end
redis.call('PUBLISH', ARGV[7], 1)
return {ARGV[1], 1}
