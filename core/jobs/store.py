"""The job status store (Redis) that producer, worker and CLI share: records and their state
machine (``core.jobs.machine``), with the sweeper's leases and indexes (``core.jobs.leases``).

Every state change is one Lua script (``scripts/write_change.lua``) that compares the record's
``version`` and checks the state machine before it writes, so two writers never overwrite each
other's fields; a writer whose compare failed reads again and retries. Creation with an
idempotency key is one script too (``scripts/create.lua``). Every change is announced on the
job's change channel, so :meth:`JobStore.watch` wakes at once, and each state change appends
its event to the job's stream in the same script (``core.jobs.events``), which
:meth:`JobStore.events` reads and :meth:`JobStore.wait_events` blocks on (``XREAD BLOCK``).
Key names: ``core.jobs.keys``.

A successful listing job costs seven round trips: the start's read and its write, which takes
the lease too (:meth:`JobStore.start_attempt`); two cancel checks (:meth:`JobStore.get`); the
success's write, which also brings back what the inline callback attempt reads
(``core.jobs.recent``); the callback's claim and its outcome. Each thread sends its commands on
a connection of its own (``core.jobs.connection.ThreadClients``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import redis
from redis.commands.core import Script

from core.contracts.jobs import EVENT_FOR_STATE, JobEventType, JobRecord, JobState
from core.jobs.admission import REFUSED, Admission, AdmissionRefused, with_admission
from core.jobs.connection import lua_script, redis_client, redis_errors
from core.jobs.errors import IdempotencyConflict, StoreConflict, WatchTimeout
from core.jobs.events import (
    EVENTS_MAX_LEN,
    StoredEvent,
    build_event,
    change_event,
    parse_entries,
    parse_read,
    stream_id,
)
from core.jobs.keys import JobKeys
from core.jobs.leases import JobLeases
from core.jobs.listing import IndexEntry
from core.jobs.machine import ALLOWED_TRANSITIONS_ARG, Change, JobStateMachine, Mode, transitioned, utcnow
from core.jobs.recent import Peek, RecentRecords
from core.settings import AtelierSettings

#: compare-and-set retries when another writer changed the record between read and write
CAS_ATTEMPTS = 20


def created_outcome(job_id: Any, outcome: Any) -> tuple[str, bool]:
    """``(job_id, created)`` from the create script's reply; raises :class:`IdempotencyConflict`."""
    if int(outcome) == -1:
        raise IdempotencyConflict(str(job_id))
    return str(job_id), int(outcome) == 1


class JobStore(JobStateMachine, JobLeases):
    """Job records in Redis: create with idempotency, read, state transitions, callback claims,
    watch; and (from :class:`JobLeases`) the leases and indexes the sweeper reads.

    Parameters (keyword-only besides ``settings``):

    - ``client``: a ``redis.Redis`` to use (it must decode responses); default one built from
      ``settings.redis_url`` with ``settings.redis_timeout_s`` as connect and reply timeout.

    Reads from settings: ``redis_key_prefix`` (default ``atelier:``), ``job_record_ttl_s`` and
    ``idempotency_ttl_s``. Redis failures raise ``StoreUnavailable``.
    """

    def __init__(self, settings: AtelierSettings, *, client: redis.Redis | None = None) -> None:
        client = client if client is not None else redis_client(settings)
        JobLeases.__init__(self, client, JobKeys(settings.redis_key_prefix))
        self.settings = settings
        self._create = client.register_script(lua_script("create"))
        self._write_change = client.register_script(lua_script("write_change"))
        self._claim = client.register_script(lua_script("claim_event"))
        self._claim_read = client.register_script(lua_script("claim_event_read"))  # claim_and_read
        self._release_idempotency_key = client.register_script(lua_script("release_idempotency_key"))
        self._erase = client.register_script(lua_script("erase"))
        #: the create script with an admission's function in its hook, by the function's text
        self._admitted_creates: dict[str, Script] = {}  # the admission hook (core.jobs.admission)
        #: what this thread last read or wrote per job: a write's first guess (core.jobs.recent)
        self._recent = RecentRecords()

    # --- create and read ---

    def create(
        self,
        record: JobRecord,
        idempotency_key: str | None = None,
        *,
        request: Mapping[str, Any] | None = None,
        fingerprint: str | None = None,
        admission: Admission | None = None,
    ) -> tuple[str, bool]:
        """Store a new ``queued`` record; ``(job_id, True)``, or ``(existing_id, False)``.

        With an idempotency key (scoped to ``record.requester``) that already names a live job,
        nothing is written and that job's id comes back; if both that job and this call carry a
        request ``fingerprint`` and they differ, :class:`IdempotencyConflict` is raised instead.
        The job joins its requester's index (:meth:`requester_index`). Key check and write are
        one Lua script; an ``admission`` (``core.jobs.admission``) runs in it too, before any
        write, and is handed its answer: a refusal raises (its own error, else
        :class:`AdmissionRefused`) with nothing of the job written.
        """
        keys, args = self.create_arguments(record, idempotency_key, request=request, fingerprint=fingerprint)
        if admission is not None:
            return self._create_admitted(keys, args, admission)
        with redis_errors():
            job_id, outcome = self._create(keys=keys, args=args, client=self.redis)
        return created_outcome(job_id, outcome)

    # --- the admission hook (core.jobs.admission) ---

    def _create_admitted(
        self, keys: list[str], args: list[str | int], admission: Admission
    ) -> tuple[str, bool]:
        """:meth:`create` with ``admission`` in the same script (one round trip)."""
        script = self._admitted_creates.get(admission.script)
        if script is None:
            script = self._clients.shared.register_script(
                with_admission(lua_script("create"), admission.script)
            )
            self._admitted_creates[admission.script] = script
        with redis_errors():
            job_id, outcome, answer = script(
                keys=[*keys, *admission.keys], args=[*args, len(keys), *admission.args], client=self.redis
            )
        admission.answered([int(value) for value in answer])
        if int(outcome) == REFUSED:
            raise AdmissionRefused(answer)
        return created_outcome(job_id, outcome)

    # --- end of the admission hook ---

    def create_arguments(
        self,
        record: JobRecord,
        idempotency_key: str | None = None,
        *,
        request: Mapping[str, Any] | None = None,
        fingerprint: str | None = None,
    ) -> tuple[list[str], list[str | int]]:
        """The keys and arguments of :meth:`create`'s script (``scripts/create.lua``), shared with
        its asyncio twin (``core.jobs.store_async``)."""
        if record.state is not JobState.QUEUED:
            raise ValueError(f"a new job starts queued, not {record.state}")
        keys = [
            self.keys.job(record.job_id),
            self.keys.queued(),
            self.keys.requester(record.requester),
            self.keys.events(record.job_id),
        ]
        if idempotency_key is not None:
            keys.append(self.keys.idempotency(record.requester, idempotency_key))
            record = record.model_copy(update={"idempotency_key": idempotency_key})
        args: list[str | int] = [
            record.job_id,
            record.model_dump_json(),
            json.dumps(request if request is not None else {}),
            self.settings.job_record_ttl_s,
            self.settings.idempotency_ttl_s,
            self.keys.job(""),
            self.keys.changes(record.job_id),
            repr(time.time()),
            fingerprint or "",
            build_event(record, JobEventType.QUEUED).model_dump_json(),
            EVENTS_MAX_LEN,
        ]
        return keys, args

    def get(self, job_id: str) -> JobRecord | None:
        current = self._version_and_record(job_id)
        if current is None:
            return None
        self._recent.remember(job_id, *current)
        return JobRecord.model_validate_json(current[1])

    def _version_and_record(self, job_id: str) -> tuple[str, str] | None:
        with redis_errors():
            version, raw = self.redis.hmget(self.keys.job(job_id), ["version", "record"])
        return None if raw is None else (str(version), str(raw))

    def recent(self, job_id: str) -> JobRecord | None:
        """The record as this thread last read or wrote it (no round trip), or ``None``: for what
        may lag behind other writers, such as the metrics of a job this thread just ended."""
        remembered = self._recent.peek(job_id)
        return None if remembered is None else JobRecord.model_validate_json(remembered[1])

    def get_request(self, job_id: str) -> dict[str, Any] | None:
        """The request as submitted (JSON mode), for the worker and for replays."""
        with redis_errors():
            raw = self.redis.hget(self.keys.job(job_id), "request")
        return None if raw is None else json.loads(raw)

    def requester_index(
        self, requester: str, *, before: IndexEntry | None = None, count: int = 100
    ) -> list[IndexEntry]:
        """Up to ``count`` of the requester's jobs, newest first, strictly after ``before`` in
        that order (ties on the creation time are ordered by job id, descending)."""
        key = self.keys.requester(requester)
        top: str = "+inf" if before is None else repr(before.created)
        entries: list[IndexEntry] = []
        offset = 0
        while len(entries) < count:
            with redis_errors():
                page: list[tuple[str, float]] = self.redis.zrevrangebyscore(  # type: ignore[assignment]
                    key, top, "-inf", start=offset, num=count, withscores=True
                )
            entries.extend(
                entry
                for entry in (IndexEntry(float(score), str(job_id)) for job_id, score in page)
                if before is None or entry.comes_after(before)
            )
            if len(page) < count:
                break
            offset += len(page)
        return entries[:count]

    def awaiting_review_index(
        self, requester: str, *, after: IndexEntry | None = None, count: int = 100
    ) -> list[IndexEntry]:
        """Up to ``count`` of the requester's jobs awaiting review, oldest first (scored by when
        each entered that state), strictly after ``after`` in that order (ties by job id)."""
        key = self.keys.awaiting_review(requester)
        bottom: str = "-inf" if after is None else repr(after.created)
        entries: list[IndexEntry] = []
        offset = 0
        while len(entries) < count:
            with redis_errors():
                page: list[tuple[str, float]] = self.redis.zrangebyscore(  # type: ignore[assignment]
                    key, bottom, "+inf", start=offset, num=count, withscores=True
                )
            entries.extend(
                entry
                for entry in (IndexEntry(float(score), str(job_id)) for job_id, score in page)
                if after is None or entry > after
            )
            if len(page) < count:
                break
            offset += len(page)
        return entries[:count]

    def forget_awaiting_review(self, requester: str, job_id: str) -> None:
        """Drop a job from its requester's review index (one whose record expired)."""
        with redis_errors():
            self.redis.zrem(self.keys.awaiting_review(requester), job_id)

    def find_by_idempotency_key(self, requester: str, key: str) -> str | None:
        with redis_errors():
            job_id = self.redis.get(self.keys.idempotency(requester, key))
        return None if job_id is None else str(job_id)

    def release_idempotency_key(self, requester: str, key: str, job_id: str) -> bool:
        """Forget ``key`` if it still names ``job_id`` (a job whose publish failed), so a retry
        with the same key submits again instead of returning the failed job."""
        with redis_errors():
            released = self._release_idempotency_key(
                keys=[self.keys.idempotency(requester, key)], args=[job_id], client=self.redis
            )
        return bool(released)

    def erase(self, job_id: str) -> bool:
        """Forget the job as if it never was (a shopper's right to erasure): its record and
        request, its event stream and lease, its entries in every index, and its idempotency key
        while that still names it. ``True`` when the record was there. One Lua script
        (``scripts/erase.lua``); the caller stops the job first (a running job's worker would
        find no record and drop it, but may already have stored objects)."""
        record = self.get(job_id)
        requester = record.requester if record is not None else None
        idempotency_key = record.idempotency_key if record is not None else None
        job = self.keys.job(job_id)
        keys = [
            job,
            self.keys.queued(),
            self.keys.running(),
            self.keys.requester(requester) if requester is not None else job,
            self.keys.idempotency(requester, idempotency_key)
            if requester is not None and idempotency_key is not None
            else job,
            self.keys.lease(job_id),
            self.keys.events(job_id),
        ]
        self._recent.forget(job_id)
        with redis_errors():
            existed = self._erase(keys=keys, args=[job_id, self.keys.changes(job_id)], client=self.redis)
        return int(existed) == 1

    # --- callback claims ---

    def claim_event(self, job_id: str, event: JobEventType | str) -> bool:
        """``True`` exactly once per job and event: whoever gets it sends that callback.

        A redelivered job, or a second message for the same job, gets ``False`` and must not
        notify again. ``False`` as well for an unknown job.
        """
        field = f"event:{JobEventType(event).value}"
        with redis_errors():
            claimed = self._claim(
                keys=[self.keys.job(job_id)], args=[field, utcnow().isoformat()], client=self.redis
            )
        return int(claimed) == 1

    def event_claimed(self, job_id: str, event: JobEventType | str) -> bool:
        """Whether a callback task has claimed ``event`` of ``job_id`` (it is being sent, or was)."""
        with redis_errors():
            return bool(self.redis.hexists(self.keys.job(job_id), f"event:{JobEventType(event).value}"))

    # --- a callback attempt's read (worker.notifications) ---

    def claim_and_read(
        self, job_id: str, event: JobEventType | str, *, claim: bool = True
    ) -> tuple[bool, JobRecord | None, dict[str, Any] | None]:
        """``(claimed, record, request)`` in one round trip: :meth:`claim_event` (``claimed``:
        this call took the claim), or with ``claim=False`` :meth:`event_claimed` (``claimed``:
        someone holds it); with :meth:`get` and :meth:`get_request`. An unknown job is
        ``(False, None, None)``."""
        field = f"event:{JobEventType(event).value}"
        peeked = None if claim else self._recent.take_peek(job_id, field)
        if peeked is not None:  # this thread's terminal transition just looked (core.jobs.recent)
            _, raw, peek = peeked
            request = None if peek.request is None else json.loads(peek.request)
            return peek.claimed, JobRecord.model_validate_json(raw), request
        args = [field, utcnow().isoformat(), "1" if claim else "0"]
        with redis_errors():
            reply = self._claim_read(keys=[self.keys.job(job_id)], args=args, client=self.redis)
        if int(reply[0]) == -1 or reply[2] is None:
            return False, None, None
        claimed, version, raw, request = reply
        self._recent.remember(job_id, str(version), str(raw))
        record = JobRecord.model_validate_json(raw)
        return int(claimed) == 1, record, None if request is None else json.loads(request)

    # --- end of a callback attempt's read ---

    # --- changes ---

    def watch(self, job_id: str, *, timeout: float, poll_interval: float = 1.0) -> Iterator[JobRecord]:
        """Yield the record now and on each change, until a terminal state (included).

        Wakes on the change channel, and polls every ``poll_interval`` in case a message was
        missed. Raises ``JobNotFound``, or :class:`WatchTimeout` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with redis_errors():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(self.keys.changes(job_id))
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

    def events(self, job_id: str, *, after: int = 0) -> list[StoredEvent]:
        """The job's recorded events with an id above ``after``, oldest first (none for an
        unknown or expired job)."""
        with redis_errors():
            entries = self.redis.xrange(self.keys.events(job_id), min=f"({stream_id(after)}")
        return parse_entries(entries)

    def wait_events(self, job_id: str, *, after: int = 0, timeout: float) -> list[StoredEvent]:
        """Like :meth:`events`, but when there are none yet, wait up to ``timeout`` seconds for
        the next (``XREAD BLOCK``; ``[]`` if none came). ``timeout`` must stay below the
        client's reply timeout (``redis_timeout_s``), or the read fails as unavailable."""
        block_ms = max(1, round(timeout * 1000))
        with redis_errors():
            reply = self.redis.xread({self.keys.events(job_id): stream_id(after)}, block=block_ms)
        return parse_read(reply)

    def write_change(
        self, job_id: str, change: Change, *, mode: Mode, only_from: Sequence[JobState] = ()
    ) -> JobRecord | None:
        """Read, apply ``change``, write back if nobody wrote in between (else retry). The first
        read may be the record this thread last saw (``core.jobs.recent``): the script's version
        check stands for the read, and a refusal on it is checked again on a fresh one."""
        return self._write(job_id, change, mode=mode, only_from=only_from)

    def start_attempt(
        self, job_id: str, *, only_from: JobState, lease_s: float, holder: str = "worker"
    ) -> bool:
        """Move the job to ``running`` from ``only_from`` (``queued``: its first attempt;
        ``running``: a redelivery) and hold its lease for ``lease_s`` seconds
        (:meth:`take_lease`), in the same write: a started attempt is never without its lease,
        and a refused one takes none. ``False`` when refused."""

        def change(record: JobRecord) -> JobRecord | None:
            return transitioned(record, JobState.RUNNING, {}, only_from=[only_from])

        lease = (max(1, int(lease_s * 1000)), holder)
        return (
            self._write(job_id, change, mode=Mode.TRANSITION, only_from=(only_from,), lease=lease) is not None
        )

    def _write(
        self,
        job_id: str,
        change: Change,
        *,
        mode: Mode,
        only_from: Sequence[JobState] = (),
        lease: tuple[int, str] | None = None,
    ) -> JobRecord | None:
        """:meth:`write_change`; ``lease``: ``(ttl ms, holder)`` of the lease a transition to
        ``running`` takes. A terminal transition peeks at its event's claim (``core.jobs.recent``)."""
        key = self.keys.job(job_id)
        remembered = self._recent.take(job_id)
        for _ in range(CAS_ATTEMPTS):
            guessed = remembered is not None
            current = remembered if remembered is not None else self._version_and_record(job_id)
            remembered = None
            if current is None:
                return None
            version, raw = current
            updated = change(JobRecord.model_validate_json(raw))
            if updated is None:
                if guessed:
                    continue
                return None
            record_json = updated.model_dump_json()
            peek = (
                f"event:{EVENT_FOR_STATE[updated.state].value}"
                if mode is Mode.TRANSITION and updated.state.terminal
                else ""
            )
            args: list[str | int] = [
                str(version),
                updated.state.value,
                record_json,
                mode.value,
                " ".join(s.value for s in only_from),
                self.keys.changes(job_id),
                job_id,
                repr(time.time()),
                ALLOWED_TRANSITIONS_ARG if mode is Mode.TRANSITION else "",
                change_event(updated).model_dump_json() if mode is Mode.TRANSITION else "",
                EVENTS_MAX_LEN,
                *(lease if lease is not None else ("", "")),
                peek,
            ]
            keys = [
                key,
                self.keys.running(),
                self.keys.lease(job_id),
                self.keys.queued(),
                self.keys.events(job_id),
                self.keys.awaiting_review(updated.requester),
            ]
            with redis_errors():
                reply = self._write_change(keys=keys, args=args, client=self.redis)
            if isinstance(reply, list):  # written, with the peek asked for
                claimed, request = reply[1], reply[2]
                seen = Peek(peek, int(claimed) == 1, None if request is None else str(request))
                self._recent.remember(job_id, str(int(version) + 1), record_json, seen)
                return updated
            outcome = int(reply)
            if outcome == 1:
                self._recent.remember(job_id, str(int(version) + 1), record_json)
                return updated
            if outcome in (0, -1):
                return None
        raise StoreConflict(f"job {job_id} kept changing; gave up after {CAS_ATTEMPTS} attempts")

    def close(self) -> None:
        self._clients.close()
