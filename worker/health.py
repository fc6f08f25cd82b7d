"""Is the worker alive, and can it work? The checks behind ``/healthz`` and ``/readyz``.

- **Liveness** (:class:`Liveness`, ``/healthz``): the main process answers and its consumer is
  connected to the broker. Nothing else: a worker whose Triton is down is alive, and restarting
  it would not bring Triton back.
- **Readiness** (:class:`Readiness`, ``/readyz``): the services the worker's queues need answer
  (``ops.checks``): the broker, Redis, and for inference queues Triton and S3. The verdict is
  kept ``readiness_cache_s`` seconds, so a probe every second costs one round of checks per
  period.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.worker_settings import WorkerSettings
from ops.checks import Probe, Report, run_checks, service_probes
from worker import metrics


class Liveness:
    """The worker's main process is up and its consumer connected (set by ``worker.app`` when
    Celery says the consumer is ready)."""

    def __init__(self) -> None:
        self.consumer: Any = None

    def check(self) -> str:
        """What the consumer's connection is; raises while it is not connected."""
        if self.consumer is None:
            raise RuntimeError("the consumer has not started yet")
        connection = getattr(self.consumer, "connection", None)
        if connection is None or not connection.connected:
            raise RuntimeError("the consumer is not connected to the broker")
        return "consumer connected"


class Readiness:
    """The cached readiness verdict of a worker.

    Parameters: ``probes`` (name -> probe, see :func:`service_probes`); keyword-only ``cache_s``
    (how long a verdict is reused, default 5) and ``clock`` (default ``time.monotonic``).
    Concurrent callers share one round of checks.
    """

    def __init__(
        self,
        probes: Mapping[str, Probe],
        *,
        cache_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probes = dict(probes)
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: Report | None = None
        self._last_at = 0.0

    def report(self) -> Report:
        with self._lock:
            now = self._clock()
            if self._last is None or now - self._last_at >= self.cache_s:
                self._last, self._last_at = run_checks(self.probes), now
                metrics.dependencies_checked((check.name, check.ok) for check in self._last.checks)
            return self._last


def worker_probes(settings: WorkerSettings, liveness: Liveness, queues: Sequence[str]) -> dict[str, Probe]:
    """The readiness probes of a worker consuming ``queues``: the broker (its consumer's
    connection, no new one), Redis, and Triton and S3 unless it only delivers callbacks."""
    probes: dict[str, Probe] = {"broker": liveness.check, **service_probes(settings, ["redis"])}
    if not queues or set(queues) - {settings.callback_queue}:
        probes.update(service_probes(settings, ["triton", "s3"]))
    return probes
