"""CPU time per stage inside the worker processes, for the pipeline benchmark's stage table.

The worker already times its stages in wall-clock seconds (``worker.metrics.stage``: inference,
gate, encode, upload). Wall time is not CPU time on shared cores, so :func:`install` wraps that
same ``stage`` and a few boundary calls with a per-thread CPU timer (``time.thread_time``):

- ``worker.metrics.stage`` -> its own stage name (``encode``, ``upload``, ``inference``, ``gate``);
- every ``core.jobs.JobStore`` method -> ``status`` (Redis client side: transitions, leases,
  event claims, reads);
- ``worker.celery_app.app.send_task`` -> ``publish`` (the callback messages a job queues);
- ``worker.notifications.deliver_callback`` and ``notify_first_inline`` -> ``delivery`` (build,
  sign and POST a callback, on the callback queue or in the job's thread).

Timers nest: a stage's CPU excludes the timed stages inside it (a status write inside a delivery
counts as ``status``), so the stages never count a CPU second twice. Each timer is per thread,
so several jobs on several threads of one process are each counted once; a stage that awaits
other work on the same thread (asyncio) would count that work too.

The seconds go to a Prometheus counter in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, which
the benchmark sets per worker), one small file write per stage, and :func:`read` sums every
process's files from the benchmark. The apps that install it are ``bench.perf.accounted_app``
(the real worker) and ``bench.perf.inprocess_app``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, multiprocess

log = logging.getLogger(__name__)

#: the counter's name (``_total`` is added on exposition)
METRIC = "atelier_bench_stage_cpu_seconds"
STAGE_CPU = Counter(METRIC, "Thread CPU seconds per worker stage (benchmark instrumentation).", ["stage"])

_local = threading.local()
#: what :func:`install` wrapped in this process (``None``: not installed)
_installed: list[str] | None = None


@contextlib.contextmanager
def cpu_stage(name: str, record: Callable[[str, float], None] | None = None) -> Iterator[None]:
    """Count the thread CPU the block spends, minus that of timed blocks inside it, as ``name``."""
    stack: list[float] = _local.__dict__.setdefault("stack", [])
    names: list[str] = _local.__dict__.setdefault("names", [])
    stack.append(0.0)
    names.append(name)
    started = time.thread_time()
    try:
        yield
    finally:
        spent = time.thread_time() - started
        inner = stack.pop()
        names.pop()
        if stack:
            stack[-1] += spent
        (record or _record)(name, max(0.0, spent - inner))


def _record(name: str, seconds: float) -> None:
    _counter(name).inc(seconds)


@functools.cache
def _counter(name: str) -> Any:
    """The stage's child counter, looked up once (``labels()`` costs tens of microseconds, paid
    inside the worker's measured CPU on every timed call)."""
    return STAGE_CPU.labels(stage=name)


def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` with its thread CPU counted as stage ``name``. Called inside a block already
    timed as ``name`` (a store method calling another), it runs untimed: its CPU goes to that
    block either way, and a second timer would only add its own cost to the measurement."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        names: list[str] | None = _local.__dict__.get("names")
        if names and names[-1] == name:
            return function(*args, **kwargs)
        with cpu_stage(name):
            return function(*args, **kwargs)

    return wrapper


def install() -> list[str]:
    """Wrap the worker's stages and boundaries (once per process); returns what was wrapped.
    A boundary that is not there any more is skipped with a warning, not an error: the table
    then shows its CPU in the orchestration remainder."""
    global _installed
    if _installed is not None:
        return list(_installed)
    wrapped: list[str] = []
    from worker import metrics

    original_stage = metrics.stage

    @contextlib.contextmanager
    def stage(kind: str, name: str) -> Iterator[None]:
        with original_stage(kind, name), cpu_stage(name):
            yield

    metrics.stage = stage
    wrapped.append("worker.metrics.stage")

    from core.jobs import JobStore

    for name, member in inspect.getmembers(JobStore, inspect.isfunction):  # inherited ones too
        if name.startswith("_") or name == "close" or inspect.isgeneratorfunction(member):
            continue
        setattr(JobStore, name, timed("status", member))
        wrapped.append(f"JobStore.{name}")

    for target, attribute, stage_name in _boundaries():
        if target is None or not hasattr(target, attribute):
            log.warning("stage_cpu: %s not found, its CPU stays in the remainder", attribute)
            continue
        setattr(target, attribute, timed(stage_name, getattr(target, attribute)))
        wrapped.append(f"{getattr(target, '__name__', type(target).__name__)}.{attribute}")
    _installed = wrapped
    return list(wrapped)


def _boundaries() -> list[tuple[Any, str, str]]:
    found: list[tuple[Any, str, str]] = []
    try:
        from worker import celery_app

        found.append((celery_app.app, "send_task", "publish"))
    except ImportError:
        found.append((None, "send_task", "publish"))
    try:
        from worker import notifications

        found.append((notifications, "deliver_callback", "delivery"))
        # a terminal event's first attempt, made in the job's thread (absent before issue 15)
        if hasattr(notifications, "notify_first_inline"):
            found.append((notifications, "notify_first_inline", "delivery"))
    except ImportError:
        found.append((None, "deliver_callback", "delivery"))
    return found


def read(folder: Path) -> dict[str, float]:
    """Stage -> CPU seconds so far, summed over every process that wrote to ``folder``."""
    if not folder.is_dir():
        return {}
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))
    out: dict[str, float] = {}
    for family in registry.collect():
        if family.name != METRIC:
            continue
        for sample in family.samples:
            if sample.name == METRIC + "_total":
                stage = sample.labels["stage"]
                out[stage] = out.get(stage, 0.0) + sample.value
    return out


def difference(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """Seconds spent per stage between two :func:`read` results."""
    return {k: max(0.0, v - before.get(k, 0.0)) for k, v in after.items() if v - before.get(k, 0.0) > 0}
