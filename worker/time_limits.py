"""Celery's soft and hard time limits for the pools that do not enforce them (threads, solo).

Only the prefork pool enforces ``task_soft_time_limit`` and ``task_time_limit``: it signals or
kills the child process. The threads pool ignores both, so :class:`ThreadTimeLimits` does it:
one watchdog thread looks at the running tasks every ``tick_s`` and

- past the **soft** limit, raises ``SoftTimeLimitExceeded`` in the task's thread (an
  asynchronous exception, delivered at the thread's next Python instruction: a call blocked in C
  first returns at its own timeout, Triton's, S3's or the callback's); the pipeline fails the job
  with ``job_time_limit`` as under prefork (``worker.pipeline.job_failure``);
- past the **hard** limit (a thread that did not stop), ends the whole worker process
  (``os._exit``), since a thread cannot be killed: with late acks, RabbitMQ redelivers every job
  the process held and the deployment restarts it. Prefork instead acks the killed job's message
  and leaves the job to the sweeper; either way no job is lost.

Parameters: ``soft_s``, ``hard_s``; keyword-only ``tick_s`` (default a tenth of the soft limit,
at most 1 s), ``exit_process`` (default ``os._exit``; tests pass a recorder) and ``clock``
(default ``time.monotonic``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from billiard.exceptions import SoftTimeLimitExceeded

log = logging.getLogger(__name__)

#: exit status of a worker process ended by the hard time limit (Celery's own is 1 on a crash)
HARD_LIMIT_EXIT_CODE = 70
#: longest pause between two looks at the running tasks
MAX_TICK_S = 1.0


@dataclass
class _Running:
    task_id: str
    thread_id: int
    started: float
    soft_raised: bool = False


class ThreadTimeLimits:
    """The soft and hard time limits of tasks that run in threads (see the module docstring)."""

    def __init__(
        self,
        soft_s: float,
        hard_s: float,
        *,
        tick_s: float | None = None,
        exit_process: Callable[[int], object] = os._exit,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < soft_s < hard_s:
            raise ValueError(f"the soft limit must be above 0 and below the hard one ({soft_s} / {hard_s})")
        self.soft_s = soft_s
        self.hard_s = hard_s
        self.tick_s = tick_s if tick_s is not None else min(MAX_TICK_S, soft_s / 10)
        self._exit_process = exit_process
        self._clock = clock
        self._running: dict[int, _Running] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._watchdog: threading.Thread | None = None

    # --- the task's thread ---

    def task_started(self, task_id: str) -> None:
        """The calling thread runs ``task_id`` from now on (Celery's ``task_prerun``)."""
        thread_id = threading.get_ident()
        with self._lock:
            self._running[thread_id] = _Running(task_id, thread_id, self._clock())

    def task_finished(self) -> None:
        """The calling thread's task is over (``task_postrun``): a soft limit raised too late to
        land in the task is withdrawn, so it cannot hit the pool's own code."""
        thread_id = threading.get_ident()
        with self._lock:
            running = self._running.pop(thread_id, None)
            if running is not None and running.soft_raised:
                _async_raise(thread_id, None)

    # --- the watchdog ---

    def check(self) -> None:
        """One look at the running tasks: raise the soft limit, or end the process at the hard one."""
        now = self._clock()
        with self._lock:
            for running in self._running.values():
                elapsed = now - running.started
                if elapsed >= self.hard_s:
                    log.critical(
                        "task %s still running %.0f s after it started (hard time limit %.0f s): "
                        "ending the worker process; its jobs are redelivered",
                        running.task_id,
                        elapsed,
                        self.hard_s,
                        extra={"job_id": running.task_id},
                    )
                    self._exit_process(HARD_LIMIT_EXIT_CODE)
                    return
                if elapsed >= self.soft_s and not running.soft_raised:
                    running.soft_raised = True
                    log.warning(
                        "task %s passed the soft time limit (%.0f s)",
                        running.task_id,
                        self.soft_s,
                        extra={"job_id": running.task_id},
                    )
                    _async_raise(running.thread_id, SoftTimeLimitExceeded)

    def start(self) -> None:
        """Start the watchdog thread (a daemon: it never holds the process up)."""
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name="atelier-time-limits", daemon=True)
            self._watchdog.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
            self._watchdog = None

    def _watch(self) -> None:
        while not self._stopped.wait(self.tick_s):
            self.check()


def _async_raise(thread_id: int, error: type[BaseException] | None) -> None:
    """Raise ``error`` in thread ``thread_id`` at its next Python instruction (``None``: take back
    one not yet raised). CPython's ``PyThreadState_SetAsyncExc``."""
    set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    set_async_exc(ctypes.c_ulong(thread_id), ctypes.py_object(error) if error is not None else None)


def needs_own_time_limits(pool_cls: object) -> bool:
    """Whether Celery's pool ``pool_cls`` leaves the time limits to us: every pool but prefork."""
    from celery.concurrency import get_implementation
    from celery.concurrency.prefork import TaskPool as PreforkPool

    resolved = get_implementation(pool_cls) if isinstance(pool_cls, str) else pool_cls
    return not (isinstance(resolved, type) and issubclass(resolved, PreforkPool))
