"""Threads for the blocking part of a submit (the core's Redis and broker clients are blocking),
each handing its result back to the event loop in one step.

Why not ``loop.run_in_executor`` or FastAPI's thread pool (anyio): both wrap every call in a
``concurrent.futures.Future`` (with a lock and a condition of its own) chained to an asyncio
future, or in a cancel scope and a capacity limiter; on a submit that is CPU the event loop spends
twice per request for nothing this use needs. Here a call is a tuple on a queue, and its thread
settles the caller's asyncio future with one ``call_soon_threadsafe``.

A call waits for its thread even if the request is cancelled meanwhile: the job it submits is
recorded and published either way, as with FastAPI's thread pool.

With ``inline_when``, a call runs on the event loop itself when no call of its own is out in the
threads and ``inline_when()`` says so (the submit threads': when the request making it is the only
one in flight, :data:`REQUESTS`): with nobody else to serve, the loop would only wait for the
thread, and the two hand-offs (a thread woken, then the loop) are a submit's longest detour at
low load. The loop is blocked meanwhile, so a request arriving then waits for the call to end.
``INLINE_SLOW_CALLS`` inline calls in a row that each take longer than ``INLINE_SLOW_S`` (a broker
holding its confirms, say under a memory alarm, makes every call slow) send every call to the
threads for ``INLINE_PAUSE_S``: the loop, and with it the health probes and the event streams,
stalls at most that many times in that long. One slow call alone does not: the first submit of a
process opens its connections (some 300 ms here), and a loaded machine can hold any call once;
pausing on either sent a lone client's submits through two thread hand-offs for a minute (after
every start, the API benchmark's first rounds at one client).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

T = TypeVar("T")

#: an inline call slower than this stops calls running inline for ``INLINE_PAUSE_S``
INLINE_SLOW_S: Final = 0.05
#: seconds calls go to the threads after ``INLINE_SLOW_CALLS`` slow inline calls in a row
INLINE_PAUSE_S: Final = 60.0
#: slow inline calls in a row that start a pause (a fast one in between starts the count again)
INLINE_SLOW_CALLS: Final = 2

#: what a call is on the queue: the function, its arguments, the loop and future to settle
_Call = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class InFlight:
    """How many requests the API is answering now, counted on the event loop as they come and go
    (``api.routes.shortcut.ShortcutFront`` counts every HTTP request)."""

    def __init__(self) -> None:
        self.count = 0

    def entered(self) -> None:
        self.count += 1

    def left(self) -> None:
        self.count -= 1

    def alone(self) -> bool:
        """Whether the request asking is the only one in flight."""
        return self.count == 1


#: the requests in flight in this process
REQUESTS: Final = InFlight()


class BlockingThreads:
    """``size`` daemon threads, started on first use, that run blocking calls for coroutines.

    Parameters: ``size``, the most calls that run at once (the others wait in order);
    keyword-only ``name``, the threads' name prefix, and ``inline_when``, when a call may run on
    the event loop instead (see the module; default never), and ``inline_pause_s``, how long
    calls go to the threads after slow inline ones.
    """

    def __init__(
        self,
        size: int,
        *,
        name: str,
        inline_when: Callable[[], bool] | None = None,
        inline_pause_s: float = INLINE_PAUSE_S,
    ) -> None:
        self.size = size
        self.name = name
        self.inline_when = inline_when
        self.inline_pause_s = inline_pause_s
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._starting = threading.Lock()
        #: calls handed to the threads and not yet settled (changed on the event loop only)
        self._out = 0
        #: ``time.monotonic()`` before which no call runs inline (after slow ones)
        self._inline_paused_until = 0.0
        #: the slow inline calls since the last fast one
        self._slow_in_a_row = 0

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)`` in one of the threads (or inline, see the module); its result, or its
        exception raised here."""
        if not self._out and self.inline_when is not None and self.inline_when():
            started = time.monotonic()
            if started >= self._inline_paused_until:
                try:
                    return call(*args)
                finally:
                    self._judge(time.monotonic() - started)
        if len(self._threads) < self.size:
            self._start()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._out += 1
        self._calls.put((call, args, loop, done))
        return await done

    def _judge(self, took_s: float) -> None:
        """After an inline call that took ``took_s``: pause inline calls after enough slow ones."""
        if took_s <= INLINE_SLOW_S:
            self._slow_in_a_row = 0
            return
        self._slow_in_a_row += 1
        if self._slow_in_a_row >= INLINE_SLOW_CALLS:
            self._slow_in_a_row = 0
            self._inline_paused_until = time.monotonic() + self.inline_pause_s

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
                loop.call_soon_threadsafe(self._settle, done, result, error)

    def _settle(self, done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        """On the event loop: the call is over, its caller gets its outcome (if still waiting)."""
        self._out -= 1
        _settle(done, result, error)


def _settle(done: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if done.cancelled():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)
