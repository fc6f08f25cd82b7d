"""Keep a listing backlog from slowing the interactive path: the priority a Triton request
carries, and the wait a backfill request makes while a try-on is being served.

Try-ons and listings have their own queues and worker pools but share the CPU and Triton: a
try-on's garment comes from ``product_cgan``, the model a listing backfill keeps busy. Two
measures, both measured in ``bench/perf/backlog.py``:

- **Priority in Triton.** Every model's dynamic batcher keeps ``priorities.LEVELS`` levels
  (``training/export.py`` writes them); a request made while an interactive task runs is sent at
  ``priorities.INTERACTIVE`` and overtakes whatever backfill is queued in that model; any other
  is ``priorities.BULK``, as a request that names no priority would be.
- **Admission of backfill.** While an interactive request is in flight anywhere (and for
  ``tail_s`` after it, the try-on's encode and upload), a bulk request waits before it is sent,
  at most ``max_wait_s``, so the backlog gives the CPU to the try-on instead of competing for it.
  Which interactive requests are in flight is shared by every worker process through Redis
  (:class:`RedisInFlight`, scored by Redis's own clock, so hosts need no common clock).

The running task is Celery's own ``current_task`` (kept per thread), so this holds for the
prefork and the threads pool alike, and the job code does not pass the priority around.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import redis
from celery import current_task

from core.jobs.connection import redis_client
from core.topology import TRYON_TASK
from core.worker_settings import WorkerSettings
from serving_contract import priorities

log = logging.getLogger(__name__)

#: the tasks a person waits for: their Triton requests are sent at ``priorities.INTERACTIVE``
INTERACTIVE_TASKS = frozenset({TRYON_TASK})
#: seconds a try-on still counts as in flight after its last model call (encode, upload, record)
TAIL_S = 0.05
#: the longest a bulk request waits for interactive work, so a busy try-on path never stops the
#: backfill altogether
MAX_WAIT_S = 1.0
#: seconds between two looks while a bulk request waits
POLL_S = 0.005
#: seconds after a task's look found no interactive work in flight during which that task's
#: next bulk requests go without looking again: a listing job looks before its generator call,
#: and its judge call (and any remake) follows within this, so one look per job instead of two,
#: one Redis round trip fewer (issue 15); a try-on starting meanwhile waits behind at most that
#: job's judge batch, which its own higher priority in Triton overtakes anyway
RECHECK_S = 0.5


def request_priority(task_name: str | None = None) -> int:
    """The Triton priority of a request made now (``task_name``: default the running task's)."""
    name = task_name if task_name is not None else running_task_name()
    return priorities.INTERACTIVE if name in INTERACTIVE_TASKS else priorities.BULK


def running_task_name() -> str | None:
    """The name of the Celery task this thread is running, ``None`` outside a task."""
    name = getattr(current_task, "name", None)
    return name if isinstance(name, str) else None


def running_task_id() -> str | None:
    """The id of the Celery task this thread is running, ``None`` outside a task."""
    task_id = getattr(getattr(current_task, "request", None), "id", None)
    return task_id if isinstance(task_id, str) else None


class InFlight(Protocol):
    """The interactive work in flight, shared by every worker: a member per try-on, each held
    until a time it sets."""

    def hold(self, member: str, seconds: float) -> None:
        """Count ``member`` as in flight for ``seconds`` from now (replacing its earlier time)."""

    def count(self) -> int:
        """How many members are in flight now."""


#: ZADD with the server's clock: KEYS[1] the set, ARGV[1] the member, ARGV[2] seconds from now
_HOLD = """
local now = redis.call('TIME')
local expires = tonumber(now[1]) + tonumber(now[2]) / 1e6 + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], expires, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 60000)
return 1
"""
#: drop the members whose time passed, count the rest: KEYS[1] the set
_COUNT = """
local now = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(now[1]) + tonumber(now[2]) / 1e6)
return redis.call('ZCARD', KEYS[1])
"""


class RedisInFlight:
    """:class:`InFlight` as a sorted set ``{redis_key_prefix}interactive`` in the status store's
    Redis, each member scored by the Redis time it is held until (the set itself expires a minute
    after its last hold, so nothing is left behind)."""

    def __init__(self, settings: WorkerSettings, *, client: redis.Redis | None = None) -> None:
        self.key = f"{settings.redis_key_prefix}interactive"
        self._client = client if client is not None else redis_client(settings)
        self._hold = self._client.register_script(_HOLD)
        self._count = self._client.register_script(_COUNT)

    def hold(self, member: str, seconds: float) -> None:
        self._hold(keys=[self.key], args=[member, seconds])

    def count(self) -> int:
        return int(self._count(keys=[self.key]))


class MemoryInFlight:
    """:class:`InFlight` in this process's memory, for tests; ``clock`` default ``time.monotonic``."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.until: dict[str, float] = {}
        self._clock = clock

    def hold(self, member: str, seconds: float) -> None:
        self.until[member] = self._clock() + seconds

    def count(self) -> int:
        now = self._clock()
        return sum(1 for until in self.until.values() if until > now)


class Backpressure:
    """Wraps each Triton request: gives its priority, and holds back a bulk one while
    interactive work is in flight.

    Parameters: ``in_flight`` (shared state: :class:`RedisInFlight` in workers); keyword-only
    ``call_s`` (how long an interactive call is held at most if its process dies mid-call,
    default 30), ``tail_s`` (default :data:`TAIL_S`), ``max_wait_s`` (default
    :data:`MAX_WAIT_S`, 0: never wait), ``poll_s`` (default :data:`POLL_S`), ``recheck_s``
    (default :data:`RECHECK_S`, 0: look before every bulk request; only within the same Celery
    task: outside one, every request looks), ``clock`` and ``sleep``
    (default ``time.monotonic`` and ``time.sleep``; tests pass their own).

    A failure of the shared state never fails a job: the request goes out unheld, and the
    failure is logged once per process.
    """

    def __init__(
        self,
        in_flight: InFlight,
        *,
        call_s: float = 30.0,
        tail_s: float = TAIL_S,
        max_wait_s: float = MAX_WAIT_S,
        poll_s: float = POLL_S,
        recheck_s: float = RECHECK_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.in_flight = in_flight
        self.call_s, self.tail_s, self.max_wait_s, self.poll_s = call_s, tail_s, max_wait_s, poll_s
        self.recheck_s = recheck_s
        self._clock, self._sleep = clock, sleep
        self._warned = False
        #: per thread: the task whose last look found no interactive work in flight, and when
        self._clear = threading.local()

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> Backpressure:
        """Shared through the status store's Redis; the call bound is ``triton_timeout_s``."""
        return cls(RedisInFlight(settings), call_s=settings.triton_timeout_s)

    @contextmanager
    def request(self) -> Iterator[int]:
        """The block sends one Triton request at the priority this yields."""
        priority = request_priority()
        if priority != priorities.INTERACTIVE:
            self.wait_for_interactive()
            yield priority
            return
        member = running_task_id() or uuid.uuid4().hex
        self._guarded(lambda: self.in_flight.hold(member, self.call_s))
        try:
            yield priority
        finally:
            self._guarded(lambda: self.in_flight.hold(member, self.tail_s))

    def wait_for_interactive(self) -> float:
        """Wait while interactive work is in flight, at most ``max_wait_s``; the seconds waited.
        No look at all within ``recheck_s`` of the running task's last look that found none."""
        start = self._clock()
        task = running_task_id()
        last: tuple[str, float] | None = getattr(self._clear, "last", None)
        if task is not None and last is not None and last[0] == task and start - last[1] < self.recheck_s:
            return 0.0
        while self._clock() - start < self.max_wait_s:
            if not self._guarded(self.in_flight.count):
                self._clear.last = (task, self._clock()) if task is not None else None
                break
            self._sleep(self.poll_s)
        return self._clock() - start

    def _guarded(self, action: Callable[[], int | None]) -> int:
        try:
            return action() or 0
        except redis.RedisError as error:
            if not self._warned:
                log.warning("backpressure off while its Redis fails: %r", error)
                self._warned = True
            return 0
