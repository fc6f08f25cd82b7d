"""What a worker does at its start and stop, connected to Celery's signals on import
(``worker.app`` imports this; nothing here runs until the signal fires).

- every log line as one JSON object (``worker.logs``);
- ``worker_init`` (main process): check the clients can be built, declare the whole topology,
  dead-letter side included (Celery declares only the queues it consumes, and a message
  dead-lettered to an undeclared exchange is lost), and serve ``/metrics``, ``/healthz`` and
  ``/readyz`` on ``metrics_port`` (``worker.endpoints``; every pool process's samples, see
  ``worker.metrics``);
- ``worker_process_init``: each pool process builds its own clients (``worker.context``);
- shutdown: close them, and stop serving.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import signals

from core.topology import declare
from worker import context, endpoints, metrics
from worker.celery_app import app, enqueue_callback, settings, topology
from worker.context import WorkerContext
from worker.health import Liveness, Readiness, worker_probes
from worker.logs import use_json_format

log = logging.getLogger(__name__)

context.configure(functools.partial(WorkerContext.create, settings, notify=enqueue_callback))
metrics.observe_celery_tasks(lambda task_name: topology.queue_for(task_name).name)
#: the main process's consumer, once connected (``/healthz``)
liveness = Liveness()
_endpoints: endpoints.Endpoints | None = None


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def structured_logs(logger: logging.Logger, **_: Any) -> None:
    """Every worker log line as one JSON object (job id, model, version, attempt), see
    ``worker.logs``."""
    use_json_format(logger)


@signals.worker_init.connect
def declare_topology(**_: Any) -> None:
    """Check the clients can be built (a missing setting stops the worker here, not in each
    pool process), then declare every exchange and queue before consuming (idempotent)."""
    context.current()
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=5)
        declare(connection, settings)
    log.info("declared the broker topology (exchange %s)", settings.exchange)


@signals.worker_process_init.connect
def open_clients(**_: Any) -> None:
    """Build this pool process's Triton, S3, Redis and HTTP clients once."""
    context.warm_up()


@signals.worker_process_shutdown.connect
def close_clients(**_: Any) -> None:
    context.close()
    metrics.process_exited()


@signals.worker_init.connect
def serve_metrics_and_probes(sender: Any = None, **_: Any) -> None:
    """Main process, before the pool forks: every process's samples go to one folder, and
    ``/metrics``, ``/healthz`` and ``/readyz`` are served on ``metrics_port`` (0: neither)."""
    global _endpoints
    if not settings.metrics_port:
        return
    metrics.use_multiprocess_dir(settings.metrics_dir)
    queues = list(sender.app.amqp.queues.consume_from or {}) if sender is not None else []
    readiness = Readiness(worker_probes(settings, liveness, queues), cache_s=settings.readiness_cache_s)
    _endpoints = endpoints.serve(
        host=settings.metrics_host, port=settings.metrics_port, liveness=liveness, readiness=readiness
    )


@signals.worker_ready.connect
def consumer_connected(sender: Any = None, **_: Any) -> None:
    liveness.consumer = sender


@signals.worker_shutdown.connect
def stop_serving(**_: Any) -> None:
    if _endpoints is not None:
        _endpoints.stop()
    metrics.close_multiprocess_dir()
