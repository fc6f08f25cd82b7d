"""Every process of one pipeline run, as the rows of a :class:`bench.perf.cpu_accounting.CpuLedger`.

:func:`pipeline_ledger` finds them: the rig's workers (main process and pool, per role) by the
pids the rig started; Triton's server and its stubs (one row per model) under the Triton pid;
the S3 server; RabbitMQ and Redis by the port their URL names (the machine's shared servers, or
a node the run started); the callback receiver's threads in this process (timed by wrapping its
per-connection handler once, :func:`receiver_cpu`); the producer and the harness (the rest of this
process: waiting, sampling).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import psutil

from bench.perf.cpu_accounting import (
    CpuLedger,
    ThreadCpu,
    Tracked,
    descendants_cpu,
    is_ours,
    listener_pid,
    own_cpu,
    stub_model,
    stub_of,
    thread_cpu,
    tree_cpu,
)
from embedded.receiver import CallbackReceiver

#: the producer's row: the CPU of the thread that submits the jobs (``time.thread_time``)
PRODUCER = "producer (submit, this process)"
#: this process outside the producer and the receiver: the benchmark's own waiting and sampling
HARNESS = "benchmark harness (this process: waits, sampling)"
#: the receiver's row
RECEIVER = "callback receiver (threads of this process)"
#: a shared server's CPU includes every other client's: the note says so
SHARED = "shared with the machine's other clients: its CPU over the window includes theirs"


def port_of(url: str, default: int) -> int:
    return urlsplit(url).port or default


def receiver_cpu(receiver: CallbackReceiver) -> Callable[[], float]:
    """CPU of the receiver's threads: each connection's thread (its handler wrapped once; a kept
    connection's counted so far) plus the accepting thread. Reaches into the receiver's server,
    which only this benchmark does."""
    server: Any = receiver._server
    counter: ThreadCpu | None = getattr(server, "_bench_cpu", None)
    if counter is None:
        counter = ThreadCpu()
        server.process_request_thread = counter.wrap(server.process_request_thread)
        server._bench_cpu = counter
    thread = receiver._thread
    accept = thread_cpu(thread.native_id if thread is not None else None)

    def read() -> float:
        return counter.read() + (accept() or 0.0)

    return read


def server_row(label: str, kind: str, pid: int | None, *, what: str) -> Tracked:
    """A server found by pid: its tree, and whether it is the machine's shared one."""
    if pid is None:
        return Tracked(f"{label} (not found)", kind, lambda: None, note=f"no process listens for {what}")
    shared = not is_ours(pid)
    name = psutil.Process(pid).name()
    note = f"pid {pid} ({name}); " + (SHARED if shared else "started by this run")
    return Tracked(label, kind, tree_cpu(pid), note=note)


def worker_rows(workers: dict[str, int | None]) -> list[Tracked]:
    """Two rows per worker (role -> the Celery main process's pid): the main process, its pool."""
    rows: list[Tracked] = []
    for role, pid in workers.items():
        rows.append(Tracked(f"{role} worker: main process", "worker", own_cpu(pid)))
        rows.append(Tracked(f"{role} worker: pool processes", "worker", descendants_cpu(pid)))
    return rows


def pipeline_ledger(
    *,
    triton_pid: int | None,
    s3_pid: int | None,
    broker_url: str,
    redis_url: str,
    receiver: CallbackReceiver,
    producer: ThreadCpu,
) -> CpuLedger:
    """The ledger of one run, less the workers (add :func:`worker_rows` once they started)."""
    rows: list[Tracked] = []
    if triton_pid is not None:
        rows.append(Tracked("tritonserver", "triton", own_cpu(triton_pid), note=f"pid {triton_pid}"))
        models = sorted(
            {m for c in psutil.Process(triton_pid).children(recursive=True) if (m := stub_model(c.cmdline()))}
        )
        for model in models:
            rows.append(
                Tracked(f"Triton stub: {model}", "model", descendants_cpu(triton_pid, match=stub_of(model)))
            )
    rows.append(server_row("S3 server (weed)", "s3", s3_pid, what="S3"))
    broker_port = port_of(broker_url, 5672)
    rows.append(
        server_row("RabbitMQ (beam.smp)", "broker", listener_pid(broker_port), what=f"AMQP :{broker_port}")
    )
    redis_port = port_of(redis_url, 6379)
    rows.append(server_row("Redis", "redis", listener_pid(redis_port), what=f"Redis :{redis_port}"))
    me, receiver_read = own_cpu(os.getpid()), receiver_cpu(receiver)
    rows.append(Tracked(RECEIVER, "receiver", receiver_read))
    rows.append(
        Tracked(PRODUCER, "producer", producer.read, note="the thread that submits (``Producer.submit``)")
    )

    def harness() -> float | None:
        own = me()
        return None if own is None else own - receiver_read() - producer.read()

    rows.append(Tracked(HARNESS, "harness", harness, note="not part of the pipeline: left out of the total"))
    return CpuLedger(rows)
