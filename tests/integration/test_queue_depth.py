"""``services.queue_depth`` on the real RabbitMQ: 0 only for a queue that was never declared.

Several tests assert "queue depth unchanged" with it; an error turned into 0 would let them pass
on a wrong queue name, a locked queue or a broker that is not there.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from amqp.exceptions import ResourceLocked
from kombu import Connection, Exchange, Producer, Queue
from kombu.exceptions import OperationalError
from pydantic import SecretStr

from embedded.process import free_port
from tests.integration.services import AMQP_URL, BASE, queue_depth, require_services


@pytest.fixture
def queue_name() -> Iterator[str]:
    require_services()
    name = f"atelier-depth-{uuid.uuid4().hex[:10]}"
    yield name
    with Connection(AMQP_URL) as connection:
        Queue(name).bind(connection.default_channel).delete()


def test_a_declared_queue_reports_its_ready_messages(queue_name: str) -> None:
    with Connection(AMQP_URL) as connection:
        queue = Queue(queue_name, Exchange(""), routing_key=queue_name, auto_delete=False)
        queue.bind(connection.default_channel).declare()
        producer = Producer(connection.default_channel)
        for _ in range(3):
            producer.publish({"n": 1}, exchange="", routing_key=queue_name)
    assert queue_depth(BASE, queue_name) == 3


def test_a_queue_never_declared_is_empty(queue_name: str) -> None:
    assert queue_depth(BASE, queue_name) == 0


def test_a_queue_locked_by_another_connection_is_an_error_not_zero(queue_name: str) -> None:
    with Connection(AMQP_URL) as owner:
        Queue(queue_name, exclusive=True).bind(owner.default_channel).declare()
        with pytest.raises(ResourceLocked):  # channel error 405, not 404: not "never declared"
            queue_depth(BASE, queue_name)


def test_a_broker_that_is_not_there_is_an_error_not_zero(queue_name: str) -> None:
    url = SecretStr(f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    nowhere = BASE.model_copy(update={"broker_url": url})
    with pytest.raises((OperationalError, OSError)):
        queue_depth(nowhere, queue_name)
