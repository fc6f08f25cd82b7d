"""Admission control: when the listing queue is deeper than ``api_listing_queue_bound``, new
listing submits get 503 problem+json with ``Retry-After`` (``api_admission_retry_after_s``),
while try-ons, which a shopper waits for, are still accepted.

Listings are bulk backfill: refusing them early, with a time to come back, keeps a flood of
them from growing the backlog without bound and from holding the broker's memory, and the caller
(a catalog platform's job runner) retries later. The depth is the number of messages ready in
the listing queue, read from RabbitMQ with a passive ``queue.declare`` (as ``ops.broker`` does;
no management plugin), at most once per ``api_queue_depth_cache_s`` (default 1 s) per process,
so a burst of submits does not open a broker connection each. The check runs on the event loop:
a fresh depth costs nothing, and the read itself goes to the thread pool, one at a time; while
one request reads it, the others go on with the depth read before (the first ones, with none
yet, read it too). A depth that cannot be read admits the submit: the publish that follows
fails on its own (503) if the broker is down.
"""

from __future__ import annotations

import logging
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


def read_listing_depth(settings: ApiSettings) -> int:
    """Messages ready in the listing queue now (0 when it was never declared)."""
    queue = build_topology(settings).listing.name
    url = settings.broker_url.get_secret_value()
    with Connection(url, connect_timeout=settings.broker_connect_timeout_s, ssl=broker_ssl(settings)) as conn:
        conn.ensure_connection(max_retries=1)
        declared = conn.default_channel.queue_declare(queue=queue, passive=True)
        return int(declared.message_count)


class ListingAdmission:
    """Admits listing submits while the listing queue is no deeper than its bound.

    Parameters: ``settings`` (``api_listing_queue_bound``, 0 for no bound;
    ``api_queue_depth_cache_s``; ``api_admission_retry_after_s``; the broker fields); keyword-only
    ``read_depth`` (default :func:`read_listing_depth`) and ``clock`` (default ``time.monotonic``).
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        read_depth: Callable[[ApiSettings], int] = read_listing_depth,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.bound = settings.api_listing_queue_bound
        self._read_depth = read_depth
        self._clock = clock
        self._depth: int | None = None
        self._read_at = -float("inf")
        self._reading = False

    async def depth(self) -> int | None:
        """The listing queue's depth, read at most once per ``api_queue_depth_cache_s`` (the last
        one read while another request reads it); ``None`` when it could not be read."""
        if self._clock() - self._read_at < self.settings.api_queue_depth_cache_s:
            return self._depth
        if self._reading and self._read_at > -float("inf"):
            return self._depth
        self._reading = True
        try:
            depth = await run_in_threadpool(self._read)
        finally:
            self._reading = False
        self._depth, self._read_at = depth, self._clock()
        return depth

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
