"""The worker's Prometheus metrics, and the small helpers the job code records them with.

Names that celery-exporter (danihodovic/celery-exporter) also exposes keep its names and labels
(``name``, ``hostname``, ``queue_name``), so its dashboards and alerts work on these too; the rest
are ``atelier_``. The list, with what each means, is in ``docs/observability.md``.

A prefork worker is several processes: each pool process writes its samples to files in one
folder (prometheus_client's multiprocess mode), and the main process serves them all on
``/metrics`` (``worker.endpoints``). :func:`use_multiprocess_dir` sets that up in the main
process before the pool forks; :func:`process_exited` drops a pool process's live gauges when
it exits, and every scrape drops those of processes that died without saying so (SIGKILL).

Recording never raises into a job: every helper here is a counter increment or an observation,
and :func:`job_finished` swallows a status-store failure.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from celery import signals
from celery.utils.nodenames import nodesplit
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from core.contracts.codes import ErrorCode
from core.contracts.jobs import JobRecord
from quality.verdict import Verdict

log = logging.getLogger(__name__)

#: the variable prometheus_client reads the multiprocess folder from
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: seconds; job stages run from milliseconds (encode) to hours (a listing backlog's queue wait)
STAGE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 4 * 3600)
#: seconds; one callback POST is bounded by ``callback_timeout_s`` (15 s by default)
CALLBACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30)
#: job stages timed by :func:`stage` or :func:`job_finished`
STAGES = ("queue_wait", "inference", "gate", "encode", "upload", "total")

_TASK = ["name", "hostname", "queue_name"]

# --- celery-exporter's names (its labels, its meaning) ---
TASK_RECEIVED = Counter("celery_task_received", "Task messages the worker received.", _TASK)
TASK_STARTED = Counter("celery_task_started", "Tasks the worker started executing.", _TASK)
TASK_SUCCEEDED = Counter("celery_task_succeeded", "Tasks that returned without raising.", _TASK)
TASK_FAILED = Counter(
    "celery_task_failed",
    "Tasks that raised (exception: its class name).",
    ["name", "hostname", "exception", "queue_name"],
)
TASK_RETRIED = Counter("celery_task_retried", "Tasks that will run again later (a retry published).", _TASK)
TASK_REJECTED = Counter("celery_task_rejected", "Tasks that rejected their message to the broker.", _TASK)
TASK_RUNTIME = Histogram("celery_task_runtime", "Seconds a task ran, for tasks that succeeded.", _TASK)
WORKER_TASKS_ACTIVE = Gauge(
    "celery_worker_tasks_active",
    "Tasks the worker is executing now.",
    ["hostname"],
    multiprocess_mode="livesum",
)

# --- Atelier's ---
TASKS_IN_PROGRESS = Gauge(
    "atelier_tasks_in_progress",
    "Tasks executing now, by task and queue (the in-flight work of each pool).",
    ["name", "queue_name"],
    multiprocess_mode="livesum",
)
JOBS_STARTED = Counter("atelier_jobs_started", "Jobs that went from queued to running.", ["kind"])
JOBS_FINISHED = Counter(
    "atelier_jobs_finished", "Jobs this worker ended, by terminal state.", ["kind", "state"]
)
JOB_FAILURES = Counter("atelier_job_failures", "Jobs that ended failed, by error code.", ["kind", "code"])
JOB_RETRIES = Counter(
    "atelier_job_retries", "Job retries scheduled after a retryable error, by error code.", ["kind", "code"]
)
JOB_STAGE_SECONDS = Histogram(
    "atelier_job_stage_seconds",
    "Seconds per job stage: queue_wait (submitted to first start), inference (one model call), "
    "gate (judging a job's images), encode and upload (per image), total (submitted to ended).",
    ["kind", "stage"],
    buckets=STAGE_BUCKETS,
)
DEAD_LETTERS = Counter(
    "atelier_dead_letters",
    "Messages the gate refused and dead-lettered, by reason code.",
    ["reason", "queue_name"],
)
CALLBACK_DELIVERIES = Counter(
    "atelier_callback_deliveries",
    "Callback delivery attempts, by outcome (delivered, retry, gone, rejected, error).",
    ["outcome"],
)
CALLBACK_SECONDS = Histogram(
    "atelier_callback_delivery_seconds",
    "Seconds per callback delivery attempt (URL check, signing and the POST), by outcome.",
    ["outcome"],
    buckets=CALLBACK_BUCKETS,
)
SWEEP_OUTCOMES = Counter(
    "atelier_sweeper_outcomes",
    "What the stuck-job sweeper did with each candidate (requeued, failed, alive, changed, gone, "
    "error), by the state the job was stuck in (running, queued).",
    ["state", "outcome"],
)
DEPENDENCY_UP = Gauge(
    "atelier_worker_dependency_up",
    "1 when the service answered the worker's last readiness check (/readyz), else 0.",
    ["check"],
    multiprocess_mode="livemostrecent",
)

P = ParamSpec("P")


@functools.lru_cache(maxsize=4096)
def _child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)`` (values in the order of its label names), looked up once:
    prometheus_client checks and hashes the label values under a lock on every ``labels()``
    call, tens of microseconds each, and a listing job records about forty samples."""
    return metric.labels(*values)


# --- the job's story ---


@contextmanager
def stage(kind: str, name: str) -> Iterator[None]:
    """Time the block as job stage ``name`` (see ``STAGES``) of a ``kind`` job; it is observed
    whether the block returns or raises (the time was spent either way)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        _child(JOB_STAGE_SECONDS, str(kind), name).observe(time.perf_counter() - started)


GATE_CHECKS = Counter(
    "atelier_gate_checks",
    "Quality-gate checks of the kept listing images, by requested category, check and outcome.",
    ["category", "check", "outcome"],
)
GATE_IMAGES = Counter(
    "atelier_gate_images",
    "Kept listing images by requested category and gate outcome (pass rate: passed / all).",
    ["category", "outcome"],
)
GATE_REGENERATIONS = Counter(
    "atelier_gate_regenerations",
    "Listing variants generated again because the gate failed them.",
    ["category"],
)


def gate_verdicts(category: str, verdicts: Sequence[Verdict], tries: Sequence[int]) -> None:
    """Count the gate's final verdict on each kept image, each check, and the regenerations:
    summed per series first, so a job adds to each series once (a write to the multiprocess
    file each) rather than once per image and check."""
    counts: collections.Counter[tuple[Any, ...]] = collections.Counter()
    for verdict, tried in zip(verdicts, tries, strict=True):
        counts[(GATE_IMAGES, category, _outcome(verdict.passed))] += 1
        for check in verdict.checks:
            counts[(GATE_CHECKS, category, check.name, _outcome(check.passed))] += 1
        if tried > 1:
            counts[(GATE_REGENERATIONS, category)] += tried - 1
    for (metric, *labels), count in counts.items():
        _child(metric, *labels).inc(count)


def _outcome(passed: bool) -> str:
    return "passed" if passed else "failed"


def job_started(kind: str) -> None:
    _child(JOBS_STARTED, str(kind)).inc()


def job_retried(kind: str, code: ErrorCode) -> None:
    _child(JOB_RETRIES, str(kind), str(code)).inc()


class _Records(Protocol):
    def get(self, job_id: str) -> JobRecord | None: ...


def job_finished(store: _Records, job_id: str, record: JobRecord | None = None) -> None:
    """Count the job that just ended and observe its queue wait and total time, from its record
    (``created_at``, ``started_at``, ``finished_at``): ``record`` when the caller has it (the
    transition it just wrote), else the one this thread just wrote when the store remembers it
    (``JobStore.recent``), else read. Never raises: metrics never fail a job."""
    if record is None:
        try:
            recent = getattr(store, "recent", None)  # JobStore: the record this thread just wrote
            record = (recent(job_id) if recent is not None else None) or store.get(job_id)
        except Exception as error:
            log.debug("job %s: no record for its metrics: %s", job_id, error, extra={"job_id": job_id})
            return
    if record is None or not record.state.terminal:
        return
    kind = record.kind.value
    _child(JOBS_FINISHED, kind, record.state.value).inc()
    if record.error is not None:
        _child(JOB_FAILURES, kind, record.error.code.value).inc()
    if record.started_at is not None:
        wait = (record.started_at - record.created_at).total_seconds()
        _child(JOB_STAGE_SECONDS, kind, "queue_wait").observe(max(0.0, wait))
    if record.finished_at is not None:
        total = (record.finished_at - record.created_at).total_seconds()
        _child(JOB_STAGE_SECONDS, kind, "total").observe(max(0.0, total))


def swept(state: str, outcome: str) -> None:
    """Count one sweeper decision about a job stuck in ``state``."""
    SWEEP_OUTCOMES.labels(state=state, outcome=outcome).inc()


def dependencies_checked(results: Iterable[tuple[str, bool]]) -> None:
    """Record a readiness round: each check's name and whether its service answered."""
    for check, ok in results:
        DEPENDENCY_UP.labels(check=check).set(1 if ok else 0)


def dead_lettered(code: ErrorCode, queue: str) -> None:
    """Count a message the gate refused with ``code`` (the ``reason`` label); ``queue`` is its
    routing key, whose native delayed-delivery prefix (a retry's ``0.1.0...``) is dropped to keep
    one series per queue."""
    DEAD_LETTERS.labels(reason=str(code), queue_name=_DELAY_PREFIX.sub("", queue)).inc()


#: the countdown bits kombu's native delayed delivery puts before a routing key
_DELAY_PREFIX = re.compile(r"^(?:[01]\.)+")


class _Outcome(Protocol):
    @property
    def status(self) -> Enum: ...


OutcomeT = TypeVar("OutcomeT", bound=_Outcome)


def callback_delivery(deliver: Callable[P, OutcomeT]) -> Callable[P, OutcomeT]:
    """Decorate a delivery attempt that returns an outcome with a ``status``: count it by that
    status (``error`` if it raised) and observe how long it took."""

    @functools.wraps(deliver)
    def timed(*args: P.args, **kwargs: P.kwargs) -> OutcomeT:
        started, outcome = time.perf_counter(), "error"
        try:
            result = deliver(*args, **kwargs)
            outcome = str(result.status.value)
            return result
        finally:
            _child(CALLBACK_DELIVERIES, outcome).inc()
            _child(CALLBACK_SECONDS, outcome).observe(time.perf_counter() - started)

    return timed


# --- Celery's task lifecycle (celery-exporter's counters, from signals in each process) ---

_started_at: dict[str, float] = {}


def observe_celery_tasks(queue_of: Callable[[str], str]) -> None:
    """Count every task's lifecycle from Celery's signals; ``queue_of(task name)`` gives the
    ``queue_name`` label (a retried message's routing key is the delayed-delivery one)."""

    @functools.lru_cache(maxsize=256)
    def labels(name: str, hostname: str | None) -> tuple[str, str, str]:
        """``(name, host, queue)``, in ``_TASK``'s order (worked out once per task and node)."""
        return name, host_of(hostname), _queue(queue_of, name)

    @signals.task_received.connect(weak=False)
    def received(request: Any = None, **_: Any) -> None:
        _child(TASK_RECEIVED, *labels(request.name, request.hostname)).inc()

    @signals.task_prerun.connect(weak=False)
    def prerun(task_id: str = "", task: Any = None, **_: Any) -> None:
        name, host, queue = task_labels = labels(task.name, task.request.hostname)
        _started_at[task_id] = time.perf_counter()
        _child(TASK_STARTED, *task_labels).inc()
        _child(WORKER_TASKS_ACTIVE, host).inc()
        _child(TASKS_IN_PROGRESS, name, queue).inc()

    @signals.task_postrun.connect(weak=False)
    def postrun(task_id: str = "", task: Any = None, state: str | None = None, **_: Any) -> None:
        name, host, queue = task_labels = labels(task.name, task.request.hostname)
        started = _started_at.pop(task_id, None)
        _child(WORKER_TASKS_ACTIVE, host).dec()
        _child(TASKS_IN_PROGRESS, name, queue).dec()
        if state == "SUCCESS" and started is not None:
            _child(TASK_RUNTIME, *task_labels).observe(time.perf_counter() - started)
        elif state == "REJECTED":
            _child(TASK_REJECTED, *task_labels).inc()

    @signals.task_success.connect(weak=False)
    def succeeded(sender: Any = None, **_: Any) -> None:
        _child(TASK_SUCCEEDED, *labels(sender.name, sender.request.hostname)).inc()

    @signals.task_failure.connect(weak=False)
    def failed(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
        name, host, queue = labels(sender.name, sender.request.hostname)
        _child(TASK_FAILED, name, host, type(exception).__name__, queue).inc()

    @signals.task_retry.connect(weak=False)
    def retried(sender: Any = None, **_: Any) -> None:
        _child(TASK_RETRIED, *labels(sender.name, sender.request.hostname)).inc()


def host_of(node_name: str | None) -> str:
    """The host part of a Celery node name (``listing@host`` -> ``host``), as celery-exporter
    labels it: one series per machine, not per process."""
    return nodesplit(node_name)[1] if node_name else ""


def _queue(queue_of: Callable[[str], str], task_name: str) -> str:
    try:
        return queue_of(task_name)
    except Exception:  # a task outside the topology (none today)
        return ""


# --- one worker, several processes ---

_multiprocess_dir: Path | None = None
_owned_dir = False


def use_multiprocess_dir(folder: Path | None = None) -> Path:
    """Make this process and every pool process it forks write their samples to files in
    ``folder`` (default: ``PROMETHEUS_MULTIPROC_DIR``, else a new temporary folder, removed by
    :func:`close_multiprocess_dir`). Stale files of an earlier run are deleted first.

    Call in the worker's main process before the pool forks and before anything is recorded:
    prometheus_client picks where a labelled series keeps its value when the series is first
    used, from the class this sets.
    """
    global _multiprocess_dir, _owned_dir
    named = folder or (Path(os.environ[MULTIPROC_ENV]) if os.environ.get(MULTIPROC_ENV) else None)
    _owned_dir = named is None
    path = named or Path(tempfile.mkdtemp(prefix="atelier-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    values.ValueClass = values.get_value_class()
    _multiprocess_dir = path
    return path


def close_multiprocess_dir() -> None:
    """At the main process's exit: remove the folder if :func:`use_multiprocess_dir` made it."""
    global _multiprocess_dir
    if _multiprocess_dir is not None and _owned_dir:
        shutil.rmtree(_multiprocess_dir, ignore_errors=True)
    _multiprocess_dir = None


def process_exited(pid: int | None = None) -> None:
    """Drop the live gauges (tasks in progress) of a pool process that is exiting."""
    if _multiprocess_dir is not None or os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid or os.getpid())


_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")


def forget_dead_processes(folder: Path) -> list[int]:
    """Drop the live gauges of processes that died without :func:`process_exited` (a SIGKILLed
    pool process); returns their pids."""
    dead = set()
    for path in folder.glob("gauge_live*.db"):
        match = _LIVE_GAUGE_FILE.fullmatch(path.name)
        if match and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, str(folder))
    return sorted(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def exposition() -> tuple[bytes, str]:
    """The ``/metrics`` body and content type: every process's samples in multiprocess mode,
    else this process's registry."""
    if _multiprocess_dir is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    forget_dead_processes(_multiprocess_dir)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(_multiprocess_dir))
    return generate_latest(registry), CONTENT_TYPE_LATEST
