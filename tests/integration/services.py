"""The shared services the integration tests run against (RabbitMQ, Redis), and test namespaces
(``embedded.namespace``).

A missing service fails the test with how to start it: these tests exist to run against the
real services, so a skip would hide that they did not run. ``scripts/services.sh`` starts both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
import uvicorn
from amqp.exceptions import AMQPError, NotFound
from kombu import Connection, Queue
from kombu.exceptions import OperationalError

from core.settings import AtelierSettings
from embedded.namespace import namespace, remove_namespace

__all__ = [
    "AMQP_URL",
    "BASE",
    "REDIS_URL",
    "drain",
    "namespace",
    "queue_depth",
    "remove_namespace",
    "require_services",
]

#: settings the isolated ones start from (``ATELIER_BROKER_URL`` / ``ATELIER_REDIS_URL`` respected)
BASE = AtelierSettings()
AMQP_URL = BASE.broker_url.get_secret_value()
REDIS_URL = BASE.redis_url.get_secret_value()

HOW_TO_START = "start them with scripts/services.sh (or point ATELIER_BROKER_URL / ATELIER_REDIS_URL at them)"


def require_rabbitmq() -> None:
    """Fail unless RabbitMQ answers at ``ATELIER_BROKER_URL``."""
    if not AMQP_URL.startswith("amqp"):
        pytest.fail(f"these tests need RabbitMQ, but ATELIER_BROKER_URL is {AMQP_URL.split(':')[0]}://")
    try:
        with Connection(AMQP_URL, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except (OSError, OperationalError, AMQPError) as error:
        pytest.fail(f"RabbitMQ does not answer at {_public(AMQP_URL)}: {error!r}; {HOW_TO_START}")


def require_redis() -> None:
    """Fail unless Redis answers ``PING`` at ``ATELIER_REDIS_URL``."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        pytest.fail(f"Redis does not answer at {_public(REDIS_URL)}: {error!r}; {HOW_TO_START}")
    finally:
        client.close()


def require_services() -> None:
    require_rabbitmq()
    require_redis()


def queue_depth(settings: AtelierSettings, queue_name: str) -> int:
    """Messages ready in ``queue_name``; 0 if it was never declared (the broker answers a passive
    declare with 404 NOT_FOUND). Any other error (no broker there, a refused login, a queue locked
    by another connection) is raised: a "nothing queued" assertion must not pass on it."""
    with Connection(settings.broker_url.get_secret_value(), connect_timeout=5) as connection:
        try:
            declared = connection.default_channel.queue_declare(queue=queue_name, passive=True)
        except NotFound:  # not declared: nothing was ever published to it
            return 0
        return int(declared.message_count)


def drain(queue: Queue) -> list[Any]:
    """Every message in ``queue`` (removed from it): ``[(headers, body), ...]``."""
    messages = []
    with Connection(AMQP_URL) as connection:
        bound = queue.bind(connection.default_channel)
        while (message := bound.get(no_ack=True)) is not None:
            messages.append((message.headers, message.decode()))
    return messages


def _public(url: str) -> str:
    """``url`` without its password."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` on uvicorn in a thread, on a free port; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
