"""The worker's gate: every message is checked before Celery reads it, and a poison message is
dead-lettered with a reason instead of crashing, looping or vanishing.

Celery alone acks a body it cannot decode (the message is gone) and rejects an unknown task
(RabbitMQ dead-letters it, but says only ``rejected``). :class:`GatedConsumer` (the worker's
``worker_consumer``) runs :func:`inspect_message` on the raw bytes first. A message that fails
is re-published to the dead-letter exchange with ``x-atelier-dead-letter-reason`` and friends
(``core.dead_letters``), then acked; if that publish is not confirmed the message is
rejected without requeue, so RabbitMQ dead-letters it anyway. When the message names a job,
the job ends ``failed`` with the same reason and its ``job.failed`` callback is queued
(:func:`fail_refused_job`, the refusal policy).

Checks, in order (the reason's code first):

- ``message_too_large``: body over ``max_message_bytes`` (not read further);
- ``not_a_task_message``: no ``task`` header (Celery message protocol 2);
- ``unknown_task``: a task this worker does not define;
- ``unsupported_content_type``: not ``application/json``;
- ``not_json``: the body is not UTF-8 JSON;
- ``invalid_arguments``: not ``[args, kwargs, embed]``, or the task's keyword arguments are
  missing or of the wrong type;
- ``invalid_request``: a job's request does not validate against its contract (a wrong
  ``schema_version``, a missing field, a value out of range).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from celery.worker.consumer import Consumer
from kombu import Producer
from pydantic import BaseModel, ValidationError

from core.contracts.v1 import ListingImageRequest, TryOnRequest
from core.dead_letters import dead_letter_headers, new_message_id
from core.errors import ErrorCode, PermanentError
from core.topology import CALLBACK_TASK, LISTING_TASK, REGENERATE_TASK, TRYON_TASK
from worker import context, metrics, pipeline
from worker.context import WorkerContext

log = logging.getLogger(__name__)

#: the request contract of each job task
REQUEST_MODELS: dict[str, type[BaseModel]] = {LISTING_TASK: ListingImageRequest, TRYON_TASK: TryOnRequest}
#: keyword arguments each Atelier task needs, with their JSON types
REQUIRED_KWARGS: dict[str, dict[str, type]] = {
    LISTING_TASK: {"job_id": str, "request": dict},
    TRYON_TASK: {"job_id": str, "request": dict},
    CALLBACK_TASK: {"job_id": str, "event": str},
    REGENERATE_TASK: {"job_id": str, "variant": int, "regeneration": int},
}
#: the longest reason kept (a validation error can be long)
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Poison:
    """Why a message is refused: ``code`` (machine-readable), ``detail``, and its job if known."""

    code: ErrorCode
    detail: str
    job_id: str | None = None
    request: Mapping[str, Any] | None = None

    @property
    def reason(self) -> str:
        return f"{self.code.value}: {self.detail}"[:MAX_REASON_CHARS]


def inspect_message(
    body: bytes | str,
    headers: Mapping[str, Any] | None,
    content_type: str | None,
    *,
    known_tasks: Collection[str],
    max_bytes: int,
) -> Poison | None:
    """``None`` for a message the task can run, else why not; never raises."""
    raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else body
    headers = headers if isinstance(headers, Mapping) else {}
    if len(raw) > max_bytes:
        return Poison(ErrorCode.MESSAGE_TOO_LARGE, f"{len(raw)} bytes, over the {max_bytes}-byte limit")
    task = headers.get("task")
    if not isinstance(task, str) or not task:
        return Poison(ErrorCode.NOT_A_TASK_MESSAGE, "no task header (Celery message protocol 2)")
    header_id = headers.get("id") if isinstance(headers.get("id"), str) else None
    job_id = header_id if task in REQUEST_MODELS else None
    if task not in known_tasks:
        return Poison(ErrorCode.UNKNOWN_TASK, f"this worker has no task {task!r}", job_id)
    if (content_type or "").split(";")[0].strip() != "application/json":
        return Poison(ErrorCode.UNSUPPORTED_CONTENT_TYPE, f"{content_type!r}, not application/json", job_id)
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return Poison(ErrorCode.NOT_JSON, f"the body is not UTF-8 JSON ({error})", job_id)
    return _check_payload(task, payload, job_id)


def _check_payload(task: str, payload: Any, job_id: str | None) -> Poison | None:
    if not (isinstance(payload, list) and len(payload) == 3 and isinstance(payload[1], dict)):
        return Poison(ErrorCode.INVALID_ARGUMENTS, "the body is not [args, kwargs, embed]", job_id)
    args, kwargs = payload[0], payload[1]
    if args:
        return Poison(ErrorCode.INVALID_ARGUMENTS, "positional arguments are not accepted", job_id)
    if isinstance(kwargs.get("job_id"), str):
        job_id = kwargs["job_id"]
    for name, kind in REQUIRED_KWARGS.get(task, {}).items():
        value = kwargs.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            problem = "missing" if name not in kwargs else f"not a {kind.__name__}"
            return Poison(ErrorCode.INVALID_ARGUMENTS, f"keyword argument {name!r} is {problem}", job_id)
    model = REQUEST_MODELS.get(task)
    if model is None:
        return None
    request = kwargs["request"]
    try:
        model.model_validate(request)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['type']}" for e in error.errors()[:5]
        )
        return Poison(
            ErrorCode.INVALID_REQUEST, f"the request does not validate ({problems})", job_id, request
        )
    return None


def fail_refused_job(poison: Poison, ctx: WorkerContext) -> None:
    """End ``poison``'s job ``failed`` with the refusal's code and detail; its ``job.failed``
    callback is queued if the request's callback part is readable."""
    if poison.job_id is None:
        return
    callback = pipeline.callback_of(poison.request or {})
    pipeline.fail(poison.job_id, callback, ctx, PermanentError(poison.code, poison.detail))


class GatedConsumer(Consumer):
    """Celery's consumer with :func:`inspect_message` in front of every task message.

    Reads ``max_message_bytes`` and ``dead_letter_exchange`` from the process's context
    (``worker.context.current``) and fails a refused message's job with :func:`fail_refused_job`.
    """

    def create_task_handler(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        settings = context.current().settings
        handle = super().create_task_handler(*args, **kwargs)

        def on_task_received(message: Any) -> Any:
            poison = inspect_message(
                message.body,
                message.headers,
                message.content_type,
                known_tasks=self.strategies,
                max_bytes=settings.max_message_bytes,
            )
            if poison is None:
                return handle(message)
            self._refuse(message, poison)
            return None

        return on_task_received

    def _refuse(self, message: Any, poison: Poison) -> None:
        ctx = context.current()
        queue = str((message.delivery_info or {}).get("routing_key") or "")
        extra = {"job_id": poison.job_id, "reason": poison.code, "queue": queue}
        log.error("message refused and dead-lettered: %s", poison.reason, extra=extra)
        metrics.dead_lettered(poison.code, queue)
        if poison.job_id:
            try:
                fail_refused_job(poison, ctx)
            except Exception:  # the record is secondary: the message still goes to the DLQ
                log.exception("job %s: could not record the refusal", poison.job_id, extra=extra)
        properties = message.properties or {}
        headers = dead_letter_headers(
            message.headers or {}, code=poison.code, detail=poison.detail, queue=queue, job_id=poison.job_id
        )
        try:
            # a connection of its own: the producer pool's may be the one a forked pool process
            # closed on its way out (prefork), and poison messages are rare enough to pay for it
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=2)
                Producer(connection.default_channel).publish(
                    message.body,
                    exchange=ctx.settings.dead_letter_exchange,
                    routing_key=queue or "unknown",
                    headers=headers,
                    content_type=message.content_type or "application/octet-stream",
                    content_encoding=message.content_encoding or "binary",
                    message_id=properties.get("message_id") or new_message_id(),
                    correlation_id=properties.get("correlation_id"),
                    delivery_mode=2,
                    retry=False,
                )
        except Exception:
            log.exception("dead letter not published: rejecting it to RabbitMQ's dead-lettering", extra=extra)
            message.reject(requeue=False)
            return
        message.ack()
