"""A job store in memory, for unit tests and benchmarks (as Dramatiq ships its stub broker).

:class:`MemoryJobStore` offers what :class:`core.jobs.store.JobStore` offers, with the same
state machine (it inherits :class:`core.jobs.machine.JobStateMachine` and writes through
:func:`core.jobs.machine.accepts`), the same idempotency, claims, leases and indexes, the
same events (ids are the record's version after the change, at most ``EVENTS_MAX_LEN``), and a
``watch`` and ``wait_events`` woken by each change. ``tests/integration/test_jobs_store.py`` runs the same
assertions on both. Not shared between processes; records and idempotency keys never expire.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from core.contracts.jobs import JobEventType, JobRecord, JobState
from core.jobs.errors import IdempotencyConflict, WatchTimeout
from core.jobs.events import EVENTS_MAX_LEN, StoredEvent, build_event, change_event
from core.jobs.listing import IndexEntry
from core.jobs.machine import Change, JobStateMachine, Mode, accepts, utcnow


class MemoryJobStore(JobStateMachine):
    """Job records in dicts, safe to share between threads.

    Parameters (keyword-only): ``clock``, epoch seconds (default ``time.time``): when leases
    expire and what the running and queued indexes are scored by; tests pass a fixed one.

    ``records`` and ``requests`` are plain dicts by job id, for tests to read.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.records: dict[str, JobRecord] = {}
        self.requests: dict[str, dict[str, Any]] = {}
        self._claims: dict[str, dict[str, str]] = {}
        self._idempotency: dict[tuple[str, str], str] = {}
        self._fingerprints: dict[str, str] = {}
        self._by_requester: dict[str, dict[str, float]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._running: dict[str, float] = {}
        self._queued: dict[str, float] = {}
        self._awaiting_review: dict[str, dict[str, float]] = {}
        self._requeued: dict[str, int] = {}
        self._versions: dict[str, int] = {}
        self._events: dict[str, list[StoredEvent]] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)

    # --- create and read ---

    def create(
        self,
        record: JobRecord,
        idempotency_key: str | None = None,
        *,
        request: Mapping[str, Any] | None = None,
        fingerprint: str | None = None,
    ) -> tuple[str, bool]:
        """Store a new ``queued`` record, as ``JobStore.create``."""
        if record.state is not JobState.QUEUED:
            raise ValueError(f"a new job starts queued, not {record.state}")
        with self._lock:
            if idempotency_key is not None:
                existing = self._idempotency.get((record.requester, idempotency_key))
                if existing is not None and existing in self.records:
                    stored = self._fingerprints.get(existing)
                    if fingerprint and stored and stored != fingerprint:
                        raise IdempotencyConflict(existing)
                    return existing, False
                record = record.model_copy(update={"idempotency_key": idempotency_key})
            if record.job_id in self.records:
                raise ValueError(f"job {record.job_id} already exists")
            self.records[record.job_id] = record
            self.requests[record.job_id] = copy.deepcopy(dict(request or {}))
            self._claims[record.job_id] = {}
            self._versions[record.job_id] = 1
            self._events[record.job_id] = [StoredEvent(1, build_event(record, JobEventType.QUEUED))]
            self._queued[record.job_id] = self.clock()
            self._by_requester.setdefault(record.requester, {})[record.job_id] = self.clock()
            if fingerprint:
                self._fingerprints[record.job_id] = fingerprint
            if idempotency_key is not None:
                self._idempotency[(record.requester, idempotency_key)] = record.job_id
            self._changed.notify_all()
        return record.job_id, True

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            return self.records.get(job_id)

    def recent(self, job_id: str) -> JobRecord | None:
        """``JobStore.recent``: here every read is as cheap, so the current record."""
        with self._lock:
            return self.records.get(job_id)

    def get_request(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            request = self.requests.get(job_id)
        return None if request is None else copy.deepcopy(request)

    def requester_index(
        self, requester: str, *, before: IndexEntry | None = None, count: int = 100
    ) -> list[IndexEntry]:
        """As ``JobStore.requester_index``: newest first, strictly after ``before``."""
        with self._lock:
            index = self._by_requester.get(requester, {})
            entries = sorted((IndexEntry(score, job_id) for job_id, score in index.items()), reverse=True)
        if before is not None:
            entries = [entry for entry in entries if entry.comes_after(before)]
        return entries[:count]

    def awaiting_review_index(
        self, requester: str, *, after: IndexEntry | None = None, count: int = 100
    ) -> list[IndexEntry]:
        """As ``JobStore.awaiting_review_index``: oldest first, strictly after ``after``."""
        with self._lock:
            index = self._awaiting_review.get(requester, {})
            entries = sorted(IndexEntry(score, job_id) for job_id, score in index.items())
        return [entry for entry in entries if after is None or entry > after][:count]

    def forget_awaiting_review(self, requester: str, job_id: str) -> None:
        with self._lock:
            self._awaiting_review.get(requester, {}).pop(job_id, None)

    def find_by_idempotency_key(self, requester: str, key: str) -> str | None:
        with self._lock:
            return self._idempotency.get((requester, key))

    def release_idempotency_key(self, requester: str, key: str, job_id: str) -> bool:
        with self._lock:
            if self._idempotency.get((requester, key)) != job_id:
                return False
            del self._idempotency[(requester, key)]
            return True

    def erase(self, job_id: str) -> bool:
        """As ``JobStore.erase``: the record, request, claims, lease, index entries and the
        idempotency key while it still names this job; ``True`` when the record was there."""
        with self._lock:
            record = self.records.pop(job_id, None)
            tables: tuple[dict[str, Any], ...] = (
                self.requests,
                self._claims,
                self._fingerprints,
                self._leases,
                self._versions,
                self._events,
            )
            for table in tables:
                table.pop(job_id, None)
            for index in (self._running, self._queued, self._requeued):
                index.pop(job_id, None)
            for jobs in (*self._by_requester.values(), *self._awaiting_review.values()):
                jobs.pop(job_id, None)
            for scoped_key in [k for k, named in self._idempotency.items() if named == job_id]:
                del self._idempotency[scoped_key]
            self._changed.notify_all()
        return record is not None

    # --- callback claims ---

    def claim_event(self, job_id: str, event: JobEventType | str) -> bool:
        field = JobEventType(event).value
        with self._lock:
            claims = self._claims.get(job_id)
            if claims is None or field in claims:
                return False
            claims[field] = utcnow().isoformat()
            return True

    def event_claimed(self, job_id: str, event: JobEventType | str) -> bool:
        with self._lock:
            return JobEventType(event).value in self._claims.get(job_id, {})

    def claim_and_read(
        self, job_id: str, event: JobEventType | str, *, claim: bool = True
    ) -> tuple[bool, JobRecord | None, dict[str, Any] | None]:
        """As ``JobStore.claim_and_read``: claim (or look), record and request."""
        claimed = self.claim_event(job_id, event) if claim else self.event_claimed(job_id, event)
        return claimed, self.get(job_id), self.get_request(job_id)

    # --- changes ---

    def write_change(
        self, job_id: str, change: Change, *, mode: Mode, only_from: Sequence[JobState] = ()
    ) -> JobRecord | None:
        with self._lock:
            record = self.records.get(job_id)
            updated = None if record is None else change(record)
            if record is None or updated is None:
                return None
            if not accepts(record.state, updated.state, mode=mode, only_from=only_from):
                return None
            self.records[job_id] = updated
            self._follow_state(updated, mode)
            version = self._versions[job_id] = self._versions.get(job_id, 0) + 1
            if mode is Mode.TRANSITION:
                events = self._events.setdefault(job_id, [])
                events.append(StoredEvent(version, change_event(updated)))
                del events[:-EVENTS_MAX_LEN]
            self._changed.notify_all()
            return updated

    def events(self, job_id: str, *, after: int = 0) -> list[StoredEvent]:
        """As ``JobStore.events``: the events with an id above ``after``, oldest first."""
        with self._lock:
            return [event for event in self._events.get(job_id, []) if event.id > after]

    def wait_events(self, job_id: str, *, after: int = 0, timeout: float) -> list[StoredEvent]:
        """As ``JobStore.wait_events``: those events, or up to ``timeout`` s for the next."""
        with self._changed:
            self._changed.wait_for(lambda: self.events(job_id, after=after), timeout)
            return self.events(job_id, after=after)

    def _follow_state(self, record: JobRecord, mode: Mode) -> None:
        """The indexes and the lease after a write, as ``scripts/write_change.lua`` keeps them."""
        job_id, state = record.job_id, record.state
        awaiting = self._awaiting_review.setdefault(record.requester, {})
        if state is not JobState.AWAITING_REVIEW:
            awaiting.pop(job_id, None)
        elif mode is Mode.TRANSITION:
            awaiting[job_id] = self.clock()
        if state is not JobState.QUEUED:
            self._queued.pop(job_id, None)
        if state is JobState.RUNNING:
            if mode is Mode.TRANSITION:
                self._running[job_id] = self.clock()
        else:
            self._running.pop(job_id, None)
            self._leases.pop(job_id, None)

    def watch(self, job_id: str, *, timeout: float, poll_interval: float = 1.0) -> Iterator[JobRecord]:
        """As ``JobStore.watch``: the record now and on each change, until a terminal state."""
        deadline = time.monotonic() + timeout
        last: JobRecord | None = None
        while True:
            record = self.require(job_id)
            if record != last:
                last = record
                yield record
            if record.state.terminal:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WatchTimeout(record, timeout)
            with self._changed:
                if self.records.get(job_id) == last:
                    self._changed.wait(min(remaining, poll_interval))

    # --- leases and indexes (what the sweeper reads) ---

    def start_attempt(
        self, job_id: str, *, only_from: JobState, lease_s: float, holder: str = "worker"
    ) -> bool:
        """``JobStore.start_attempt``: ``running`` from ``only_from``, then the lease."""
        started = self.transition(job_id, JobState.RUNNING, only_from=[only_from])
        if started:
            self.take_lease(job_id, lease_s, holder=holder)
        return started

    def take_lease(
        self, job_id: str, ttl_s: float, *, holder: str = "worker", only_new: bool = False
    ) -> bool:
        with self._lock:
            if only_new and self.lease_holder(job_id) is not None:
                return False
            self._leases[job_id] = (holder, self.clock() + max(0.001, ttl_s))
            return True

    def lease_holder(self, job_id: str) -> str | None:
        with self._lock:
            lease = self._leases.get(job_id)
            if lease is None or lease[1] <= self.clock():
                return None
            return lease[0]

    def lease_ttl(self, job_id: str) -> float | None:
        """Seconds left on ``job_id``'s lease, or ``None`` (tests check how long a worker holds it)."""
        with self._lock:
            lease = self._leases.get(job_id)
            return None if lease is None else lease[1] - self.clock()

    def release_lease(self, job_id: str, *, holder: str) -> bool:
        with self._lock:
            if self.lease_holder(job_id) != holder:
                return False
            del self._leases[job_id]
            return True

    def running_since_before(self, cutoff: datetime, *, limit: int = 100) -> list[str]:
        with self._lock:
            return _oldest(self._running, cutoff, limit)

    def forget_running(self, job_id: str) -> None:
        with self._lock:
            self._running.pop(job_id, None)

    def queued_since_before(self, cutoff: datetime, *, limit: int = 100) -> list[str]:
        with self._lock:
            return _oldest(self._queued, cutoff, limit)

    def forget_queued(self, job_id: str) -> None:
        with self._lock:
            self._queued.pop(job_id, None)

    def count_requeue(self, job_id: str) -> int:
        with self._lock:
            if job_id not in self.records:
                return 0
            self._requeued[job_id] = self._requeued.get(job_id, 0) + 1
            if job_id in self._queued:
                self._queued[job_id] = self.clock()
            return self._requeued[job_id]

    def requeue_count(self, job_id: str) -> int:
        with self._lock:
            return self._requeued.get(job_id, 0)

    def close(self) -> None:
        """Nothing to close; here so that it stands wherever a ``JobStore`` does."""


def _oldest(index: Mapping[str, float], cutoff: datetime, limit: int) -> list[str]:
    """Ids scored at or before ``cutoff``, oldest first, at most ``limit`` (``ZRANGEBYSCORE``)."""
    entries = sorted((score, job_id) for job_id, score in index.items() if score <= cutoff.timestamp())
    return [job_id for _, job_id in entries[:limit]]
