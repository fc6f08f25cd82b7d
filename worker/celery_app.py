"""The worker's Celery app and its configuration, with nothing started: importing this builds
the settings (``ATELIER_*``), the topology and the ``Celery`` object, and connects no signal.
``worker.app`` adds the wiring (``worker.signals``) and is what ``celery -A worker.app`` runs.

Configuration is :func:`worker_config`: the part the producer shares
(``core.topology.celery_config``: quorum queues, routes, JSON, no result backend) plus late
acks with reject-on-worker-lost (a job whose worker dies is redelivered, not lost), prefetch 1
per slot (a worker holds only the jobs it runs, so a long job never holds queued ones back), the
pool and its concurrency (``worker_pool``, ``worker_concurrency``: by default 8 threads, so one
process keeps 8 jobs in flight and Triton's dynamic batcher sees their calls together) and the
soft and hard time limits. Quorum queues need global QoS off, which Celery does for them: no
``--autoscale``.
"""

from __future__ import annotations

from typing import Any

from amqp.exceptions import AMQPError
from celery import Celery
from kombu.exceptions import KombuError

from core.contracts.jobs import JobEventType
from core.errors import ErrorCode, RetryableError
from core.publish import ARGS_REPR, kwargs_repr
from core.topology import CALLBACK_TASK, build_topology, callback_kwargs, callback_task_id, celery_config
from core.worker_settings import WorkerSettings
from worker import context, notifications


def worker_config(settings: WorkerSettings) -> dict[str, Any]:
    """Every Celery setting of a worker, from ``settings``."""
    return {
        **celery_config(settings),
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        # a threads pool keeps several jobs in flight (worker.time_limits gives it the time limits)
        "worker_pool": settings.worker_pool,
        "worker_concurrency": settings.worker_concurrency,
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
    """The worker's ``notify`` (``worker.boundaries.Notify``): a terminal event's first attempt
    in the calling job's thread, everything else queued (``worker.notifications``)."""
    notifications.notify_first_inline(job_id, event, context.current(), queue=queue_callback)


def queue_callback(
    job_id: str,
    event: JobEventType,
    /,
    *,
    attempt: int = 1,
    countdown: float | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Publish attempt ``attempt`` of ``event`` for ``job_id`` on the callback queue (confirmed),
    after ``countdown`` seconds, with ``payload`` (the event as the first attempt built it)."""
    from worker.tasks import delayed_countdown  # the tasks module imports this one

    kwargs: dict[str, Any] = callback_kwargs(job_id, event.value)
    if payload is not None:
        kwargs["payload"] = payload
    try:
        app.send_task(
            CALLBACK_TASK,
            kwargs=kwargs,
            task_id=callback_task_id(job_id, event.value),
            queue=topology.callbacks,
            retries=attempt - 1,  # the task counts its attempts from its retries
            countdown=None if countdown is None else delayed_countdown(countdown),
            argsrepr=ARGS_REPR,  # not Celery's saferepr of the payload (core.publish.kwargs_repr)
            kwargsrepr=kwargs_repr(kwargs),
        )
    except (KombuError, AMQPError, OSError) as error:
        raise RetryableError(
            ErrorCode.CALLBACK_ENQUEUE_FAILED, f"{event.value} callback not queued: {error!r}"
        ) from error
