"""The job status store that producer, worker and CLI share.

- ``machine``: the state machine's rules, shared by every store;
- ``store``: :class:`JobStore`, records and their changes in Redis (``scripts/*.lua``);
- ``leases``: the workers' leases and the running and queued indexes the sweeper reads;
- ``listing``: one requester's jobs a page at a time (the per-requester index, cursors);
- ``memory``: :class:`MemoryJobStore`, the same behaviour in memory, for tests and benchmarks;
- ``events``: the event each state change records (:class:`StoredEvent`), as callbacks send it;
- ``follower``: :class:`JobEventFollower`, reading a job's events from an event loop (the API);
- ``errors``, ``keys``, ``connection``: typed failures, Redis key names, the Redis client.
"""

from core.jobs.connection import redis_client, redis_errors
from core.jobs.errors import (
    IdempotencyConflict,
    JobNotFound,
    StoreConflict,
    StoreError,
    StoreUnavailable,
    WatchTimeout,
)
from core.jobs.events import StoredEvent
from core.jobs.follower import JobEventFollower
from core.jobs.listing import IndexEntry, InvalidCursor, JobPage, list_jobs
from core.jobs.machine import ALLOWED_TRANSITIONS, MUTABLE_FIELDS, cancel_pending, cancel_refusal, utcnow
from core.jobs.memory import MemoryJobStore
from core.jobs.store import JobStore

__all__ = [
    "ALLOWED_TRANSITIONS",
    "MUTABLE_FIELDS",
    "IdempotencyConflict",
    "IndexEntry",
    "InvalidCursor",
    "JobEventFollower",
    "JobNotFound",
    "JobPage",
    "JobStore",
    "MemoryJobStore",
    "StoreConflict",
    "StoreError",
    "StoreUnavailable",
    "StoredEvent",
    "WatchTimeout",
    "cancel_pending",
    "cancel_refusal",
    "list_jobs",
    "redis_client",
    "redis_errors",
    "utcnow",
]
