"""``api.cors.RegisteredOrigins``: the origins a preflight is answered for, read from the key store
at most once per ``ttl_s``, and the last set kept while the store is down (a stub store and clock
here; the real store and HTTP in ``tests/integration/test_api_cors.py``)."""

from __future__ import annotations

import anyio
import pytest

from api.cors import RegisteredOrigins
from api.keys.errors import KeyStoreUnavailable


class StubStore:
    def __init__(self) -> None:
        self.origins = frozenset({"https://shop.example"})
        self.reads = 0
        self.down = False

    def all_origins(self) -> frozenset[str]:
        self.reads += 1
        if self.down:
            raise KeyStoreUnavailable("the key store is unavailable: stub")
        return self.origins


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_origins_are_read_once_per_ttl_and_changes_show_after_it() -> None:
    store, clock = StubStore(), Clock()
    origins = RegisteredOrigins(store, ttl_s=30, clock=clock)

    async def scenario() -> None:
        assert await origins.contains("https://shop.example")
        assert not await origins.contains("https://evil.example")
        assert store.reads == 1
        store.origins = frozenset({"https://evil.example"})
        clock.now += 29
        assert not await origins.contains("https://evil.example")  # still the set read before
        clock.now += 2
        assert await origins.contains("https://evil.example") and store.reads == 2

    anyio.run(scenario)


def test_a_store_down_keeps_the_last_set_and_with_none_read_it_is_an_error() -> None:
    store, clock = StubStore(), Clock()
    origins = RegisteredOrigins(store, ttl_s=1, clock=clock)

    async def scenario() -> None:
        assert await origins.contains("https://shop.example")
        store.down = True
        clock.now += 5
        assert await origins.contains("https://shop.example")  # the last set read
        assert store.reads == 2

    anyio.run(scenario)
    fresh = RegisteredOrigins(store, ttl_s=1, clock=clock)
    with pytest.raises(KeyStoreUnavailable):
        anyio.run(fresh.contains, "https://shop.example")


def test_concurrent_preflights_share_one_read() -> None:
    store = StubStore()
    origins = RegisteredOrigins(store, ttl_s=30)

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(origins.contains, "https://shop.example")

    anyio.run(scenario)
    assert store.reads == 1
