"""The Celery app every Atelier worker runs: ``celery -A worker.app worker -Q <queue> ...``.

One worker per queue, so a listing backlog never delays try-on and a slow callback receiver
never holds an inference worker (names from ``ATELIER_*_QUEUE``)::

    celery -A worker.app worker -Q atelier.tryon --pool prefork -c 1 -n tryon@%h
    celery -A worker.app worker -Q atelier.listing --pool prefork -c 1 -n listing@%h
    celery -A worker.app worker -Q atelier.callbacks --pool prefork -c 4 -n callbacks@%h

Configuration is :func:`worker_config`: the part the producer shares
(``core.topology.celery_config``: quorum queues, routes, JSON, no result backend) plus late
acks with reject-on-worker-lost (a job whose worker dies is redelivered, not lost), prefetch 1
(a process holds one job at a time, so a long job never holds queued ones back) and the soft and
hard time limits. Quorum queues need global QoS off, which Celery does for them: no ``--autoscale``.

At start the worker declares the whole topology, dead-letter side included (Celery declares
only the queues it consumes, and a message dead-lettered to an undeclared exchange is lost).
Each pool process builds its own clients (``worker.context``) in ``worker_process_init``.
The main process serves ``/metrics``, ``/healthz`` and ``/readyz`` on ``metrics_port``
(``worker.endpoints``; every pool process's samples, see ``worker.metrics``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from amqp.exceptions import AMQPError
from celery import Celery, signals
from kombu.exceptions import KombuError

from core.contracts.jobs import JobEventType
from core.errors import ErrorCode, PermanentError, RetryableError
from core.topology import (
    CALLBACK_TASK,
    build_topology,
    callback_kwargs,
    callback_task_id,
    celery_config,
    declare,
)
from worker import context, endpoints, metrics, pipeline
from worker.health import Liveness, Readiness, worker_probes
from worker.logs import use_key_value_format
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)


def worker_config(settings: WorkerSettings) -> dict[str, Any]:
    """Every Celery setting of a worker, from ``settings``."""
    return {
        **celery_config(settings),
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.task_soft_time_limit_s,
        "task_time_limit": settings.task_time_limit_s,
        # a job running while the broker connection drops will be redelivered: stop it
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_connection_retry_on_startup": True,
        # every message passes worker.gate first: a poison message is dead-lettered with a reason
        "worker_consumer": "worker.gate:GatedConsumer",
    }


settings = WorkerSettings()
topology = build_topology(settings)
app = Celery("atelier", include=["worker.tasks"])
app.conf.update(worker_config(settings))


def enqueue_callback(job_id: str, event: JobEventType) -> None:
    """Queue the delivery of ``event`` for ``job_id`` on the callback queue (confirmed)."""
    try:
        app.send_task(
            CALLBACK_TASK,
            kwargs=callback_kwargs(job_id, event.value),
            task_id=callback_task_id(job_id, event.value),
            queue=topology.callbacks,
        )
    except (KombuError, AMQPError, OSError) as error:
        raise RetryableError(
            ErrorCode.CALLBACK_ENQUEUE_FAILED, f"{event.value} callback not queued: {error!r}"
        ) from error


context.configure(settings, notify=enqueue_callback)
metrics.observe_celery_tasks(lambda task_name: topology.queue_for(task_name).name)
#: the main process's consumer, once connected (``/healthz``)
liveness = Liveness()
_endpoints: endpoints.Endpoints | None = None


def fail_refused_job(job_id: str, code: ErrorCode, detail: str, request: Mapping[str, Any] | None) -> None:
    """End ``job_id`` ``failed`` because ``worker.gate`` refused its message (``code``: why);
    its ``job.failed`` callback is queued if the request's callback part is readable."""
    callback = pipeline.callback_of(request or {})
    pipeline.fail(job_id, callback, context.current(), PermanentError(code, detail))


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def structured_logs(logger: logging.Logger, **_: Any) -> None:
    """Every worker log line as ``key=value`` fields (job id, model, version, attempt), see
    ``worker.logs``."""
    use_key_value_format(logger)


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
