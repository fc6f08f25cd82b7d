"""One client per process: a socket or channel opened before a fork must not be shared with the child.

Celery's prefork pool creates the worker's objects in the parent and forks the pool processes
from it; each process makes its own client on first use instead. Under the threads pool several
jobs share the process's client (gRPC channels, urllib3, httpx and redis-py pools are
thread-safe): a lock makes sure only one is made.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, Protocol, Self, TypeVar


class Closable(Protocol):
    def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=Closable)


class PerProcessClient(Generic[ClientT]):
    """Owns ``factory()``'s client: made on first use and again in a forked child; a context
    manager whose exit closes it (only in the process that made it).

    Parameters: ``factory`` (makes a client; called once per process).
    """

    def __init__(self, factory: Callable[[], ClientT]) -> None:
        self._factory = factory
        self._client: ClientT | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> ClientT:
        """This process's client (made on first use, and again in a forked child)."""
        client = self._client
        if client is not None and self._pid == os.getpid():
            return client
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client = self._factory()
                self._pid = os.getpid()
            return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
