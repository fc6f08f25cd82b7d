"""What a worker process does once before its first job, so that job does not pay for it.

A fresh process's first listing job cost about 230 ms of CPU more than the next ones, and its
first callback delivery about 80 ms (2-core EPYC, ``bench.perf``): modules imported on first
use (scipy's FFT under the quality gate, Pillow's encoder plugins, httpcore under httpx), the
TLS context of the callback client, and the first connection to each service. The prefork pool
paid some of it in ``worker_process_init``; the threads pool, the default, paid all of it inside
its first jobs. :func:`warm_process` does it at start instead, for what the worker's queues need:

- every worker: its context (``worker.context``) and a Redis connection;
- a worker of job queues (listing, try-on, regeneration): S3 (the bucket made sure of), Triton
  (the channel and a readiness call), the backpressure's Redis client (a count), one encode per
  output format, the quality gate's checks on two blank images, and the Celery app's publishing
  side (its result-backend lookup, which scans every package's entry points, and a producer's
  broker connection) that the first ``job.*`` callback would otherwise open;
- every worker: the callback client (``worker.callbacks``; a job's thread sends its terminal
  event's first attempt itself).

Nothing here may stop a worker from starting: a service that is not up yet is only logged, and
the first job meets it as it would have.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection
from typing import get_args

import numpy as np
from celery import Celery

from serving_contract.taxonomy import NUM_CATEGORIES
from serving_contract.tensors import PRODUCT_IMAGE_SIZE
from worker import context
from worker.context import WorkerContext
from worker.encoding import Format, encode

log = logging.getLogger(__name__)

#: the size the encoders are warmed at (the requests' default display size)
WARM_UP_DISPLAY_SIZE = 256


def warm_process(queues: Collection[str], *, callback_queue: str, celery_app: Celery | None = None) -> None:
    """Build this process's clients and pay the one-time costs of what ``queues`` will run
    (all of them when ``queues`` is empty); ``celery_app``: the app whose publishing side a job
    worker uses to queue callbacks."""
    try:
        ctx = context.current()
    except Exception as error:
        log.warning("worker context not built at start: %s", error)
        return
    _try("status store", lambda: ctx.store.lease_holder("warm-up"))
    jobs = [queue for queue in queues if queue != callback_queue]
    if jobs or not queues:
        warm_job_boundaries(ctx)
        if celery_app is not None:
            _try("broker producer", lambda: warm_publishing(celery_app))
    # every worker sends callbacks: a job's thread makes a terminal event's first attempt
    # (worker.notifications), the callback queue's worker the rest
    _try("callback client", lambda: getattr(ctx.callbacks, "client", None))  # its httpx transport


def warm_job_boundaries(ctx: WorkerContext) -> None:
    """S3, Triton and the encoders, as a job worker's first job would meet them."""
    context.warm_up()  # the bucket, made sure of once per process
    ready = getattr(ctx.inference, "ready", None)
    if callable(ready):
        _try("Triton", ready)
    in_flight = getattr(getattr(ctx.inference, "backpressure", None), "in_flight", None)
    if in_flight is not None:
        _try("backpressure", in_flight.count)
    product = np.zeros((PRODUCT_IMAGE_SIZE, PRODUCT_IMAGE_SIZE, 3), np.uint8)
    for fmt in get_args(Format):  # at a display size: the resize and the encoder's buffers too
        _try(f"{fmt} encoder", functools.partial(encode, product, fmt, WARM_UP_DISPLAY_SIZE))
    gate = ctx.gate
    if gate is not None:  # its checks' modules and numpy paths, on two blank images
        blank = np.full((2, PRODUCT_IMAGE_SIZE, PRODUCT_IMAGE_SIZE, 3), 255, np.uint8)
        uniform = np.full((2, NUM_CATEGORIES), 1 / NUM_CATEGORIES, np.float32)
        _try("quality gate", lambda: gate.judge(blank, uniform, category=0, colour=0))


def warm_publishing(celery_app: Celery) -> None:
    """Load the app's result backend and open a pooled producer's broker connection (sending
    nothing): what ``send_task`` does on its first call."""
    _ = celery_app.backend, celery_app.amqp.send_task_message
    with celery_app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=1)


def _try(what: str, action: Callable[[], object]) -> None:
    try:
        action()
    except Exception as error:
        log.warning("warm-up of %s failed (the first job will retry it): %s", what, error)
