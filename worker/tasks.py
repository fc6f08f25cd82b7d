"""The Celery tasks: thin wrappers that hand each message to ``worker.pipeline`` or
``worker.notifications`` and turn their answer into a Celery retry.

Names come from ``core.topology`` (the producer sends by name, never importing this).
Message keyword arguments:

- ``LISTING_TASK``, ``TRYON_TASK``: ``job_id``, ``request`` (the request as JSON); task id = job id.
- ``CALLBACK_TASK``: ``job_id``, ``event`` (e.g. ``job.succeeded``); retries add ``payload``, the
  event as built on the first attempt, so every attempt sends the same body.
- ``REGENERATE_TASK``: ``job_id``, ``variant``, ``regeneration`` (``worker.regeneration``).

A retry publishes a new message with a countdown (on RabbitMQ through Celery's native delayed
delivery, which needs the topic exchange). If that message cannot be published, the job's
message is rejected back to its queue instead of acknowledged, so the job is never left behind.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from celery import Task
from celery.exceptions import Reject, Retry

from core.errors import RetryableError
from core.jobs import StoreUnavailable
from core.publish import ARGS_REPR, kwargs_repr
from core.topology import CALLBACK_TASK, LISTING_TASK, REGENERATE_TASK, TRYON_TASK, callback_kwargs
from worker import context, model_versions, notifications, pipeline
from worker.app import app, topology
from worker.app import settings as app_settings
from worker.context import WorkerContext
from worker.regeneration import regenerate

log = logging.getLogger(__name__)

#: the shortest retry delay: native delayed delivery counts whole seconds and refuses 0
MIN_COUNTDOWN_S = 1
#: ``run_listing`` or ``run_tryon``
JobRunner = Callable[..., None]


@app.task(name=LISTING_TASK, bind=True, max_retries=None)
def generate_listing(self: Task, job_id: str, request: dict[str, Any]) -> None:
    """Product images for a listing (``worker.pipeline.run_listing``)."""
    _run_job(self, pipeline.run_listing, job_id, request)


@app.task(name=TRYON_TASK, bind=True, max_retries=None)
def generate_tryon(self: Task, job_id: str, request: dict[str, Any]) -> None:
    """A try-on image (``worker.pipeline.run_tryon``)."""
    _run_job(self, pipeline.run_tryon, job_id, request)


@app.task(name=REGENERATE_TASK, bind=True, max_retries=None)
def regenerate_listing_image(self: Task, job_id: str, variant: int, regeneration: int) -> None:
    """One listing image made again after a reviewer rejected it (``worker.regeneration``)."""
    queue = topology.queue_for(REGENERATE_TASK).name
    try:
        regenerate(job_id, variant, regeneration, _context(), tries=self.request.retries + 1)
    except pipeline.RetryLater as later:
        _retry(self, later.countdown, exc=later.error, queue=queue)
    except StoreUnavailable as error:
        _retry(self, _store_backoff(self), exc=error, queue=queue)


@app.task(name=CALLBACK_TASK, bind=True, max_retries=None)
def deliver_callback(self: Task, job_id: str, event: str, payload: dict[str, Any] | None = None) -> None:
    """One signed delivery of ``event`` (``worker.notifications.deliver_callback``); retried on
    the configured schedule until delivered, refused or out of attempts."""
    try:
        delivery = notifications.deliver_callback(
            job_id,
            event,
            _context(),
            attempt=self.request.retries + 1,
            payload=payload,
            redelivered=_redelivered(self),
        )
    except StoreUnavailable as error:
        _retry(self, _store_backoff(self), exc=error, queue=topology.callbacks.name)
        return
    if delivery.retry_in is not None:
        kwargs = {**callback_kwargs(job_id, event), "payload": delivery.payload}
        _retry(self, delivery.retry_in, kwargs=kwargs, queue=topology.callbacks.name)


def _run_job(task: Task, run: JobRunner, job_id: str, request: Mapping[str, Any]) -> None:
    queue = topology.queue_for(task.name).name
    try:
        ctx = _context()
        request = model_versions.with_default_version(task.name, request, ctx)
        run(job_id, request, ctx, redelivered=_redelivered(task))
    except pipeline.RetryLater as later:
        _retry(task, later.countdown, exc=later.error, queue=queue)
    except StoreUnavailable as error:  # no record to count attempts in: back off and try again
        _retry(task, _store_backoff(task), exc=error, queue=queue)
    except RetryableError as error:
        # raised outside the job's own failure handling: a callback not queued at the start
        # (broker down). The retry runs the job again and queues what is missing.
        _retry(task, _store_backoff(task), exc=error, queue=queue)


def delayed_countdown(seconds: float) -> int:
    """``seconds`` as a countdown RabbitMQ's native delayed delivery accepts: whole seconds, at
    least 1, never sooner than asked. Celery truncates to ``int`` and kombu refuses 0, so a
    compressed schedule's 0.5 s would make every retry fail to publish."""
    return max(MIN_COUNTDOWN_S, math.ceil(seconds))


def _retry(task: Task, countdown: float, *, queue: str, **options: Any) -> None:
    """Publish the retry (same task id, ``retries + 1``), log it (Celery's own INFO line is off,
    ``worker.logs``) and acknowledge this message.

    The tasks set no Celery retry limit (``max_retries=None``; Celery's default of 3 would
    refuse the 4th callback retry): the budgets are ours, ``job_retry_attempts`` and
    ``callback_retry_schedule_s``."""
    seconds = delayed_countdown(countdown)
    # the headers show the job id, not Celery's saferepr of the request or payload (core.publish)
    shown = kwargs_repr(options.get("kwargs") or getattr(task.request, "kwargs", None) or {})
    try:
        raise task.retry(countdown=seconds, queue=queue, argsrepr=ARGS_REPR, kwargsrepr=shown, **options)
    except Retry:
        request = task.request
        job_id = (getattr(request, "kwargs", None) or {}).get("job_id")
        why = f": {options['exc']}" if options.get("exc") is not None else ""
        extra = {"job_id": job_id}
        log.info(
            "task %s[%s] retry in %d s%s", task.name, getattr(request, "id", None), seconds, why, extra=extra
        )
        raise
    except Exception as error:  # the retry was not published: let the broker redeliver this one
        raise Reject(f"retry not published: {error!r}", requeue=True) from error


def _store_backoff(task: Task) -> float:
    """The delay before retrying a message that found Redis down (jobs' backoff settings)."""
    s = app_settings
    return pipeline.backoff_delay(
        task.request.retries + 1, s.job_retry_backoff_base_s, s.job_retry_backoff_max_s
    )


def _redelivered(task: Task) -> bool:
    """The broker delivered this message before (its worker was lost), or it is a retry."""
    delivery_info = task.request.delivery_info or {}
    return bool(delivery_info.get("redelivered")) or bool(task.request.retries)


def _context() -> WorkerContext:
    return context.current()
