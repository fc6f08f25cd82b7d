"""The Celery app every Atelier worker runs: ``celery -A worker.app worker -Q <queue> ...``.

One worker per queue, so a listing backlog never delays try-on and a slow callback receiver
never holds an inference worker (names from ``ATELIER_*_QUEUE``)::

    celery -A worker.app worker -Q atelier.tryon --pool prefork -c 1 -n tryon@%h
    celery -A worker.app worker -Q atelier.listing --pool prefork -c 1 -n listing@%h
    celery -A worker.app worker -Q atelier.callbacks --pool prefork -c 4 -n callbacks@%h

Three modules make it, one job each:

- ``worker.celery_app``: the settings, the topology and the configured ``Celery`` app;
- ``worker.signals``: what runs at start and stop (declare the topology, build each pool
  process's clients, serve ``/metrics`` and the probes);
- ``worker.gate``: the consumer that checks every message first, and the refusal policy.

The tasks themselves are ``worker.tasks`` (the app includes them by name).
"""

from __future__ import annotations

import worker.signals  # noqa: F401  (connects the worker's start and stop hooks)
from worker.celery_app import app, enqueue_callback, settings, topology, worker_config

__all__ = ["app", "enqueue_callback", "settings", "topology", "worker_config"]
