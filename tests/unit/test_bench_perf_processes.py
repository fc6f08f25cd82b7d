"""Finding a run's processes: a server the run started is told from a shared one, a server that
is not there is a row that reads nothing, and the receiver's request threads are timed once."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

from bench.perf.processes import SHARED, receiver_cpu, server_row
from embedded.receiver import CallbackReceiver


def test_a_server_this_run_started_is_not_called_shared_and_one_it_did_not_is() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        ours = server_row("S3 server (weed)", "s3", child.pid, what="S3")
        system = server_row("Redis", "redis", 1, what="Redis :6379")  # pid 1 is nobody's child here
    finally:
        child.kill()
        child.wait()

    assert "started by this run" in ours.note and SHARED not in ours.note
    assert SHARED in system.note
    assert system.read() is not None


def test_a_server_nobody_listens_for_is_a_row_that_reads_nothing() -> None:
    row = server_row("RabbitMQ (beam.smp)", "broker", None, what="AMQP :5999")

    assert row.label == "RabbitMQ (beam.smp) (not found)"
    assert row.read() is None
    assert "AMQP :5999" in row.note


def test_receiver_threads_are_timed_and_wrapping_twice_counts_once() -> None:
    with CallbackReceiver() as receiver:
        first = receiver_cpu(receiver)
        handler = receiver._server.process_request_thread  # type: ignore[union-attr]
        receiver_cpu(receiver)
        assert receiver._server.process_request_thread is handler  # type: ignore[union-attr]
        for _ in range(20):
            request = urllib.request.Request(receiver.url_for("perf"), data=b"{}", method="POST")
            try:
                urllib.request.urlopen(request, timeout=5)
            except urllib.error.HTTPError as refused:  # unsigned: 400, still handled
                assert refused.code == 400

        assert first() > 0
