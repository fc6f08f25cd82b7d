"""``embedded.stack.Stack`` stops everything it started and removes its namespace: after a clean
run, and when a part fails to start half-way."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from amqp.exceptions import NotFound
from kombu import Connection

from embedded.stack import Pool, Stack
from embedded.workers import WorkerStartError
from tests.integration.services import AMQP_URL, require_services


def answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def declared(queue: str) -> bool:
    with Connection(AMQP_URL, connect_timeout=5) as connection:
        try:
            connection.default_channel.queue_declare(queue=queue, passive=True)
        except NotFound:
            return False
        return True


def test_leaving_a_stack_stops_its_processes_and_deletes_its_queues(tmp_path: Path) -> None:
    require_services()
    with Stack(tag="stack", workdir=tmp_path, workers=[Pool("callbacks")]) as stack:
        assert stack.s3 is not None and stack.receiver is not None
        worker, s3, receiver_port = stack.workers["callbacks"], stack.s3, stack.receiver.port
        queue = stack.settings.callback_queue
        assert worker.is_alive() and s3.is_alive() and answers(receiver_port)
        assert declared(queue)  # the worker declared the topology
    assert not worker.is_alive() and not s3.is_alive() and not answers(receiver_port)
    assert not declared(queue)


def test_a_worker_that_cannot_start_stops_what_was_started_before_it(tmp_path: Path) -> None:
    require_services()
    stack = Stack(tag="stack", workdir=tmp_path, workers=[Pool("callbacks", app="no_such_module")])
    with pytest.raises(WorkerStartError), stack:
        pass
    assert stack.s3 is not None and stack.receiver is not None
    assert not stack.s3.is_alive() and not answers(stack.receiver.port)
    assert not stack.workers["callbacks"].is_alive()
