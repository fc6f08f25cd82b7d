"""What a worker does at its start and stop, connected to Celery's signals on import
(``worker.app`` imports this; nothing here runs until the signal fires).

- every log line as one JSON object, without Celery's line per succeeded task (``worker.logs``);
- ``worker_init`` (main process): check the clients can be built, declare the whole topology,
  dead-letter side included (Celery declares only the queues it consumes, and a message
  dead-lettered to an undeclared exchange is lost), and serve ``/metrics``, ``/healthz`` and
  ``/readyz`` on ``metrics_port`` (``worker.endpoints``; every pool process's samples, see
  ``worker.metrics``);
- ``worker_process_init``: each pool process builds its own clients (``worker.context``) and
  pays its one-time costs before its first job (``worker.warm_up``); a pool without child
  processes (threads, solo) does that at ``worker_init``;
- a pool other than prefork (the default threads pool) gets the soft and hard time limits from
  ``worker.time_limits``, which Celery enforces for prefork only;
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
from worker.logs import quiet_task_successes, use_json_format
from worker.time_limits import ThreadTimeLimits, needs_own_time_limits
from worker.warm_up import warm_process

log = logging.getLogger(__name__)

context.configure(functools.partial(WorkerContext.create, settings, notify=enqueue_callback))
metrics.observe_celery_tasks(lambda task_name: topology.queue_for(task_name).name)
#: the main process's consumer, once connected (``/healthz``)
liveness = Liveness()
_endpoints: endpoints.Endpoints | None = None
#: the time limits of a threads or solo pool (``None`` under prefork, which has its own)
_time_limits: ThreadTimeLimits | None = None


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def structured_logs(logger: logging.Logger, **_: Any) -> None:
    """Every worker log line as one JSON object (job id, model, version, attempt), and no Celery
    line per succeeded task, see ``worker.logs``."""
    use_json_format(logger)
    quiet_task_successes()


@signals.worker_init.connect
def declare_topology(**_: Any) -> None:
    """Check the clients can be built (a missing setting stops the worker here, not in each
    pool process), then declare every exchange and queue before consuming (idempotent)."""
    context.current()
    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=5)
        declare(connection, settings)
    log.info("declared the broker topology (exchange %s)", settings.exchange)


@signals.worker_init.connect
def enforce_time_limits(sender: Any = None, **_: Any) -> None:
    """A threads or solo pool ignores Celery's time limits: watch them here instead."""
    global _time_limits
    pool = getattr(sender, "pool_cls", None) or settings.worker_pool
    if not needs_own_time_limits(pool):
        return
    _time_limits = ThreadTimeLimits(settings.task_soft_time_limit_s, settings.task_time_limit_s)
    _time_limits.start()
    log.info(
        "time limits watched in-process (soft %.0f s, hard %.0f s)",
        settings.task_soft_time_limit_s,
        settings.task_time_limit_s,
    )


@signals.task_prerun.connect
def task_clock_starts(task_id: str = "", **_: Any) -> None:
    if _time_limits is not None:
        _time_limits.task_started(task_id)


@signals.task_postrun.connect
def task_clock_stops(**_: Any) -> None:
    if _time_limits is not None:
        _time_limits.task_finished()


@signals.worker_process_init.connect
def open_clients(**_: Any) -> None:
    """Build this pool process's Triton, S3, Redis and HTTP clients once, before its first job."""
    warm_process(_consumed_queues(app), callback_queue=topology.callbacks.name, celery_app=app)


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
    if _time_limits is not None:
        _time_limits.stop()
    # the main process's own clients: the ones a threads pool's jobs used (prefork: its checks')
    context.close()
    if _endpoints is not None:
        _endpoints.stop()
    metrics.close_multiprocess_dir()


@signals.worker_init.connect
def warm_threads_pool(sender: Any = None, **_: Any) -> None:
    """A pool without child processes (threads, solo) runs its jobs in this process: pay the
    one-time costs here, before consuming, not in its first jobs (``worker.warm_up``)."""
    pool = getattr(sender, "pool_cls", None) or settings.worker_pool
    if needs_own_time_limits(pool):
        queues = _consumed_queues(sender.app if sender is not None else app)
        warm_process(queues, callback_queue=topology.callbacks.name, celery_app=app)


def _consumed_queues(celery_app: Any) -> list[str]:
    return list(celery_app.amqp.queues.consume_from or {})
