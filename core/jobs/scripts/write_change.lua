-- Write one change of a job record (compare-and-set on its version), with the indexes that
-- follow its state: it leaves the queued index, enters the running one on a transition to
-- running, and leaves the running index and drops its lease in any other state; it enters its
-- requester's index of jobs awaiting review on a transition to awaiting_review (the index lives
-- as long as its newest job), and leaves it in any other state.
-- A transition also appends its event to the job's stream, its id the record's new version,
-- keeping at most the given number of events, expiring with the record.
-- A worker's transition to running may take the job's lease in the same write (a lease TTL), and
-- a transition may look at one callback claim of the job and read its request as written (a claim
-- field), for the writer's next callback attempt (core.jobs.recent).
-- KEYS[1] job hash, KEYS[2] index of running jobs, KEYS[3] the job's lease, KEYS[4] index of queued jobs,
-- KEYS[5] the job's event stream, KEYS[6] the requester's index of jobs awaiting review
-- ARGV: expected version, new state, new record, mode ('transition' | 'update'),
--       states the job must be in (space separated, '' = any), change channel, job id, now (epoch s),
--       allowed transitions (' from>to from>to ... ', from core.jobs.machine.ALLOWED_TRANSITIONS),
--       the transition's event (JSON), most events the stream keeps,
--       the lease's TTL in ms ('' = no lease), the lease's holder, a claim field to look at ('' = none)
-- returns 1 written, 0 refused by the state machine, -1 no such job, -2 version moved on;
-- written with a claim field: {1, 1 if that claim is held else 0, the job's request}
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return -2 end
if ARGV[4] == 'transition' then
  if not string.find(ARGV[9], ' ' .. state .. '>' .. ARGV[2] .. ' ', 1, true) then return 0 end
elseif ARGV[2] ~= state then
  return 0
end
if ARGV[5] ~= '' and not string.find(' ' .. ARGV[5] .. ' ', ' ' .. state .. ' ', 1, true) then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'record', ARGV[3])
if ARGV[2] ~= 'queued' then redis.call('ZREM', KEYS[4], ARGV[7]) end
if ARGV[2] == 'running' then
  if ARGV[4] == 'transition' then redis.call('ZADD', KEYS[2], ARGV[8], ARGV[7]) end
  if ARGV[12] and ARGV[12] ~= '' then redis.call('SET', KEYS[3], ARGV[13], 'PX', ARGV[12]) end
else
  redis.call('ZREM', KEYS[2], ARGV[7])
  redis.call('DEL', KEYS[3])
end
if ARGV[2] == 'awaiting_review' then
  if ARGV[4] == 'transition' then
    redis.call('ZADD', KEYS[6], ARGV[8], ARGV[7])
    local job_ttl = redis.call('PTTL', KEYS[1])
    if job_ttl > redis.call('PTTL', KEYS[6]) then redis.call('PEXPIRE', KEYS[6], job_ttl) end
  end
else
  redis.call('ZREM', KEYS[6], ARGV[7])
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
if ARGV[4] == 'transition' then
  redis.call('XADD', KEYS[5], 'MAXLEN', ARGV[11], version .. '-0', 'event', ARGV[10])
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[5], ttl) end
end
redis.call('PUBLISH', ARGV[6], version)
if ARGV[14] and ARGV[14] ~= '' then
  return {1, redis.call('HEXISTS', KEYS[1], ARGV[14]), redis.call('HGET', KEYS[1], 'request')}
end
return 1
