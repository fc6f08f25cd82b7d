"""The Celery app every Atelier worker runs: ``celery -A worker.app worker -Q <queue> ...``.

One worker per queue, so a listing backlog never delays try-on and a slow callback receiver
never holds an inference worker (names from ``ATELIER_*_QUEUE``); each keeps
``ATELIER_WORKER_CONCURRENCY`` jobs in flight on Celery's threads pool (``ATELIER_WORKER_POOL``)::

    ATELIER_WORKER_CONCURRENCY=4 celery -A worker.app worker -Q atelier.tryon -n tryon@%h
    ATELIER_WORKER_CONCURRENCY=8 celery -A worker.app worker -Q atelier.listing -n listing@%h
    ATELIER_WORKER_CONCURRENCY=16 celery -A worker.app worker -Q atelier.callbacks -n callbacks@%h

Three modules make it, one job each:

- ``worker.celery_app``: the settings, the topology and the configured ``Celery`` app;
- ``worker.signals``: what runs at start and stop (declare the topology, build each pool
  process's clients, serve ``/metrics`` and the probes, watch the time limits of a threads pool);
- ``worker.gate``: the consumer that checks every message first, and the refusal policy.

The tasks themselves are ``worker.tasks`` (the app includes them by name). Importing this
module caps the process's malloc arenas first (``worker.malloc_arenas``).
"""

from __future__ import annotations

from worker.malloc_arenas import limit_malloc_arenas

limit_malloc_arenas()  # before Celery starts the pool's threads

import worker.signals  # noqa: E402, F401  (connects the worker's start and stop hooks)
from worker.celery_app import app, enqueue_callback, settings, topology, worker_config  # noqa: E402

__all__ = ["app", "enqueue_callback", "settings", "topology", "worker_config"]
