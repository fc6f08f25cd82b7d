"""CPU time of every process a pipeline run involves, and the per-image tables built from it.

A pipeline run's cores go to more than the worker: the listing and try-on pools (the Celery
main process and its pool processes), the callback worker, Triton (``tritonserver`` and one
python-backend stub process per model instance), the S3 server (``weed``), RabbitMQ
(``beam.smp``), Redis, the callback receiver and the producer. :class:`CpuLedger` reads each
one's CPU seconds (user + system, from ``/proc`` through psutil) at the start and end of one or
more windows and sums the differences, so the table below adds up to everything the machine
spent on the run, whatever the worker's concurrency (processes, threads, several jobs each).

- Processes are found by pid (the ones the run started) or by the TCP port they listen on (the
  broker and Redis, which may be the machine's shared ones: :func:`listener_pid`). A shared
  server's CPU over the window includes what other clients asked of it; the table says so.
- A pool's tree counts live descendants plus what its main process has reaped
  (``children_user`` + ``children_system``), so a pool process that exits mid-window keeps its
  CPU in the figure.
- Threads of this process (the callback receiver's) are timed with ``time.thread_time`` by
  :class:`ThreadCpu`; the rest of this process is the producer and the benchmark's harness.

:func:`stage_table` splits the total into stages: model compute (the Triton stubs), the Triton
server, the S3 server, the broker, Redis, the receiver, the producer, and inside the worker
processes the stages ``bench.perf.stage_cpu`` timed (encode, upload, status, publishing,
delivery, inference client); what the worker processes spent beyond those is orchestration's
remainder (Celery, the message gate, AMQP, task code). Every row is CPU ms per image.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil

#: a reading: CPU seconds so far, or ``None`` when the process is gone (or not found)
Reader = Callable[[], float | None]
#: the python backend's stub program; one process per model instance, a child of tritonserver
TRITON_STUB = "triton_python_backend_stub"


class _Conn(Protocol):
    @property
    def laddr(self) -> Any: ...

    @property
    def status(self) -> str: ...

    @property
    def pid(self) -> int | None: ...


# --- finding the processes ---


def listener_pid(
    port: int, *, connections: Callable[[], Iterable[_Conn]] = lambda: psutil.net_connections("tcp")
) -> int | None:
    """The pid of the process listening on TCP ``port`` (any address), or ``None``.

    Needs the right to see other users' sockets (root here) for a system service.
    """
    for conn in connections():
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return int(conn.pid)
    return None


def is_ours(pid: int, *, me: int | None = None) -> bool:
    """Whether ``pid`` descends from this process (a server the run started, not a shared one)."""
    me = os.getpid() if me is None else me
    try:
        return any(parent.pid == me for parent in psutil.Process(pid).parents())
    except psutil.Error:
        return False


def stub_model(cmdline: list[str]) -> str | None:
    """The model a python-backend stub serves, from its argv (``.../<model>/<version>/model.py``)."""
    if not cmdline or not cmdline[0].endswith(TRITON_STUB):
        return None
    for arg in cmdline[1:]:
        parts = arg.rstrip("/").split("/")
        if len(parts) >= 3 and parts[-1] == "model.py":
            return parts[-3]
    return "unknown"


# --- reading CPU seconds ---


def _own(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _reaped(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.children_user + times.children_system)


def own_cpu(pid: int | None) -> Reader:
    """The process's own CPU (not its children's)."""

    def read() -> float | None:
        if pid is None:
            return None
        try:
            return _own(psutil.Process(pid))
        except psutil.Error:
            return None

    return read


def descendants_cpu(pid: int | None, *, match: Callable[[psutil.Process], bool] | None = None) -> Reader:
    """CPU of the process's live descendants (those ``match`` accepts), plus, when no ``match``
    is given, what the process has reaped from its children that exited."""

    def read() -> float | None:
        if pid is None:
            return None
        try:
            parent = psutil.Process(pid)
            total = _reaped(parent) if match is None else 0.0
            children = parent.children(recursive=True)
        except psutil.Error:
            return None
        for child in children:
            with contextlib.suppress(psutil.Error):
                if match is None or match(child):
                    total += _own(child)
        return total

    return read


def tree_cpu(pid: int | None) -> Reader:
    """The process and all its descendants, live and reaped."""
    own, rest = own_cpu(pid), descendants_cpu(pid)

    def read() -> float | None:
        a, b = own(), rest()
        return None if a is None or b is None else a + b

    return read


def stub_of(model: str) -> Callable[[psutil.Process], bool]:
    """A ``match`` for the stub processes serving ``model``."""

    def match(process: psutil.Process) -> bool:
        return stub_model(process.cmdline()) == model

    return match


class ThreadCpu:
    """CPU seconds spent by the threads that ran functions it wrapped (``time.thread_time``);
    thread-safe. For work done on threads of this process, like an HTTP server's one thread per
    connection: a call still running (a kept-alive connection's thread) counts what it has spent
    so far, read from its thread's CPU clock, so a reading in mid-run misses nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent = 0.0
        self._running: dict[int, tuple[int, float]] = {}  # call -> (its thread's CPU clock, start)
        self._calls = itertools.count()

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            clock = time.pthread_getcpuclockid(threading.get_ident())
            started = time.clock_gettime(clock)
            with self._lock:
                call = next(self._calls)
                self._running[call] = (clock, started)
            try:
                return function(*args, **kwargs)
            finally:
                with self._lock:
                    del self._running[call]
                    self._spent += time.clock_gettime(clock) - started

        return timed

    def add(self, seconds: float) -> None:
        with self._lock:
            self._spent += seconds

    def read(self) -> float:
        with self._lock:
            spent = self._spent
            for clock, started in self._running.values():
                spent += time.clock_gettime(clock) - started
            return spent


def thread_cpu(native_id: int | None) -> Reader:
    """One live thread of this process, by its kernel id (``threading.Thread.native_id``)."""

    def read() -> float | None:
        if native_id is None:
            return None
        for thread in psutil.Process().threads():
            if thread.id == native_id:
                return float(thread.user_time + thread.system_time)
        return None

    return read


# --- the ledger ---


@dataclass(frozen=True)
class Tracked:
    """One row of the process table: a label, how to read its CPU seconds, and its kind
    (``worker``, ``model``, ``triton``, ``s3``, ``broker``, ``redis``, ``receiver``,
    ``producer``, ``harness``: what :func:`stage_table` does with it), and a note."""

    label: str
    kind: str
    read: Reader
    note: str = ""


@dataclass
class CpuLedger:
    """CPU seconds per tracked row, summed over the windows measured with :meth:`window`.

    A row whose process is missing at either end of a window gets nothing for that window and
    is listed in ``missing`` (a pool that had not started, a server that died).
    """

    rows: list[Tracked]
    spent: dict[str, float] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)

    def read_all(self) -> dict[str, float | None]:
        return {row.label: row.read() for row in self.rows}

    @contextlib.contextmanager
    def window(self, rows: Iterable[str] | None = None) -> Iterator[None]:
        """Count what the rows (default: all) spend while the block runs."""
        wanted = set(rows) if rows is not None else {row.label for row in self.rows}
        before = {k: v for k, v in self.read_all().items() if k in wanted}
        yield
        after = self.read_all()
        for label, start in before.items():
            end = after.get(label)
            if start is None or end is None:
                self.missing.add(label)
                continue
            self.spent[label] = self.spent.get(label, 0.0) + max(0.0, end - start)

    def rates(self, rows: Iterable[str], seconds: float) -> dict[str, float]:
        """CPU seconds per second each row spends over ``seconds`` of waiting (a shared server's
        background: what other clients cost it while this run does nothing)."""
        wanted = set(rows)
        before = {k: v for k, v in self.read_all().items() if k in wanted}
        started = time.perf_counter()
        time.sleep(seconds)
        after, elapsed = self.read_all(), time.perf_counter() - started
        return {
            k: (end - start) / elapsed
            for k, start in before.items()
            if start is not None and (end := after.get(k)) is not None
        }

    def add(self, label: str, seconds: float) -> None:
        """Seconds measured another way (a thread's CPU, the producer's publish)."""
        self.spent[label] = self.spent.get(label, 0.0) + seconds

    def ms_per_image(self, images: int) -> dict[str, float]:
        """Each row's CPU ms per image, in the rows' order."""
        ordered = {row.label: self.spent[row.label] for row in self.rows if row.label in self.spent}
        return per_image({**ordered, **self.spent}, images)

    def kinds(self) -> dict[str, str]:
        return {row.label: row.kind for row in self.rows}

    def notes(self) -> dict[str, str]:
        return {row.label: row.note for row in self.rows if row.note}


def per_image(seconds: Mapping[str, float], images: int) -> dict[str, float]:
    """CPU seconds -> CPU milliseconds per image (3 decimals)."""
    return {k: round(1000 * v / max(images, 1), 3) for k, v in seconds.items()}


# --- the arithmetic ---

#: stage rows, in the order the table shows them; the worker stages come from ``stage_cpu``
MODEL, ENCODE, S3_SERVER = "model compute (Triton python stubs)", "encoding (worker)", "S3 server (weed)"
#: where each worker stage timed by ``bench.perf.stage_cpu`` goes in the table
WORKER_STAGES = {
    "encode": ENCODE,
    "upload": "S3 put, client side (worker)",
    "status": "status writes (Redis client, workers)",
    "publish": "event publishing (callback messages)",
    "delivery": "callback delivery (signing, HTTP POST)",
    "inference": "inference call, client side (gRPC)",
    "gate": "quality gate (judge call + checks)",
}
#: where each non-worker process kind goes
KIND_STAGES = {
    "model": MODEL,
    "triton": "Triton server (gRPC, batcher)",
    "s3": S3_SERVER,
    "broker": "broker (RabbitMQ)",
    "redis": "Redis",
    "receiver": "callback receiver",
    "producer": "producer (submit)",
}
#: the worker processes' CPU that no timed stage explains
REST = "orchestration rest (Celery, message gate, AMQP, task code)"
#: the order the stage table lists its rows in: the work, the worker's stages, the other processes
STAGE_ORDER = [MODEL, ENCODE, S3_SERVER, *WORKER_STAGES.values(), REST, *KIND_STAGES.values()]
#: what the orchestration figure leaves out: the work itself
NOT_ORCHESTRATION = (MODEL, ENCODE, S3_SERVER)


def stage_table(
    process_ms: Mapping[str, float], kinds: Mapping[str, str], worker_stage_ms: Mapping[str, float]
) -> dict[str, float]:
    """Stage -> CPU ms per image, adding up to the total of ``process_ms`` (harness excluded).

    ``process_ms``: each tracked row's ms per image; ``kinds``: each row's kind; and
    ``worker_stage_ms``: the stages timed inside the worker processes (``stage_cpu`` names).
    The worker rows are split into the timed stages and ``REST`` (what is left of them, which
    can come out slightly negative when the clocks disagree: it is kept so the rows add up).
    """
    table: dict[str, float] = {}
    worker_total = 0.0
    for label, ms in process_ms.items():
        kind = kinds.get(label, "worker")
        if kind == "harness":
            continue
        if kind == "worker":
            worker_total += ms
            continue
        stage = KIND_STAGES.get(kind, kind)
        table[stage] = table.get(stage, 0.0) + ms
    timed = 0.0
    for name, ms in worker_stage_ms.items():
        stage = WORKER_STAGES.get(name, f"{name} (worker)")
        table[stage] = table.get(stage, 0.0) + ms
        timed += ms
    table[REST] = worker_total - timed
    ranked = sorted(table, key=lambda k: STAGE_ORDER.index(k) if k in STAGE_ORDER else len(STAGE_ORDER))
    return {k: round(table[k], 3) for k in ranked}


def orchestration_ms(stages: Mapping[str, float]) -> float:
    """Every process's CPU per image minus model compute, encoding and the S3 server's own work."""
    return round(sum(v for k, v in stages.items() if k not in NOT_ORCHESTRATION), 3)


def total_ms(process_ms: Mapping[str, float], kinds: Mapping[str, str]) -> float:
    """Every tracked row but the benchmark's harness."""
    return round(sum(v for k, v in process_ms.items() if kinds.get(k, "worker") != "harness"), 3)
