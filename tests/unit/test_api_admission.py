"""Admission control's depth cache (``api.admission.ListingAdmission``), with a fake clock and a fake
depth reader: the depth is read at most once per ``api_queue_depth_cache_s``, a stale one is
refreshed in the background, one read at a time, and no check waits for it but the first. The
refusal itself over real HTTP, and the real broker reader, are tested in
``tests/integration/test_api_limits.py``."""

from __future__ import annotations

import asyncio
import threading

import pytest

from api.admission import ListingAdmission
from api.problems import ProblemError
from api.settings import ApiSettings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Depths:
    """A depth reader that counts its reads and can be held mid-read."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.reads = 0
        self.release = threading.Event()
        self.release.set()

    def __call__(self, settings: ApiSettings) -> int:
        self.reads += 1
        self.release.wait(5)
        return self.depth


def admission(depths: Depths, clock: Clock, *, bound: int = 10, cache_s: float = 1.0) -> ListingAdmission:
    settings = ApiSettings(api_listing_queue_bound=bound, api_queue_depth_cache_s=cache_s)
    return ListingAdmission(settings, read_depth=depths, clock=clock)


def test_the_depth_is_read_once_per_cache_period_and_past_the_bound_refuses_with_retry_after() -> None:
    depths, clock = Depths(11), Clock()
    gate = admission(depths, clock)

    async def scenario() -> None:
        for _ in range(5):
            with pytest.raises(ProblemError) as refused:
                await gate.check()
            assert refused.value.problem.status == 503 and refused.value.headers == {"Retry-After": "30"}
        assert depths.reads == 1
        depths.depth = 3
        clock.now += 0.5
        with pytest.raises(ProblemError):
            await gate.check()  # still the depth read half a second ago
        clock.now += 0.5
        with pytest.raises(ProblemError):
            await gate.check()  # stale: answered with the last depth, while it is read again
        await settled(gate)
        assert depths.reads == 2
        await gate.check()  # the refreshed depth: room now
        assert depths.reads == 2

    asyncio.run(scenario())


def test_a_stale_depth_is_refreshed_in_the_background_and_no_check_waits_for_it() -> None:
    depths, clock = Depths(0), Clock()
    gate = admission(depths, clock)

    async def scenario() -> None:
        await gate.check()  # the first check waits for the first read
        clock.now += 2.0
        depths.release.clear()
        depths.depth = 50  # the slow read will find the queue full
        for _ in range(3):
            await asyncio.wait_for(gate.check(), timeout=1)  # the last depth (0): admitted at once
        while depths.reads < 2:
            await asyncio.sleep(0.01)
        assert depths.reads == 2  # one background read for the three stale checks
        depths.release.set()
        await settled(gate)
        with pytest.raises(ProblemError):
            await gate.check()
        assert depths.reads == 2

    asyncio.run(scenario())


async def settled(gate: ListingAdmission) -> None:
    """Wait for ``gate``'s background read, if one runs."""
    await gate.close()


def test_no_cache_reads_the_depth_on_every_check_and_no_bound_reads_nothing() -> None:
    depths, clock = Depths(0), Clock()
    uncached = admission(depths, clock, cache_s=0.0)
    unbounded = admission(Depths(10**6), clock, bound=0)

    async def scenario() -> None:
        for _ in range(3):
            await uncached.check()
            await unbounded.check()

    asyncio.run(scenario())
    assert depths.reads == 3


def test_a_depth_that_cannot_be_read_admits() -> None:
    def broken(settings: ApiSettings) -> int:
        raise OSError("connection refused")

    gate = ListingAdmission(ApiSettings(api_listing_queue_bound=1), read_depth=broken, clock=Clock())
    asyncio.run(gate.check())
