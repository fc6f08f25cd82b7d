"""The story of one callback: claim the event, build it, sign and send it, record the outcome.

A job that reaches a state notifies that state's event (``WorkerContext.notify``) when its
request subscribed. The worker's notify is :func:`notify_first_inline`: a terminal event's
first attempt (:data:`INLINE_EVENTS`) is made at once in the job's own thread; every other
event, and every retry, is a message on the callback queue, whose task (``worker/tasks.py``)
runs :func:`deliver_callback`, so a failing receiver holds an inference worker's thread once per
cool-down at most, for :data:`INLINE_TIMEOUT_S` at most.

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
- **No order** between a job's events is promised (it never was: the queue's threads send side
  by side, and a retry comes later); receivers order by the body's ``timestamp`` and ``state``.

**The first attempt inline.** A callback through the queue cost a broker round trip (publish,
confirm, deliver, ack) and the callback worker's message handling: about 7 ms of the callback
worker's CPU and 2.4 ms of RabbitMQ's per listing job in ``bench.perf``'s pipeline (2-core host),
against some 1.7 ms for the attempt itself. A terminal event's first attempt is therefore made
by the job's thread, before the job's message is acknowledged, with a short deadline
(:data:`INLINE_TIMEOUT_S`); the queue carries what is left:

- *an earlier event still on the queue* (``job.started`` subscribed and not sent yet): the end
  is queued behind it (:func:`earlier_in_flight`) rather than overtake it;

- *a retry*: the next attempt is published (countdown, ``retries`` = attempts made) before the
  outcome is recorded, so a recorded ``retrying`` always has its message;
- *a slow or failing receiver*: its host's events go through the queue for
  :data:`INLINE_COOL_DOWN_S` (:class:`SlowHosts`), so it holds a job thread at most once per
  cool-down and process;
- *an error mid-attempt* (the status store down): the attempt is queued instead, as attempt 1
  when the event was not claimed yet, else as attempt 2 (a claimed event's attempt 1 would be
  dropped as a duplicate); if even that cannot be published, ``RetryableError`` retries the job.
- *a worker that dies mid-attempt*: its job's message comes back, and a job that finds itself
  finished notifies its terminal event again (``worker.pipeline.start``). The event is claimed
  but no outcome is recorded, so this attempt sends it again, with the same ``webhook-id``
  (the receiver de-duplicates). Only terminal events are sent inline: an earlier one
  (``job.started``) is re-queued only if unclaimed (``worker.pipeline.catch_up``), and an
  approval's end (``worker.regeneration``) is not notified again at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from core.contracts.jobs import JobEvent, JobEventType, JobRecord
from core.contracts.v1 import CallbackSpec, ListingImageRequest, TryOnRequest, parse_request
from core.errors import AtelierError, ErrorCode, PermanentError, RetryableError
from core.jobs.events import build_event
from worker.callbacks import DeliveryStatus, url_host
from worker.context import WorkerContext

log = logging.getLogger(__name__)

#: what a ``gone`` outcome is recorded as; later events of the job are not sent
GONE = "gone"
#: the events whose first attempt the job's own thread makes: the terminal ones a job that runs
#: again notifies again (``worker.pipeline.start``); approvals and rejections end in the review
#: API or in ``worker.regeneration``, which do not, so they keep the queue
INLINE_EVENTS = frozenset({JobEventType.SUCCEEDED, JobEventType.FAILED, JobEventType.CANCELED})
#: seconds an inline attempt may wait to connect, to write, and for the answer (each; at most
#: ``callback_timeout_s``, which the queue's attempts get): how long a slow receiver can hold a
#: job thread
INLINE_TIMEOUT_S = 2.0
#: an inline attempt slower than this sends its host's next events through the queue
INLINE_SLOW_S = 0.5
#: seconds a slow or failing receiver's events go through the queue before one is tried inline
INLINE_COOL_DOWN_S = 60.0


@dataclass(frozen=True)
class Delivery:
    """What came of one attempt, and whether to try again: after ``retry_in`` seconds, with
    ``payload`` (the event, built once) as the next attempt's body."""

    outcome: str
    retry_in: float | None = None
    payload: dict[str, Any] | None = None


class QueueCallback(Protocol):
    """Publishes attempt ``attempt`` of ``event`` on the callback queue, after ``countdown``
    seconds, with ``payload`` as its body (``worker.celery_app.queue_callback``)."""

    def __call__(
        self,
        job_id: str,
        event: JobEventType,
        /,
        *,
        attempt: int = 1,
        countdown: float | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None: ...


class SlowHosts:
    """Receivers (by host) whose last inline attempt failed or was slow, until when their events
    go through the queue; one per process, shared by its threads.

    Parameters (keyword-only): ``cool_down_s``, ``clock`` (default ``time.monotonic``).
    """

    def __init__(
        self, *, cool_down_s: float = INLINE_COOL_DOWN_S, clock: Callable[[], float] = time.monotonic
    ):
        self.cool_down_s = cool_down_s
        self._clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def cooling(self, host: str) -> bool:
        """Whether ``host``'s events go through the queue now."""
        until = self._until.get(host)
        if until is None:
            return False
        if self._clock() < until:
            return True
        with self._lock:
            self._until.pop(host, None)
        return False

    def cool(self, host: str) -> None:
        """Send ``host``'s events through the queue for the next ``cool_down_s``."""
        with self._lock:
            self._until[host] = self._clock() + self.cool_down_s


#: this process's slow receivers (:func:`notify_first_inline`)
SLOW_HOSTS = SlowHosts()


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
    """One delivery attempt of ``event`` for ``job_id`` (``attempt`` counts from 1), as the
    callback queue's task makes it. The claim and the reads are one round trip."""
    event = JobEventType(event)
    claimed, record, stored = ctx.store.claim_and_read(job_id, event, claim=attempt == 1)
    if record is None or stored is None:
        log.warning("callback %s: job %s has no record", event.value, job_id, extra=_extra(job_id, event))
        return Delivery("job not found")
    if attempt == 1 and not claimed and not redelivered:
        log.warning(
            "callback %s of job %s already claimed: dropped", event.value, job_id, extra=_extra(job_id, event)
        )
        return Delivery("duplicate")
    callback = _callback(ctx, job_id, event, record, stored)
    if isinstance(callback, Delivery):
        return callback
    delivery = _attempt(ctx, job_id, event, record, str(callback.url), attempt=attempt, payload=payload)
    if delivery.retry_in is not None:
        ctx.store.record_callback(job_id, event, delivery.outcome)
    return delivery


def notify_first_inline(
    job_id: str,
    event: JobEventType,
    ctx: WorkerContext,
    *,
    queue: QueueCallback,
    slow_hosts: SlowHosts = SLOW_HOSTS,
) -> Delivery | None:
    """The worker's notify: a terminal event's first attempt here and now (see the module),
    anything else queued. ``None`` when it was queued, else what came of the attempt. Raises
    what the status store raises before it answered (the job's retry notifies again), and
    ``RetryableError`` when the queue could not take what was left to it."""
    event = JobEventType(event)
    if event not in INLINE_EVENTS:
        queue(job_id, event)
        return None
    claimed_before, record, stored = ctx.store.claim_and_read(job_id, event, claim=False)
    if record is None or stored is None:
        queue(job_id, event)  # the queue's attempt says what became of it
        return None
    if claimed_before and event.value in record.callbacks:
        return Delivery("duplicate")  # a job that runs again, its callback sent already
    # claimed_before: its sender died mid-send, or could not queue the retry (nothing recorded):
    # this attempt sends it again, with the same webhook-id, and is attempt 2 on the queue
    ours = claimed_before
    try:
        callback = _callback(ctx, job_id, event, record, stored)
        if isinstance(callback, Delivery):
            return callback
        url = str(callback.url)
        host = url_host(url)
        if slow_hosts.cooling(host):
            _hand_over(job_id, event, queue, claimed=ours, why="the receiver was slow or failing")
            return None
        if earlier_in_flight(callback.events, record):
            _hand_over(job_id, event, queue, claimed=ours, why="an earlier event of the job is on its way")
            return None
        if ours:
            log.warning(
                "callback %s of job %s was claimed but no outcome recorded: sent again",
                event.value,
                job_id,
                extra=_extra(job_id, event),
            )
        elif not ctx.store.claim_event(job_id, event):
            return Delivery("duplicate")  # claimed by another sender since the read
        ours = True
        started = time.monotonic()
        timeout_s = min(INLINE_TIMEOUT_S, ctx.settings.callback_timeout_s)
        delivery = _attempt(ctx, job_id, event, record, url, attempt=1, timeout_s=timeout_s)
        if delivery.retry_in is not None or time.monotonic() - started > INLINE_SLOW_S:
            slow_hosts.cool(host)
        if delivery.retry_in is not None:
            queue(job_id, event, attempt=2, countdown=delivery.retry_in, payload=delivery.payload)
            ctx.store.record_callback(job_id, event, delivery.outcome)
        return delivery
    except Exception as error:  # the store gone mid-attempt, or a bug: the event must not be lost
        if isinstance(error, RetryableError) and error.code is ErrorCode.CALLBACK_ENQUEUE_FAILED:
            raise  # the queue is down too: the job's retry notifies again
        if not isinstance(error, AtelierError):
            log.exception("callback %s of job %s: inline attempt failed", event.value, job_id)
        _hand_over(job_id, event, queue, claimed=ours, why=str(error))
        return None


def _hand_over(job_id: str, event: JobEventType, queue: QueueCallback, *, claimed: bool, why: str) -> None:
    """Queue the attempt not made here: attempt 1 of an unclaimed event (the queue's task claims
    it), attempt 2 of a claimed one (attempt 1 of a claimed event is dropped as a duplicate)."""
    log.info(
        "callback %s of job %s goes through the queue: %s",
        event.value,
        job_id,
        why,
        extra=_extra(job_id, event),
    )
    queue(job_id, event, attempt=2 if claimed else 1)


def earlier_in_flight(events: Collection[JobEventType], record: JobRecord) -> bool:
    """Whether a subscribed event the job passed before its end (``job.queued``; ``job.started``
    if it ran) has no outcome recorded yet: it is still on the callback queue, and the end goes
    there too, behind it, rather than overtake it by being sent at once."""
    earlier = [JobEventType.QUEUED, JobEventType.STARTED] if record.started_at else [JobEventType.QUEUED]
    return any(e in events and e.value not in record.callbacks for e in earlier)


def _callback(
    ctx: WorkerContext, job_id: str, event: JobEventType, record: JobRecord, stored: dict[str, Any]
) -> CallbackSpec | Delivery:
    """Where ``event`` goes, or why it goes nowhere (recorded when final)."""
    try:
        request = parse_request(stored)
    except ValidationError as error:
        unreadable = f"not sent: the stored request does not validate ({error.error_count()} errors)"
        return _finish(ctx, job_id, event, unreadable)
    if request.callback is None or not subscribed(request, event):
        return Delivery("not subscribed")
    if any(outcome.startswith(GONE) for outcome in record.callbacks.values()):
        return _finish(ctx, job_id, event, "not sent: the receiver answered 410 Gone earlier")
    return request.callback


def _attempt(
    ctx: WorkerContext,
    job_id: str,
    event: JobEventType,
    record: JobRecord,
    url: str,
    *,
    attempt: int,
    payload: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
) -> Delivery:
    """Sign and POST; record a final outcome. A retry's outcome is left for the caller to record
    (after its next attempt is published, where that comes first)."""
    job_event = JobEvent.model_validate(payload) if payload is not None else build_event(record, event)
    try:
        outcome = ctx.callbacks.deliver(url, job_event, requester=record.requester, timeout_s=timeout_s)
    except PermanentError as error:
        return _finish(ctx, job_id, event, f"not sent: {error.code}: {error.message}")

    if outcome.status is DeliveryStatus.RETRY:
        delay = ctx.callbacks.next_delay(attempt, outcome.retry_after_s)
        if delay is None:
            return _finish(ctx, job_id, event, f"failed after {attempt} attempts: {outcome.reason}")
        text = f"retrying in {delay:g} s after attempt {attempt}: {outcome.reason}"
        return Delivery(text, retry_in=delay, payload=job_event.model_dump(mode="json"))
    if outcome.status is DeliveryStatus.DELIVERED:
        return _finish(ctx, job_id, event, "delivered", http_status=outcome.http_status)
    if outcome.status is DeliveryStatus.GONE:
        return _finish(ctx, job_id, event, f"{GONE}: HTTP 410, the receiver unsubscribed")
    return _finish(ctx, job_id, event, f"rejected: {outcome.reason}")


def _finish(
    ctx: WorkerContext, job_id: str, event: JobEventType, outcome: str, *, http_status: int | None = None
) -> Delivery:
    """Record the final outcome of ``event`` on the job; one log line."""
    ctx.store.record_callback(job_id, event, outcome)
    level = logging.INFO if outcome == "delivered" else logging.WARNING
    extra = {**_extra(job_id, event), "http_status": http_status}
    log.log(level, "callback %s of job %s: %s", event.value, job_id, outcome, extra=extra)
    return Delivery(outcome)


def _extra(job_id: str, event: JobEventType) -> dict[str, Any]:
    return {"job_id": job_id, "event": event.value}
