"""The submit threads (``api.threads.BlockingThreads``): a call's result or exception comes back to
the coroutine that made it; at most ``size`` calls run at once and the event loop goes on
meanwhile; a call whose caller was cancelled still runs to its end."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from api.threads import INLINE_SLOW_CALLS, INLINE_SLOW_S, BlockingThreads, InFlight


def test_a_calls_result_and_its_exception_come_back_to_the_caller() -> None:
    threads = BlockingThreads(2, name="test-result")

    async def scenario() -> None:
        total, thread = await threads.run(lambda a, b: (a + b, threading.current_thread().name), 2, 3)
        assert total == 5 and thread.startswith("test-result-")
        with pytest.raises(ZeroDivisionError):
            await threads.run(lambda: 1 / 0)

    asyncio.run(scenario())


def test_at_most_size_calls_run_at_once_and_the_loop_goes_on_meanwhile() -> None:
    threads = BlockingThreads(3, name="test-size")
    running, most = 0, 0
    lock = threading.Lock()

    def blocking() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def scenario() -> int:
        ticks = 0

        async def ticking() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        ticker = asyncio.create_task(ticking())
        await asyncio.gather(*(threads.run(blocking) for _ in range(9)))
        ticker.cancel()
        return ticks

    ticks = asyncio.run(scenario())
    assert most == 3
    assert ticks >= 10  # three rounds of 50 ms: the loop ticked all along


def test_a_call_whose_caller_was_cancelled_still_runs_to_its_end() -> None:
    threads = BlockingThreads(1, name="test-cancel")
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.1)
        finished.set()

    async def scenario() -> None:
        caller = asyncio.create_task(threads.run(slow))
        await asyncio.sleep(0.02)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert await threads.run(lambda: "next") == "next"  # the thread is free again, in order

    asyncio.run(scenario())
    assert finished.is_set()


def test_a_call_runs_inline_only_when_allowed_and_no_call_of_its_own_is_out() -> None:
    alone = True
    threads = BlockingThreads(2, name="test-inline", inline_when=lambda: alone)
    release = threading.Event()

    async def scenario() -> None:
        nonlocal alone
        here = threading.current_thread().name
        assert await threads.run(lambda: threading.current_thread().name) == here
        alone = False
        out = asyncio.create_task(threads.run(lambda: release.wait(5) and threading.current_thread().name))
        await asyncio.sleep(0.02)  # that call is now out in a thread
        alone = True
        assert (await threads.run(lambda: threading.current_thread().name)).startswith("test-inline-")
        release.set()
        assert (await out).startswith("test-inline-")
        assert await threads.run(lambda: threading.current_thread().name) == here  # none out again

    asyncio.run(scenario())


def test_slow_inline_calls_in_a_row_send_the_next_calls_to_the_threads_for_a_while() -> None:
    """A broker holding its confirms must not stall the event loop on every submit; one slow call
    alone (the first, opening connections; a loaded machine's hiccup) keeps them inline."""
    threads = BlockingThreads(1, name="test-slow", inline_when=lambda: True, inline_pause_s=0.3)

    async def scenario() -> None:
        here = threading.current_thread().name
        assert await threads.run(lambda: threading.current_thread().name) == here
        for _ in range(2):  # a slow one, then a fast one: the count starts again
            await threads.run(time.sleep, INLINE_SLOW_S * 2)  # inline, and too slow
            assert await threads.run(lambda: threading.current_thread().name) == here
        for _ in range(INLINE_SLOW_CALLS):
            await threads.run(time.sleep, INLINE_SLOW_S * 2)
        assert (await threads.run(lambda: threading.current_thread().name)).startswith("test-slow-")
        await asyncio.sleep(0.3)  # the pause is over
        assert await threads.run(lambda: threading.current_thread().name) == here

    asyncio.run(scenario())


def test_requests_in_flight_say_when_one_is_alone() -> None:
    requests = InFlight()
    requests.entered()
    assert requests.alone()
    requests.entered()
    assert not requests.alone()
    requests.left()
    requests.left()
    assert requests.count == 0 and not requests.alone()
