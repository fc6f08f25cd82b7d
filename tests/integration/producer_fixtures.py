"""The real-broker setup both producer test modules share: a private namespace per test
(``atelier-test-<hex>`` exchanges, queues and Redis keys, deleted afterwards), a producer on it,
and a TCP proxy to RabbitMQ that can freeze or drop connections.

The test modules import the fixtures they use (``settings``, ``producer``, ``proxy``) by name.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection
from pydantic import SecretStr

from core.settings import AtelierSettings
from producer.client import Producer
from tests.integration.services import AMQP_URL, BASE, namespace, remove_namespace, require_services


def isolated_settings(**overrides: Any) -> AtelierSettings:
    """``BASE`` on a private namespace (``atelier-test-<hex>``), with short broker timeouts."""
    values = {**namespace("test"), "publish_confirm_timeout_s": 2.0, "broker_connect_timeout_s": 1.0}
    return BASE.model_copy(update={**values, **overrides})


def remove(settings: AtelierSettings) -> None:
    """Delete the test's queues, exchanges and Redis keys (on the real broker, whatever the settings)."""
    remove_namespace(settings, broker_url=AMQP_URL)


def unreachable_broker_settings() -> AtelierSettings:
    """Isolated settings whose broker is a local port nothing listens on (a broker that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return isolated_settings(broker_url=SecretStr(f"amqp://guest:guest@127.0.0.1:{port}//"))


@pytest.fixture
def settings() -> Iterator[AtelierSettings]:
    require_services()
    settings = isolated_settings()
    yield settings
    remove(settings)


@pytest.fixture
def producer(settings: AtelierSettings) -> Iterator[Producer]:
    with Producer(settings, watch_poll_interval_s=0.2) as producer:
        yield producer


class FreezableProxy:
    """A TCP proxy to RabbitMQ that can stop forwarding (a broker that never answers again) or
    drop its connections (a broker restart)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen = threading.Event()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        #: freeze as soon as the client sends these bytes (e.g. an AMQP method id)
        self.freeze_on: bytes | None = None
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        self.sockets += [a, b]
        with a, b:
            while not self.closed.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.05)
                if self.frozen.is_set():
                    continue
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is a and self.freeze_on is not None and self.freeze_on in data:
                        self.frozen.set()
                        break
                    (b if sock is a else a).sendall(data)

    def drop_connections(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.sockets.clear()

    def close(self) -> None:
        self.closed.set()
        self.server.close()


@pytest.fixture
def proxy() -> Iterator[FreezableProxy]:
    proxy = FreezableProxy(("127.0.0.1", Connection(AMQP_URL).port or 5672))
    yield proxy
    proxy.close()


def via(proxy: FreezableProxy, settings: AtelierSettings, **overrides: Any) -> AtelierSettings:
    url = SecretStr(f"amqp://guest:guest@127.0.0.1:{proxy.port}//")
    return settings.model_copy(update={"broker_url": url, **overrides})
