"""Threads for the blocking part of a submit (the core's Redis and broker clients are blocking),
each handing its result back to the event loop in one step.

Why not ``loop.run_in_executor`` or FastAPI's thread pool (anyio): both wrap every call in a
``concurrent.futures.Future`` (with a lock and a condition of its own) chained to an asyncio
future, or in a cancel scope and a capacity limiter; on a submit that is CPU the event loop spends
twice per request for nothing this use needs. Here a call is a tuple on a queue, and its thread
settles the caller's asyncio future with one ``call_soon_threadsafe``.

A call waits for its thread even if the request is cancelled meanwhile: the job it submits is
recorded and published either way, as with FastAPI's thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: what a call is on the queue: the function, its arguments, the loop and future to settle
_Call = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class BlockingThreads:
    """``size`` daemon threads, started on first use, that run blocking calls for coroutines.

    Parameters: ``size``, the most calls that run at once (the others wait in order);
    keyword-only ``name``, the threads' name prefix.
    """

    def __init__(self, size: int, *, name: str) -> None:
        self.size = size
        self.name = name
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._starting = threading.Lock()

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` in one of the threads; its result, or its exception raised here."""
        if len(self._threads) < self.size:
            self._start()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._calls.put((call, args, loop, done))
        return await done

    def _start(self) -> None:
        with self._starting:
            while len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._serve, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _serve(self) -> None:
        while True:
            call, args, loop, done = self._calls.get()
            result, error = None, None
            try:
                result = call(*args)
            except BaseException as raised:  # handed to the caller, whatever it is
                error = raised
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for this call
                loop.call_soon_threadsafe(_settle, done, result, error)


def _settle(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)
