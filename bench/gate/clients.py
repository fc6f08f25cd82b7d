"""Worker-like clients in processes of their own, measuring a design's images/s, latency and CPU.

Workers are separate processes (Celery's prefork pool), each with its own interpreter: clients as
threads of one process would share one GIL, and a design that makes more calls per job would pay
for it in this benchmark but not in production. The processes are started once (``spawn``: no
gRPC state crosses a fork) and reused for every measurement.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import psutil
import tritonclient.grpc as grpcclient

from bench.gate.designs import design
from serving_contract.palette import NUM_COLOURS
from serving_contract.taxonomy import NUM_CATEGORIES

#: calls per client before the window. TorchScript's profiling executor optimises a model over its
#: first calls (tens of ms each, then a few ms), which a long-running server has long done: run
#: the designs after other traffic (``python -m bench.gate`` does) so these only warm the clients
WARM_UP_CALLS = 3


@dataclass(frozen=True)
class Point:
    """One measured (design, job size, concurrency) point.

    CPU per image is the Triton process tree's (server and backend stubs) and the clients'
    (with the checks where a design runs them), over the window.
    """

    design: str
    job_size: int
    concurrency: int
    jobs: int
    images_per_s: float
    latency_min_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    server_cpu_ms_per_image: float
    client_cpu_ms_per_image: float


def tree_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` and its descendants (0 without a pid)."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def client_process(grpc_url: str, index: int, inbox: Any, outbox: Any, go: Any, stop: Any) -> None:
    """One worker: for each (design, job size, thresholds) received, warm up, say ready, send jobs
    of one product from ``go`` until ``stop``, and answer (latencies, CPU seconds)."""
    client = grpcclient.InferenceServerClient(url=grpc_url)
    categories_seed = index
    seed = 1_000_000 * (index + 1)
    try:
        while (command := inbox.get()) is not None:
            name, job_size, gate = command
            call = design(name, gate)
            categories = np.full(job_size, categories_seed % NUM_CATEGORIES)
            colours = np.full(job_size, categories_seed % NUM_COLOURS)
            for _ in range(WARM_UP_CALLS):
                seed += job_size
                call(client, categories, colours, np.arange(job_size) + seed)
            outbox.put("ready")
            go.wait()
            started, latencies = time.process_time(), []
            while not stop.is_set():
                seed += job_size
                t0 = time.perf_counter()
                call(client, categories, colours, np.arange(job_size) + seed)
                latencies.append(time.perf_counter() - t0)
            outbox.put((latencies, time.process_time() - started))
    finally:
        client.close()


class ClientPool:
    """``size`` client processes against ``grpc_url``; a context manager that stops them.

    ``gate``: the thresholds the ``WITH_CHECKS`` design runs the checks with.
    """

    def __init__(self, grpc_url: str, size: int, *, gate: dict[str, Any] | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self.gate = gate or {}
        self.go, self.stop = context.Event(), context.Event()
        self.outbox: Any = context.Queue()
        self.inboxes: list[Any] = [context.Queue() for _ in range(size)]
        self.processes = [
            context.Process(
                target=client_process,
                args=(grpc_url, k, inbox, self.outbox, self.go, self.stop),
                daemon=True,
            )
            for k, inbox in enumerate(self.inboxes)
        ]

    def __enter__(self) -> ClientPool:
        for process in self.processes:
            process.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()

    def measure(
        self, name: str, job_size: int, concurrency: int, window_s: float, *, server_pid: int | None
    ) -> Point:
        """``concurrency`` of the clients send jobs of ``job_size`` back to back for ``window_s``."""
        self.go.clear()
        self.stop.clear()
        for inbox in self.inboxes[:concurrency]:
            inbox.put((name, job_size, self.gate))
        for _ in range(concurrency):
            if (answer := self.outbox.get(timeout=120)) != "ready":
                raise RuntimeError(f"a client answered {answer!r} before the window")
        server_cpu, start = tree_cpu_s(server_pid), time.perf_counter()
        self.go.set()
        time.sleep(window_s)
        self.stop.set()
        answers = [self.outbox.get(timeout=120) for _ in range(concurrency)]
        elapsed = time.perf_counter() - start  # with the jobs in flight at the stop, as the CPU
        server_cpu = tree_cpu_s(server_pid) - server_cpu
        done = np.asarray([x for latencies, _ in answers for x in latencies])
        images = max(1, len(done) * job_size)

        def ms(value: float) -> float:
            return round(1000 * value, 2)

        return Point(
            design=name,
            job_size=job_size,
            concurrency=concurrency,
            jobs=len(done),
            images_per_s=round(len(done) * job_size / elapsed, 1),
            latency_min_ms=ms(float(done.min())) if len(done) else 0.0,
            latency_p50_ms=ms(float(np.median(done))) if len(done) else 0.0,
            latency_p95_ms=ms(float(np.percentile(done, 95))) if len(done) else 0.0,
            server_cpu_ms_per_image=ms(server_cpu / images),
            client_cpu_ms_per_image=ms(sum(cpu for _, cpu in answers) / images),
        )
