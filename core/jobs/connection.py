"""The Redis client of the status store, and the one place its failures become typed."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files

import redis
from redis.exceptions import RedisError

from core.jobs.errors import StoreUnavailable
from core.settings import AtelierSettings


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn Redis failures into :class:`StoreUnavailable` (retryable)."""
    try:
        yield
    except RedisError as error:
        raise StoreUnavailable(f"status store: {error!r}") from error


def redis_client(settings: AtelierSettings) -> redis.Redis:
    """A client of the status store (``redis_url``) that decodes replies, with its timeouts."""
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
    )


def lua_script(name: str) -> str:
    """The text of ``core/jobs/scripts/{name}.lua`` (package data, shipped with the wheel)."""
    return files("core.jobs").joinpath("scripts", f"{name}.lua").read_text(encoding="utf-8")


class ThreadClients:
    """A client per thread over ``shared``'s connection pool, each holding one connection of
    its own (redis-py's single-connection mode), for the status store's many small commands.

    A command through the pool checks a connection out, polls it for stray data and checks it
    back in, each with its locks and metrics: about half of redis-py's CPU per command on a job
    record (``bench/perf``). A thread's own connection skips all three; threads still never
    share a socket. A dropped connection reconnects on its next command, as a pooled one does.
    A thread's connection goes back to the pool when the thread ends (its client is collected),
    and a forked child (``os.getpid()`` changed) takes a new one from the pool, which redis-py
    resets after a fork.
    """

    def __init__(self, shared: redis.Redis) -> None:
        self.shared = shared
        self._local = threading.local()

    def get(self) -> redis.Redis:
        """This thread's client (its connection opened now, the first time: ``StoreUnavailable``
        when Redis cannot be reached)."""
        local = self._local
        client: redis.Redis | None = getattr(local, "client", None)
        if client is None or local.pid != os.getpid():
            with redis_errors():
                client = redis.Redis(
                    connection_pool=self.shared.connection_pool, single_connection_client=True
                )
            local.client, local.pid = client, os.getpid()
        return client

    def close(self) -> None:
        """Give this thread's connection back and close the pool (every connection)."""
        client: redis.Redis | None = getattr(self._local, "client", None)
        if client is not None and self._local.pid == os.getpid():
            client.close()
        self._local = threading.local()
        self.shared.close()
