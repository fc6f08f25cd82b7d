"""The story of one callback: claim the event, build it, sign and send it, record the outcome.

A job that reaches a state queues a delivery of that state's event (``WorkerContext.notify``)
when its request subscribed; the callback task (``worker/tasks.py``) runs
:func:`deliver_callback`, on its own queue, so a slow receiver never holds an inference worker.

- **Once per job and event**: the first attempt claims the event in the status store
  (``JobStore.claim_event``); a second message for the same event finds it claimed and is
  dropped. Only a message the broker *redelivered* (its worker died mid-send) sends anyway:
  Standard Webhooks receivers de-duplicate by ``webhook-id``, which stays the same.
- **The event is built once**, from the job record, on the first attempt, and travels with
  each retry (``payload``), so every attempt POSTs the same body.
- **Retries** follow ``callback_retry_schedule_s`` (raised to the receiver's ``Retry-After``);
  410 Gone stops this and every later event of the job; other refusals stop this event.
- The outcome lands on the job record (``JobStore.record_callback``), e.g. ``delivered`` or
  ``failed after 4 attempts: HTTP 503``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from core.contracts.jobs import JobEvent, JobEventType
from core.contracts.v1 import ListingImageRequest, TryOnRequest, parse_request
from core.errors import PermanentError
from core.jobs.events import build_event
from worker.callbacks import DeliveryStatus
from worker.context import WorkerContext

log = logging.getLogger(__name__)

#: what a ``gone`` outcome is recorded as; later events of the job are not sent
GONE = "gone"


@dataclass(frozen=True)
class Delivery:
    """What came of one attempt, and whether to try again: after ``retry_in`` seconds, with
    ``payload`` (the event, built once) as the next attempt's body."""

    outcome: str
    retry_in: float | None = None
    payload: dict[str, Any] | None = None


def subscribed(request: ListingImageRequest | TryOnRequest, event: JobEventType) -> bool:
    """Whether the request asked for ``event`` callbacks."""
    return request.callback is not None and event in request.callback.events


def deliver_callback(
    job_id: str,
    event: JobEventType | str,
    ctx: WorkerContext,
    *,
    attempt: int = 1,
    payload: Mapping[str, Any] | None = None,
    redelivered: bool = False,
) -> Delivery:
    """One delivery attempt of ``event`` for ``job_id`` (``attempt`` counts from 1)."""
    event = JobEventType(event)
    extra = {"job_id": job_id, "event": event.value, "attempt": attempt}
    if attempt == 1 and not ctx.store.claim_event(job_id, event) and not redelivered:
        log.warning("callback %s of job %s already claimed: dropped", event.value, job_id, extra=extra)
        return Delivery("duplicate")
    record = ctx.store.get(job_id)
    stored = ctx.store.get_request(job_id)
    if record is None or stored is None:
        log.warning("callback %s: job %s has no record (expired?)", event.value, job_id, extra=extra)
        return Delivery("job not found")
    try:
        request = parse_request(stored)
    except ValidationError as error:
        unreadable = f"not sent: the stored request does not validate ({error.error_count()} errors)"
        return _finish(ctx, job_id, event, unreadable)
    if request.callback is None or not subscribed(request, event):
        return Delivery("not subscribed")
    if any(outcome.startswith(GONE) for outcome in record.callbacks.values()):
        return _finish(ctx, job_id, event, "not sent: the receiver answered 410 Gone earlier")

    job_event = JobEvent.model_validate(payload) if payload is not None else build_event(record, event)
    url = str(request.callback.url)
    try:
        outcome = ctx.callbacks.deliver(url, job_event, requester=record.requester)
    except PermanentError as error:
        return _finish(ctx, job_id, event, f"not sent: {error.code}: {error.message}")

    if outcome.status is DeliveryStatus.RETRY:
        delay = ctx.callbacks.next_delay(attempt, outcome.retry_after_s)
        if delay is None:
            return _finish(ctx, job_id, event, f"failed after {attempt} attempts: {outcome.reason}")
        text = f"retrying in {delay:g} s after attempt {attempt}: {outcome.reason}"
        ctx.store.record_callback(job_id, event, text)
        return Delivery(text, retry_in=delay, payload=job_event.model_dump(mode="json"))
    if outcome.status is DeliveryStatus.DELIVERED:
        return _finish(ctx, job_id, event, "delivered")
    if outcome.status is DeliveryStatus.GONE:
        return _finish(ctx, job_id, event, f"{GONE}: HTTP 410, the receiver unsubscribed")
    return _finish(ctx, job_id, event, f"rejected: {outcome.reason}")


def _finish(ctx: WorkerContext, job_id: str, event: JobEventType, outcome: str) -> Delivery:
    """Record the final outcome of ``event`` on the job."""
    ctx.store.record_callback(job_id, event, outcome)
    level = logging.INFO if outcome == "delivered" else logging.WARNING
    log.log(level, "callback %s of job %s: %s", event.value, job_id, outcome, extra={"job_id": job_id})
    return Delivery(outcome)
