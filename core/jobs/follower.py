"""Following a job's event stream from an event loop, holding no thread while it waits.

The HTTP API streams events to browsers (``GET /v1/jobs/{id}/events``) and holds submits open
for ``Prefer: wait``; each such request spends most of its life waiting for the next change. A
blocking read in a thread would hold one of the server's few worker threads per waiting
client, so :class:`JobEventFollower` reads the stream :class:`core.jobs.store.JobStore` writes
(``core.jobs.events``) with ``redis.asyncio`` and ``XREAD BLOCK``: a waiting client costs one
Redis connection and no thread. The change itself wakes the read; nothing polls the record.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

import redis.asyncio

from core.jobs.connection import redis_errors
from core.jobs.events import StoredEvent, parse_entries, parse_read, stream_id
from core.jobs.keys import JobKeys
from core.settings import AtelierSettings

#: longest single ``XREAD BLOCK``; a longer wait is several reads (the reply timeout exceeds it)
MAX_BLOCK_S = 10.0


class JobEventFollower:
    """Reads jobs' event streams on ``settings.redis_url`` under ``redis_key_prefix``.

    An async context manager: it owns one ``redis.asyncio`` client, closed on exit. Its reply
    timeout is ``redis_timeout_s`` plus :data:`MAX_BLOCK_S`, so a blocked read is never cut off
    by it. Redis failures raise ``core.jobs.StoreUnavailable``.
    """

    def __init__(self, settings: AtelierSettings) -> None:
        self.keys = JobKeys(settings.redis_key_prefix)
        self.redis = redis.asyncio.Redis.from_url(
            settings.redis_url.get_secret_value(),
            decode_responses=True,
            socket_timeout=settings.redis_timeout_s + MAX_BLOCK_S,
            socket_connect_timeout=settings.redis_timeout_s,
        )

    async def read(self, job_id: str, *, after: int = 0, block_s: float | None = None) -> list[StoredEvent]:
        """The job's events with an id above ``after``, oldest first; with ``block_s``, when
        there are none yet, wait up to that long (at most :data:`MAX_BLOCK_S`) for the next."""
        key = self.keys.events(job_id)
        with redis_errors():
            if block_s is None:
                entries = await self.redis.xrange(key, min=f"({stream_id(after)}")
                return parse_entries(entries)
            block_ms = max(1, round(min(block_s, MAX_BLOCK_S) * 1000))
            reply = await self.redis.xread({key: stream_id(after)}, block=block_ms)
        return parse_read(reply)

    async def latest(self, job_id: str) -> StoredEvent | None:
        """The job's last recorded event, or ``None`` (unknown, expired or erased job)."""
        with redis_errors():
            entries = await self.redis.xrevrange(self.keys.events(job_id), count=1)
        found = parse_entries(entries)
        return found[0] if found else None

    async def wait_for_end(self, job_id: str, *, timeout: float) -> StoredEvent | None:
        """The job's terminal event once it is recorded, or ``None`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        after = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            for event in await self.read(job_id, after=after, block_s=remaining):
                if event.terminal:
                    return event
                after = event.id

    async def aclose(self) -> None:
        await self.redis.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()
