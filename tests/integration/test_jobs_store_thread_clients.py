"""The status store's client per thread (``core.jobs.connection.ThreadClients``): each thread
keeps one connection of its own, gives it back to the pool when it ends, and a forked child
never writes on its parent's socket."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from core.jobs import JobStore, StoreUnavailable
from core.jobs.connection import ThreadClients
from tests.redis_namespace import private_namespace


@pytest.fixture
def shared() -> Iterator[redis.Redis]:
    with private_namespace() as (_, client):
        yield client


def in_thread(clients: ThreadClients) -> tuple[int, object]:
    """The id of the client another thread used, and its connection (the client is not kept)."""
    seen: list[tuple[int, object]] = []
    thread = threading.Thread(target=lambda: seen.append((id(c := clients.get()), c.connection)))
    thread.start()
    thread.join()
    return seen[0]


def test_each_thread_keeps_one_connection_of_its_own(shared: redis.Redis) -> None:
    clients = ThreadClients(shared)
    mine = clients.get()
    assert clients.get() is mine and mine.connection is not None
    assert mine.set("atelier-test:thread-clients", "1") and mine.delete("atelier-test:thread-clients")
    other, connection = in_thread(clients)
    assert other != id(mine) and connection is not mine.connection


def test_a_finished_threads_connection_goes_back_to_the_pool(shared: redis.Redis) -> None:
    clients = ThreadClients(shared)
    pool = shared.connection_pool
    _, connection = in_thread(clients)
    assert connection in pool._available_connections
    assert connection not in pool._in_use_connections


def test_a_forked_child_takes_a_new_connection(shared: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    clients = ThreadClients(shared)
    parents = clients.get()
    monkeypatch.setattr("core.jobs.connection.os.getpid", lambda: -1)
    child = clients.get()
    assert child is not parents and child.connection is not parents.connection
    assert child.ping()


def test_a_store_unreachable_when_a_thread_first_connects_is_unavailable() -> None:
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, decode_responses=True)
    with pytest.raises(StoreUnavailable):
        ThreadClients(unreachable).get()


def test_a_store_closed_and_used_again_reconnects() -> None:
    with private_namespace() as (settings, _):
        store = JobStore(settings)
        assert store.get("no-such-job") is None
        store.close()
        assert store.get("no-such-job") is None  # a new connection, from the pool
        store.close()
