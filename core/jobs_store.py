"""The job status store (Redis) that producer, worker and CLI share.

One hash per job, ``{prefix}job:{job_id}``, expiring after ``job_record_ttl_s``:

- ``record``: the :class:`JobRecord` as JSON (what ``status`` returns),
- ``state`` and ``version``: what the Lua scripts compare, so a state change is atomic and
  two writers never overwrite each other's fields (a compare-and-set on ``version``),
- ``request``: the request as JSON, for the worker and for replays,
- ``event:{type}``: set once per callback event by :meth:`JobStore.claim_event`.

Idempotency keys are ``{prefix}idem:{requester}/{key}`` -> job id, expiring after
``idempotency_ttl_s``; ``/`` cannot occur in an identifier, so requesters never collide.
Every change is announced on ``{prefix}changes:{job_id}`` so :meth:`JobStore.watch` wakes at once.

Running jobs are indexed in the sorted set ``{prefix}running`` (job id scored by when it last
entered ``running``, epoch seconds), kept by the same Lua script as the state, so the stuck-job
sweeper (``worker/sweeper.py``) reads the oldest ones without scanning keys. A worker holds
``{prefix}lease:{job_id}`` (with a TTL) while it runs the job: no lease, no live worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import redis
from redis.exceptions import RedisError

from core.contracts.codes import ErrorCode
from core.contracts.jobs import JobEventType, JobRecord, JobState, StoredImage
from core.errors import AtelierError
from core.settings import AtelierSettings

#: every state change the store accepts; anything else (and any change of a terminal state) is refused
ALLOWED_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED}),
}

#: fields a transition may set; identity fields (job id, kind, requester, subject) never change
MUTABLE_FIELDS = frozenset(JobRecord.model_fields) - {
    "job_id",
    "kind",
    "requester",
    "subject",
    "created_at",
    "state",
    "idempotency_key",
}

#: compare-and-set retries when another writer changed the record between read and write
_CAS_ATTEMPTS = 20

_CREATE = """
-- KEYS[1] job hash, KEYS[2] index of queued jobs, KEYS[3] idempotency key (optional)
-- ARGV: job id, record, request, job ttl, idempotency ttl, job key prefix, change channel, now (epoch s)
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
"""

_ALLOWED_LUA = ", ".join(
    f"{src.value}={{{', '.join(f'{dst.value}=1' for dst in sorted(dsts))}}}"
    for src, dsts in ALLOWED_TRANSITIONS.items()
)

_MUTATE = (
    """
-- KEYS[1] job hash, KEYS[2] index of running jobs, KEYS[3] the job's lease, KEYS[4] index of queued jobs
-- ARGV: expected version, new state, new record, mode ('transition' | 'update'),
--       states the job must be in (space separated, '' = any), change channel, job id, now (epoch s)
-- returns 1 written, 0 refused by the state machine, -1 no such job, -2 version moved on
local allowed = {"""
    + _ALLOWED_LUA
    + """}
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return -2 end
if ARGV[4] == 'transition' then
  if not (allowed[state] and allowed[state][ARGV[2]]) then return 0 end
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
else
  redis.call('ZREM', KEYS[2], ARGV[7])
  redis.call('DEL', KEYS[3])
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PUBLISH', ARGV[6], version)
return 1
"""
)

_CLAIM_EVENT = """
-- KEYS[1] job hash; ARGV[1] field, ARGV[2] value. 1: claimed now, 0: claimed before, -1: no job
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
"""

_RELEASE_IDEMPOTENCY = """
-- KEYS[1] idempotency key (or lease); ARGV[1] job id (or holder): delete it only while it names that
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class StoreError(AtelierError):
    """Base of the status store's failures."""


class StoreUnavailable(StoreError):
    """Redis unreachable or timing out (retryable)."""

    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.STORE_UNAVAILABLE, message)


class JobNotFound(StoreError, LookupError):
    """No record for this job id (never created, or expired after ``job_record_ttl_s``)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(ErrorCode.JOB_NOT_FOUND, f"no job {job_id!r}")
        self.job_id = job_id


class StoreConflict(StoreError):
    """A record kept changing under a compare-and-set; give up rather than loop forever."""

    retryable = True

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.STORE_CONFLICT, message)


class WatchTimeout(AtelierError, TimeoutError):
    """``watch`` reached its timeout before the job reached a terminal state."""

    def __init__(self, record: JobRecord, timeout: float) -> None:
        super().__init__(
            ErrorCode.WATCH_TIMEOUT, f"job {record.job_id} still {record.state} after {timeout:g} s"
        )
        self.record = record


def utcnow() -> datetime:
    return datetime.now(UTC)


def cancel_refusal(record: JobRecord) -> str | None:
    """Why a cancel left ``record`` as it is, or ``None`` when the job is canceled."""
    if record.state is JobState.CANCELED:
        return None
    if record.state is JobState.RUNNING:
        return "the job is already running: a cancel does not interrupt it; it ends succeeded or failed"
    if record.state is JobState.QUEUED:
        return "the job is still queued (it changed while canceling); try again"
    return f"the job already ended {record.state.value}"


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn Redis failures into :class:`StoreUnavailable` (retryable)."""
    try:
        yield
    except RedisError as error:
        raise StoreUnavailable(f"status store: {error!r}") from error


def redis_client(settings: AtelierSettings) -> redis.Redis:
    """A client of the status store (``redis_url``) that decodes replies, with its timeouts."""
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
    )


class JobStore:
    """Job records in Redis: create with idempotency, read, and state transitions.

    Parameters (keyword-only besides ``settings``):

    - ``client``: a ``redis.Redis`` to use (it must decode responses); default one built from
      ``settings.redis_url`` with ``settings.redis_timeout_s`` as connect and reply timeout.

    Reads from settings: ``redis_key_prefix`` (default ``atelier:``), ``job_record_ttl_s`` and
    ``idempotency_ttl_s``. Redis failures raise :class:`StoreUnavailable`.
    """

    def __init__(self, settings: AtelierSettings, *, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.prefix = settings.redis_key_prefix
        client = client if client is not None else redis_client(settings)
        self.redis = client
        self._create = client.register_script(_CREATE)
        self._mutate_script = client.register_script(_MUTATE)
        self._claim = client.register_script(_CLAIM_EVENT)
        self._release = client.register_script(_RELEASE_IDEMPOTENCY)

    # --- keys ---

    def job_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def idempotency_key(self, requester: str, key: str) -> str:
        return f"{self.prefix}idem:{requester}/{key}"

    def changes_channel(self, job_id: str) -> str:
        return f"{self.prefix}changes:{job_id}"

    def running_key(self) -> str:
        return f"{self.prefix}running"

    def queued_key(self) -> str:
        return f"{self.prefix}queued"

    def lease_key(self, job_id: str) -> str:
        return f"{self.prefix}lease:{job_id}"

    # --- create and read ---

    def create(
        self,
        record: JobRecord,
        idempotency_key: str | None = None,
        *,
        request: Mapping[str, Any] | None = None,
    ) -> tuple[str, bool]:
        """Store a new ``queued`` record; ``(job_id, True)``, or ``(existing_id, False)``.

        With an idempotency key (scoped to ``record.requester``) that already names a live job,
        nothing is written and that job's id comes back. Key check and write are one Lua script.
        """
        if record.state is not JobState.QUEUED:
            raise ValueError(f"a new job starts queued, not {record.state}")
        keys = [self.job_key(record.job_id), self.queued_key()]
        if idempotency_key is not None:
            keys.append(self.idempotency_key(record.requester, idempotency_key))
            record = record.model_copy(update={"idempotency_key": idempotency_key})
        args: list[str | int] = [
            record.job_id,
            record.model_dump_json(),
            json.dumps(request if request is not None else {}),
            self.settings.job_record_ttl_s,
            self.settings.idempotency_ttl_s,
            self.job_key(""),
            self.changes_channel(record.job_id),
            repr(time.time()),
        ]
        with redis_errors():
            job_id, created = self._create(keys=keys, args=args)
        return str(job_id), bool(created)

    def get(self, job_id: str) -> JobRecord | None:
        with redis_errors():
            raw = self.redis.hget(self.job_key(job_id), "record")
        return None if raw is None else JobRecord.model_validate_json(raw)

    def require(self, job_id: str) -> JobRecord:
        """Like :meth:`get`, but raises :class:`JobNotFound` instead of returning ``None``."""
        record = self.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    def get_request(self, job_id: str) -> dict[str, Any] | None:
        """The request as submitted (JSON mode), for the worker and for replays."""
        with redis_errors():
            raw = self.redis.hget(self.job_key(job_id), "request")
        return None if raw is None else json.loads(raw)

    def find_by_idempotency_key(self, requester: str, key: str) -> str | None:
        with redis_errors():
            job_id = self.redis.get(self.idempotency_key(requester, key))
        return None if job_id is None else str(job_id)

    # --- changes ---

    def transition(
        self,
        job_id: str,
        to_state: JobState | str,
        *,
        only_from: Collection[JobState] | None = None,
        only_if: Callable[[JobRecord], bool] | None = None,
        **fields: Any,
    ) -> bool:
        """Move a job to ``to_state`` and set ``fields``; ``False`` when the state machine refuses.

        Allowed: ``queued -> running | canceled | failed``, ``running -> running | succeeded |
        failed``; a terminal state never changes, and an unknown job is refused too. Entering
        ``running`` counts an attempt (``running -> running`` is a redelivery) and sets
        ``started_at`` on the first one; entering a terminal state sets ``finished_at``. Fields
        are validated as :class:`JobRecord` fields (``error=JobError(...)``, ``results=[...]``).
        ``only_from`` narrows the allowed source states (``only_from=[QUEUED]``: fail a job
        only if no worker started it). ``only_if`` is checked on the record as it is when written
        (compare-and-set), e.g. "still the attempt I looked at".
        """
        to_state = JobState(to_state)
        unknown = set(fields) - MUTABLE_FIELDS
        if unknown:
            raise TypeError(f"transition cannot set {sorted(unknown)}; settable: {sorted(MUTABLE_FIELDS)}")

        def change(record: JobRecord) -> JobRecord | None:
            if to_state not in ALLOWED_TRANSITIONS.get(record.state, frozenset()):
                return None
            if only_from is not None and record.state not in only_from:
                return None
            if only_if is not None and not only_if(record):
                return None
            now = utcnow()
            data = record.model_dump()
            data.update(fields, state=to_state, updated_at=now)
            if to_state is JobState.RUNNING:
                if "attempts" not in fields:
                    data["attempts"] = record.attempts + 1
                if record.started_at is None and "started_at" not in fields:
                    data["started_at"] = now
            if to_state.terminal and "finished_at" not in fields:
                data["finished_at"] = now
            return JobRecord.model_validate(data)

        allowed = tuple(only_from) if only_from is not None else ()
        return self._mutate(job_id, change, mode="transition", allowed=allowed) is not None

    def set_results(self, job_id: str, results: Sequence[StoredImage]) -> bool:
        """Record stored images while the job runs; ``False`` unless it is ``running``."""

        def change(record: JobRecord) -> JobRecord:
            return record.model_copy(update={"results": list(results), "updated_at": utcnow()})

        return self._mutate(job_id, change, mode="update", allowed=(JobState.RUNNING,)) is not None

    def record_callback(self, job_id: str, event: JobEventType | str, outcome: str) -> bool:
        """Note a delivery outcome (e.g. ``delivered``, ``failed: HTTP 500``) in any state."""
        event = JobEventType(event)

        def change(record: JobRecord) -> JobRecord:
            callbacks = {**record.callbacks, event.value: outcome}
            return record.model_copy(
                update={
                    "callbacks": callbacks,
                    "callback_state": f"{event.value}: {outcome}",
                    "updated_at": utcnow(),
                }
            )

        return self._mutate(job_id, change, mode="update") is not None

    def claim_event(self, job_id: str, event: JobEventType | str) -> bool:
        """``True`` exactly once per job and event: whoever gets it sends that callback.

        A redelivered job, or a second message for the same job, gets ``False`` and must not
        notify again. ``False`` as well for an unknown job.
        """
        field = f"event:{JobEventType(event).value}"
        with redis_errors():
            claimed = self._claim(keys=[self.job_key(job_id)], args=[field, utcnow().isoformat()])
        return int(claimed) == 1

    def event_claimed(self, job_id: str, event: JobEventType | str) -> bool:
        """Whether a callback task has claimed ``event`` of ``job_id`` (it is being sent, or was)."""
        with redis_errors():
            return bool(self.redis.hexists(self.job_key(job_id), f"event:{JobEventType(event).value}"))

    # --- running jobs: the index and the workers' leases ---

    def take_lease(
        self, job_id: str, ttl_s: float, *, holder: str = "worker", only_new: bool = False
    ) -> bool:
        """Hold ``job_id``'s lease for ``ttl_s`` seconds (a worker running it, or the sweeper that
        re-queued it); ``only_new``: only if nobody holds it. ``True`` when taken."""
        with redis_errors():
            taken = self.redis.set(self.lease_key(job_id), holder, px=max(1, int(ttl_s * 1000)), nx=only_new)
        return bool(taken)

    def lease_holder(self, job_id: str) -> str | None:
        """Who holds ``job_id``'s lease now, or ``None`` (expired, or never taken)."""
        with redis_errors():
            holder = self.redis.get(self.lease_key(job_id))
        return None if holder is None else str(holder)

    def release_lease(self, job_id: str, *, holder: str) -> bool:
        """Give ``job_id``'s lease back, only while ``holder`` still holds it."""
        with redis_errors():
            return bool(self._release(keys=[self.lease_key(job_id)], args=[holder]))

    def running_since_before(self, cutoff: datetime, *, limit: int = 100) -> list[str]:
        """Ids of jobs that entered ``running`` before ``cutoff`` (oldest first, at most ``limit``)."""
        with redis_errors():
            ids = self.redis.zrangebyscore(self.running_key(), "-inf", cutoff.timestamp(), start=0, num=limit)
        return [str(job_id) for job_id in ids]

    def forget_running(self, job_id: str) -> None:
        """Drop ``job_id`` from the running index (its record expired, or is no longer running)."""
        with redis_errors():
            self.redis.zrem(self.running_key(), job_id)

    # --- queued jobs: the index the sweeper reads for jobs whose message went missing ---

    def queued_since_before(self, cutoff: datetime, *, limit: int = 100) -> list[str]:
        """Ids of jobs queued (or re-queued by the sweeper) before ``cutoff``, oldest first."""
        with redis_errors():
            ids = self.redis.zrangebyscore(self.queued_key(), "-inf", cutoff.timestamp(), start=0, num=limit)
        return [str(job_id) for job_id in ids]

    def forget_queued(self, job_id: str) -> None:
        """Drop ``job_id`` from the queued index (its record expired, or it left ``queued``)."""
        with redis_errors():
            self.redis.zrem(self.queued_key(), job_id)

    def count_requeue(self, job_id: str) -> int:
        """Note that the sweeper published ``job_id`` again and restart its wait in the queued
        index; returns how many times that has happened (0 when the job is gone)."""
        with redis_errors():
            if not self.redis.exists(self.job_key(job_id)):
                return 0
            pipe = self.redis.pipeline()
            pipe.hincrby(self.job_key(job_id), "requeued", 1)
            pipe.zadd(self.queued_key(), {job_id: time.time()}, xx=True)
            count, _ = pipe.execute()
        return int(count)

    def requeue_count(self, job_id: str) -> int:
        """How many times the sweeper published ``job_id`` again."""
        with redis_errors():
            return int(self.redis.hget(self.job_key(job_id), "requeued") or 0)

    def request_cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job now; any other state comes back unchanged.

        A running job is not interrupted (it ends ``succeeded`` or ``failed``); see
        :func:`cancel_refusal` for the reason to show. Raises :class:`JobNotFound`.
        """
        record = self.require(job_id)
        if record.state is JobState.QUEUED:
            self.transition(job_id, JobState.CANCELED)
            record = self.require(job_id)
        return record

    def release_idempotency_key(self, requester: str, key: str, job_id: str) -> bool:
        """Forget ``key`` if it still names ``job_id`` (a job whose publish failed), so a retry
        with the same key submits again instead of returning the failed job."""
        with redis_errors():
            return bool(self._release(keys=[self.idempotency_key(requester, key)], args=[job_id]))

    def watch(self, job_id: str, *, timeout: float, poll_interval: float = 1.0) -> Iterator[JobRecord]:
        """Yield the record now and on each change, until a terminal state (included).

        Wakes on the change channel, and polls every ``poll_interval`` in case a message was
        missed. Raises :class:`JobNotFound`, or :class:`WatchTimeout` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with redis_errors():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(self.changes_channel(job_id))
        try:
            last: str | None = None
            while True:
                record = self.require(job_id)
                current = record.model_dump_json()
                if current != last:
                    last = current
                    yield record
                if record.state.terminal:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WatchTimeout(record, timeout)
                with redis_errors():
                    pubsub.get_message(timeout=min(remaining, poll_interval))
        finally:
            pubsub.close()

    def _mutate(
        self,
        job_id: str,
        change: Callable[[JobRecord], JobRecord | None],
        *,
        mode: str,
        allowed: Sequence[JobState] = (),
    ) -> JobRecord | None:
        """Read, apply ``change``, write back if nobody wrote in between (else retry)."""
        key = self.job_key(job_id)
        for _ in range(_CAS_ATTEMPTS):
            with redis_errors():
                version, raw = self.redis.hmget(key, ["version", "record"])
            if raw is None:
                return None
            updated = change(JobRecord.model_validate_json(raw))
            if updated is None:
                return None
            args: list[str | int] = [
                str(version),
                updated.state.value,
                updated.model_dump_json(),
                mode,
                " ".join(s.value for s in allowed),
                self.changes_channel(job_id),
                job_id,
                repr(time.time()),
            ]
            keys = [key, self.running_key(), self.lease_key(job_id), self.queued_key()]
            with redis_errors():
                outcome = int(self._mutate_script(keys=keys, args=args))
            if outcome == 1:
                return updated
            if outcome in (0, -1):
                return None
        raise StoreConflict(f"job {job_id} kept changing; gave up after {_CAS_ATTEMPTS} attempts")

    def close(self) -> None:
        self.redis.close()
