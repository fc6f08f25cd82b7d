"""Admission control: when the listing queue is deeper than ``api_listing_queue_bound``, new
listing submits get 503 problem+json with ``Retry-After`` (``api_admission_retry_after_s``),
while try-ons, which a shopper waits for, are still accepted.

Listings are bulk backfill: refusing them early, with a time to come back, keeps a flood of
them from growing the backlog without bound and from holding the broker's memory, and the caller
(a catalog platform's job runner) retries later. The depth is the number of messages ready in
the listing queue, read from RabbitMQ with a passive ``queue.declare`` (as ``ops.broker`` does;
no management plugin) on one broker connection the process keeps (:class:`BrokerDepthReader`),
at most once per ``api_queue_depth_cache_s`` (default 1 s) per process. A depth past its cache
period is still answered at once, while one background read refreshes it: a read costs a round
trip to the broker in the thread pool, and the submit that found the depth stale should not wait
for it (it was about one submit a second, in every submit's p99). Only the first submits, with no
depth yet, wait for a read (each its own), and with no cache period every check reads. A depth
that cannot be read admits the submit: the publish that follows fails on its own (503) if the
broker is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from amqp.exceptions import AMQPError
from fastapi import Depends, Request
from kombu import Connection
from kombu.exceptions import KombuError
from starlette.concurrency import run_in_threadpool

from api.auth import require
from api.keys.model import ApiKey, Scope
from api.problems import ProblemError
from api.settings import ApiSettings
from core.topology import broker_ssl, build_topology

log = logging.getLogger(__name__)


class BrokerDepthReader:
    """Reads the listing queue's depth on one broker connection, opened on the first read and
    again after a failed one; one read at a time. ``close`` ends the connection."""

    def __init__(self) -> None:
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def __call__(self, settings: ApiSettings) -> int:
        """Messages ready in the listing queue now (0 when it was never declared)."""
        queue = build_topology(settings).listing.name
        with self._lock:
            try:
                if self._connection is None:
                    url = settings.broker_url.get_secret_value()
                    timeout = settings.broker_connect_timeout_s
                    self._connection = Connection(url, connect_timeout=timeout, ssl=broker_ssl(settings))
                    self._connection.ensure_connection(max_retries=1)
                declared = self._connection.default_channel.queue_declare(queue=queue, passive=True)
                return int(declared.message_count)
            except BaseException:
                self._close()
                raise

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.release()


class ListingAdmission:
    """Admits listing submits while the listing queue is no deeper than its bound.

    Parameters: ``settings`` (``api_listing_queue_bound``, 0 for no bound;
    ``api_queue_depth_cache_s``; ``api_admission_retry_after_s``; the broker fields); keyword-only
    ``read_depth`` (default a :class:`BrokerDepthReader`) and ``clock`` (default ``time.monotonic``).
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        read_depth: Callable[[ApiSettings], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.bound = settings.api_listing_queue_bound
        #: the reader this object made (and closes), ``None`` when one was given
        self._reader: BrokerDepthReader | None = None
        if read_depth is None:
            read_depth = self._reader = BrokerDepthReader()
        self._read_depth = read_depth
        self._clock = clock
        self._depth: int | None = None
        self._read_at = -float("inf")
        self._reading = False
        #: the background read in flight (kept so it is not collected before it ends)
        self._refreshing: asyncio.Task[int | None] | None = None

    async def depth(self) -> int | None:
        """The listing queue's depth: the one read within ``api_queue_depth_cache_s``, else the last
        one read while a background read refreshes it, else (none read yet, or no cache period) a
        read now; ``None`` when it could not be read."""
        cache_s = self.settings.api_queue_depth_cache_s
        if self._clock() - self._read_at < cache_s:
            return self._depth
        if self._read_at > -float("inf") and cache_s > 0:
            if not self._reading:
                self._reading = True
                self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
            return self._depth
        return await self._refresh()

    async def _refresh(self) -> int | None:
        self._reading = True
        try:
            depth = await run_in_threadpool(self._read)
        finally:
            self._reading = False
        self._depth, self._read_at = depth, self._clock()
        return depth

    async def close(self) -> None:
        """Wait for a background read, and close the broker connection this process kept."""
        if self._refreshing is not None:
            with contextlib.suppress(Exception):
                await self._refreshing
        if self._reader is not None:
            await run_in_threadpool(self._reader.close)

    def _read(self) -> int | None:
        try:
            return self._read_depth(self.settings)
        except (OSError, AMQPError, KombuError) as error:
            log.warning("could not read the listing queue's depth: %r", error)
            return None

    async def refusal(self) -> ProblemError | None:
        """The 503 :class:`ProblemError` with ``Retry-After`` a listing submit gets while the queue
        is past its bound; ``None`` while it has room."""
        if not self.bound:
            return None
        depth = await self.depth()
        if depth is None or depth <= self.bound:
            return None
        retry_after = self.settings.api_admission_retry_after_s
        return ProblemError(
            503,
            "Service Unavailable",
            f"the listing queue holds more than {self.bound} jobs; submit listings again in "
            f"{retry_after} s (try-ons are still accepted)",
            kind="listing-queue-full",
            headers={"Retry-After": str(retry_after)},
        )

    async def check(self) -> None:
        """Raise :meth:`refusal`'s 503 when the queue is past its bound."""
        refused = await self.refusal()
        if refused is not None:
            raise refused


async def listing_admission(request: Request) -> ListingAdmission:
    admission: ListingAdmission = request.app.state.listing_admission
    return admission


async def admit_listings(
    key: ApiKey = Depends(require(Scope.SUBMIT_LISTINGS)),  # noqa: B008
    admission: ListingAdmission = Depends(listing_admission),  # noqa: B008
) -> ApiKey:
    """The listing submit routes' dependency: 503 while the listing queue is past its bound
    (checked once the key may submit listings, so a refused key gets its 401 or 403)."""
    await admission.check()
    return key
