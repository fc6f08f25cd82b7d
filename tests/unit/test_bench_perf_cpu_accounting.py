"""The pipeline benchmark's CPU accounting: the processes are found (by port, by argv), a pool's
exited children keep their CPU, windows add up, and the stage table adds up to the total."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import namedtuple
from typing import Any

import psutil
import pytest

from bench.perf.cpu_accounting import (
    ENCODE,
    MODEL,
    REST,
    S3_SERVER,
    CpuLedger,
    ThreadCpu,
    Tracked,
    listener_pid,
    orchestration_ms,
    stage_table,
    stub_model,
    total_ms,
    tree_cpu,
)

Addr = namedtuple("Addr", "ip port")
Conn = namedtuple("Conn", "laddr status pid")


def burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_listener_pid_is_the_listening_socket_on_that_port_not_a_client_of_it() -> None:
    connections = [
        Conn(Addr("127.0.0.1", 40000), psutil.CONN_ESTABLISHED, 11),  # a client's side
        Conn(Addr("127.0.0.1", 5672), psutil.CONN_ESTABLISHED, 12),  # the broker's side of it
        Conn(Addr("127.0.0.1", 6379), psutil.CONN_LISTEN, 13),
        Conn(Addr("0.0.0.0", 5672), psutil.CONN_LISTEN, 14),
    ]

    assert listener_pid(5672, connections=lambda: connections) == 14
    assert listener_pid(6379, connections=lambda: connections) == 13
    assert listener_pid(9999, connections=lambda: connections) is None


def test_stub_model_reads_the_model_folder_from_the_stub_argv() -> None:
    stub = [
        "/x/python3.11/python/triton_python_backend_stub",
        "/repo/triton_models/product_cgan/1/model.py",
        "triton_python_backend_shm_region_1",
        "1048576",
    ]

    assert stub_model(stub) == "product_cgan"
    assert stub_model(["/usr/bin/python3", "/repo/triton_models/product_cgan/1/model.py"]) is None
    assert stub_model([]) is None


def test_a_tree_keeps_the_cpu_of_children_that_exited_and_were_reaped() -> None:
    read = tree_cpu(psutil.Process().pid)
    before = read()

    subprocess.run(
        [
            sys.executable,
            "-c",
            "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass",
        ],
        check=True,
    )

    after = read()
    assert before is not None and after is not None
    assert after - before >= 0.25


def test_thread_cpu_counts_each_wrapped_call_on_its_own_thread() -> None:
    counter = ThreadCpu()
    work = counter.wrap(burn)
    threads = [threading.Thread(target=work, args=(0.1,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert 0.28 <= counter.read() < 1.0


def test_ledger_sums_windows_and_lists_rows_whose_process_was_missing() -> None:
    clock = {"a": 1.0, "b": 5.0}
    gone: dict[str, Any] = {"c": None}
    ledger = CpuLedger(
        [
            Tracked("a", "worker", lambda: clock["a"]),
            Tracked("b", "redis", lambda: clock["b"]),
            Tracked("c", "s3", lambda: gone["c"]),
        ]
    )

    with ledger.window(["a", "b"]):
        clock["a"] += 0.5
        clock["b"] += 0.25
    with ledger.window(["b", "c"]):
        clock["a"] += 10.0  # outside its windows: not counted
        clock["b"] += 0.25

    assert ledger.spent == {"a": 0.5, "b": 0.5}
    assert ledger.missing == {"c"}
    assert ledger.ms_per_image(100) == {"a": 5.0, "b": 5.0}


def test_stage_table_adds_up_to_every_process_but_the_harness() -> None:
    process_ms = {
        "listing worker: main process": 0.5,
        "listing worker: pool processes": 9.5,
        "callbacks worker: pool processes": 2.0,
        "tritonserver": 1.0,
        "Triton stub: product_cgan": 4.0,
        "S3 server (weed)": 3.0,
        "RabbitMQ (beam.smp)": 2.5,
        "Redis": 1.5,
        "callback receiver": 0.3,
        "producer": 0.2,
        "harness": 7.0,
    }
    kinds = {
        "listing worker: main process": "worker",
        "listing worker: pool processes": "worker",
        "callbacks worker: pool processes": "worker",
        "tritonserver": "triton",
        "Triton stub: product_cgan": "model",
        "S3 server (weed)": "s3",
        "RabbitMQ (beam.smp)": "broker",
        "Redis": "redis",
        "callback receiver": "receiver",
        "producer": "producer",
        "harness": "harness",
    }
    worker_stages = {"encode": 4.0, "upload": 2.0, "status": 1.0, "publish": 0.5, "delivery": 1.5}

    table = stage_table(process_ms, kinds, worker_stages)

    assert total_ms(process_ms, kinds) == 24.5
    assert sum(table.values()) == pytest.approx(24.5)
    assert table[MODEL] == 4.0 and table[S3_SERVER] == 3.0 and table[ENCODE] == 4.0
    assert table[REST] == pytest.approx(12.0 - 9.0)  # the workers' CPU no timed stage explains
    assert orchestration_ms(table) == pytest.approx(24.5 - 4.0 - 4.0 - 3.0)


def test_stage_table_keeps_a_negative_rest_so_the_rows_still_add_up() -> None:
    table = stage_table({"w": 1.0}, {"w": "worker"}, {"encode": 1.25})

    assert table[REST] == -0.25
    assert sum(table.values()) == pytest.approx(1.0)


def test_thread_cpu_counts_a_call_still_running_so_far() -> None:
    counter = ThreadCpu()
    release = threading.Event()

    def kept_connection() -> None:  # a kept-alive connection's thread: works, then waits
        burn(0.2)
        release.wait(10)

    thread = threading.Thread(target=counter.wrap(kept_connection))
    thread.start()
    deadline = time.monotonic() + 10
    while counter.read() < 0.15 and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert counter.read() >= 0.15  # counted while the call has not returned
        assert thread.is_alive()
    finally:
        release.set()
        thread.join()
    assert 0.18 <= counter.read() < 1.0
