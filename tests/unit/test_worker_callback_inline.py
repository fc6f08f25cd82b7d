"""worker.notifications.notify_first_inline: a terminal event's first attempt in the job's
thread, the callback queue for everything else (retries, slow receivers, errors mid-attempt),
and no event lost or sent twice when the job runs again (on the shipped stand-ins)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from core.contracts.jobs import JobEventType
from core.contracts.v1 import parse_request
from core.errors import ErrorCode, RetryableError
from core.jobs import MemoryJobStore, StoreUnavailable
from core.topology import CALLBACK_TASK
from core.worker_settings import WorkerSettings, new_webhook_secret
from producer.client import record_for
from producer.webhook_verify import verify
from worker import celery_app, context, notifications
from worker.context import WorkerContext
from worker.notifications import INLINE_TIMEOUT_S, SlowHosts, deliver_callback, notify_first_inline
from worker.pipeline import RetryLater, run_listing
from worker.stubs import RecordingReceiver, stub_context

SECRET = new_webhook_secret()
HOOK = "https://shop.example/hooks/atelier"
NOW = 1_000_000.0


@dataclass
class Queued:
    """One message :class:`RecordingQueue` took: the attempt it is, after how long, with what."""

    job_id: str
    event: JobEventType
    attempt: int
    countdown: float | None
    payload: dict[str, Any] | None


@dataclass
class RecordingQueue:
    """The callback queue as ``notify_first_inline`` sees it; ``down``: every publish fails;
    ``worker``: a context whose callback task runs each message without a countdown at once."""

    messages: list[Queued] = field(default_factory=list)
    down: bool = False
    worker: WorkerContext | None = None

    def __call__(
        self,
        job_id: str,
        event: JobEventType,
        /,
        *,
        attempt: int = 1,
        countdown: float | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        if self.down:
            raise RetryableError(ErrorCode.CALLBACK_ENQUEUE_FAILED, "broker down")
        self.messages.append(Queued(job_id, event, attempt, countdown, payload))
        if self.worker is not None and countdown is None:
            deliver_callback(job_id, event, self.worker, attempt=attempt, payload=payload)


class Harness:
    """Stand-in services; ``ctx.notify`` is the worker's inline-first notify on a recording queue."""

    def __init__(
        self,
        answer: Callable[[httpx.Request], httpx.Response] | None = None,
        *,
        store: MemoryJobStore | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "callback_secret": SECRET,
            "callback_retry_schedule_s": [1.0, 5.0],
            "job_retry_attempts": 3,
        }
        self.settings = WorkerSettings(_env_file=None, **values)  # type: ignore[call-arg]
        self.store = store if store is not None else MemoryJobStore(clock=lambda: NOW)
        self.receiver = RecordingReceiver(answer)
        self.posts = self.receiver.posts
        self.queue = RecordingQueue()
        self.slow = SlowHosts(clock=lambda: self.now)
        self.now = 0.0
        self.ctx = stub_context(
            self.settings, store=self.store, callbacks=self.receiver.sender(self.settings)
        )
        self.ctx.notify = self.notify

    def notify(self, job_id: str, event: JobEventType, /) -> None:
        notify_first_inline(job_id, event, self.ctx, queue=self.queue, slow_hosts=self.slow)

    def run(self, events: list[str] | None = None, *, redelivered: bool = False, job_id: str = "") -> str:
        """Submit a listing (unless ``job_id`` names one) and run it."""
        if not job_id:
            request = {
                "requester": "shop-eu",
                "listing_id": "SKU-1",
                "attributes": {"category": "dress", "colour": "navy"},
                "variants": 2,
                "seed": 5,
                "output": {"format": "png", "size": 64},
                "callback": {"url": HOOK, "events": events or ["job.started", "job.succeeded"]},
            }
            parsed = parse_request(request)
            record = record_for(parsed, uuid.uuid4().hex)
            self.store.create(record, request=parsed.model_dump(mode="json"))
            job_id = record.job_id
        run_listing(job_id, self.store.get_request(job_id) or {}, self.ctx, redelivered=redelivered)
        return job_id

    def outcome(self, job_id: str) -> str | None:
        record = self.store.get(job_id)
        return None if record is None else record.callbacks.get("job.succeeded")


def test_a_terminal_event_is_sent_by_the_job_s_thread_and_an_earlier_one_is_queued() -> None:
    h = Harness()
    h.queue.worker = h.ctx  # a callback worker sends job.started at once
    job_id = h.run()
    started, succeeded = h.posts
    assert verify(succeeded.content, succeeded.headers, SECRET).type is JobEventType.SUCCEEDED
    assert succeeded.extensions["timeout"]["read"] == INLINE_TIMEOUT_S
    assert started.extensions["timeout"]["read"] == h.settings.callback_timeout_s
    assert h.outcome(job_id) == "delivered"
    assert [(m.event, m.attempt) for m in h.queue.messages] == [(JobEventType.STARTED, 1)]


def test_an_end_never_overtakes_an_earlier_event_still_on_the_queue() -> None:
    h = Harness()
    job_id = h.run()  # job.started is queued and not sent yet: job.succeeded queues behind it
    assert h.posts == [] and h.outcome(job_id) is None
    assert [(m.event, m.attempt) for m in h.queue.messages] == [
        (JobEventType.STARTED, 1),
        (JobEventType.SUCCEEDED, 1),
    ]


def test_a_job_that_runs_again_after_its_callback_was_delivered_sends_nothing_more() -> None:
    h = Harness()
    job_id = h.run(events=["job.succeeded"])
    h.run(job_id=job_id, redelivered=True)
    assert len(h.posts) == 1 and h.outcome(job_id) == "delivered"


def test_a_worker_that_died_mid_send_leaves_a_claim_without_outcome_and_the_rerun_sends_again() -> None:
    h = Harness()
    job_id = h.run(events=["job.failed"])  # succeeded is not subscribed: nothing sent yet
    h.store.claim_event(job_id, JobEventType.SUCCEEDED)  # claimed, then the worker died
    record = h.store.get(job_id)
    assert record is not None and "job.succeeded" not in record.callbacks
    h.store.requests[job_id]["callback"]["events"] = ["job.succeeded"]
    h.run(job_id=job_id, redelivered=True)  # finds the job finished: notifies its end again
    (post,) = h.posts
    assert h.outcome(job_id) == "delivered"
    assert post.headers["webhook-id"] == f"msg_{job_id}_job_succeeded"


def test_a_failed_inline_attempt_queues_attempt_two_before_recording_and_cools_the_host() -> None:
    h = Harness(lambda request: httpx.Response(503))
    job_id = h.run(events=["job.succeeded"])
    (retry,) = h.queue.messages
    assert (retry.event, retry.attempt, retry.countdown) == (JobEventType.SUCCEEDED, 2, 1.0)
    assert retry.payload is not None and retry.payload["data"]["job_id"] == job_id
    assert h.outcome(job_id) == "retrying in 1 s after attempt 1: HTTP 503"
    # the queue's attempt 2 sends the same body and is not dropped as a duplicate
    second = deliver_callback(job_id, "job.succeeded", h.ctx, attempt=2, payload=retry.payload)
    assert second.retry_in == 5.0 and h.posts[0].content == h.posts[1].content

    other = h.run(events=["job.succeeded"])  # the host is cooling down: straight to the queue
    assert len(h.posts) == 2 and (h.queue.messages[-1].job_id, h.queue.messages[-1].attempt) == (other, 1)
    h.now += notifications.INLINE_COOL_DOWN_S + 1
    h.run(events=["job.succeeded"])
    assert len(h.posts) == 3  # tried inline again


def test_a_slow_receiver_is_delivered_but_its_next_events_go_through_the_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(notifications, "INLINE_SLOW_S", -1.0)  # every attempt counts as slow
    h = Harness()
    first = h.run(events=["job.succeeded"])
    second = h.run(events=["job.succeeded"])
    assert h.outcome(first) == "delivered" and len(h.posts) == 1
    assert [(m.job_id, m.attempt) for m in h.queue.messages] == [(second, 1)]
    assert h.outcome(second) is None  # the queue's attempt 1 will claim and send it


def test_a_retry_that_cannot_be_queued_records_nothing_so_the_job_s_retry_sends_again() -> None:
    answers = iter([httpx.Response(503), httpx.Response(204)])
    h = Harness(lambda request: next(answers))
    h.queue.down = True
    with pytest.raises(RetryLater) as raised:  # the job's message is retried
        h.run(events=["job.succeeded"])
    assert raised.value.error.code is ErrorCode.CALLBACK_ENQUEUE_FAILED
    (job_id,) = h.store.records
    assert h.outcome(job_id) is None  # claimed, nothing recorded
    h.queue.down = False
    h.run(job_id=job_id, redelivered=True)  # the host still cools down: the queue's attempt 2
    assert [(m.attempt, m.countdown) for m in h.queue.messages] == [(2, None)] and len(h.posts) == 1
    h.queue.messages.clear()
    h.now += notifications.INLINE_COOL_DOWN_S + 1
    h.run(job_id=job_id, redelivered=True)  # later: sent again inline
    assert len(h.posts) == 2 and h.outcome(job_id) == "delivered" and h.queue.messages == []


class FlakyStore(MemoryJobStore):
    """Fails ``failing`` (a method name) once with ``StoreUnavailable``: Redis gone mid-attempt."""

    failing = ""

    def claim_and_read(self, job_id: str, event: JobEventType | str, *, claim: bool = True) -> Any:
        self._fail("claim_and_read")
        return super().claim_and_read(job_id, event, claim=claim)

    def record_callback(self, job_id: str, event: JobEventType | str, outcome: str) -> bool:
        self._fail("record_callback")
        return super().record_callback(job_id, event, outcome)

    def _fail(self, name: str) -> None:
        if self.failing == name:
            self.failing = ""
            raise StoreUnavailable("Redis went away")


def test_the_store_failing_before_it_answered_retries_the_job_which_sends_the_callback() -> None:
    store = FlakyStore(clock=lambda: NOW)
    h = Harness(store=store)
    store.failing = "claim_and_read"
    with pytest.raises(RetryLater) as raised:
        h.run(events=["job.succeeded"])
    assert raised.value.error.code is ErrorCode.STORE_UNAVAILABLE
    assert h.posts == [] and h.queue.messages == []
    (job_id,) = h.store.records
    h.run(job_id=job_id, redelivered=True)
    assert len(h.posts) == 1 and h.outcome(job_id) == "delivered"


def test_the_store_failing_after_the_claim_hands_attempt_two_to_the_queue() -> None:
    """Attempt 2: the queue's attempt 1 of a claimed event would be dropped as a duplicate."""
    store = FlakyStore(clock=lambda: NOW)
    h = Harness(store=store)

    def notify(job_id: str, event: JobEventType, /) -> None:
        if event is JobEventType.SUCCEEDED:
            store.failing = "record_callback"  # the job ran; the store fails after the POST
        h.notify(job_id, event)

    h.ctx.notify = notify
    job_id = h.run(events=["job.succeeded"])
    assert [(m.event, m.attempt) for m in h.queue.messages] == [(JobEventType.SUCCEEDED, 2)]
    assert len(h.posts) == 1
    assert deliver_callback(job_id, "job.succeeded", h.ctx, attempt=2).outcome == "delivered"


def test_a_host_cools_down_for_a_while_then_is_tried_again() -> None:
    now = [0.0]
    hosts = SlowHosts(cool_down_s=10.0, clock=lambda: now[0])
    assert not hosts.cooling("shop.example")
    hosts.cool("shop.example")
    assert hosts.cooling("shop.example") and not hosts.cooling("other.example")
    now[0] = 10.5
    assert not hosts.cooling("shop.example")


# --- the worker's wiring (worker.celery_app) ---


def test_the_queue_publishes_attempt_n_as_its_retries_with_a_whole_second_countdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(celery_app.app, "send_task", lambda name, **options: sent.append((name, options)))
    celery_app.queue_callback(
        "job-1", JobEventType.SUCCEEDED, attempt=2, countdown=0.5, payload={"type": "x"}
    )
    celery_app.queue_callback("job-1", JobEventType.STARTED)
    (name, retry), (_, first) = sent
    assert name == CALLBACK_TASK and retry["task_id"] == "job-1.job.succeeded"
    assert (retry["retries"], retry["countdown"]) == (1, 1)  # the task's attempt = retries + 1
    assert retry["kwargs"] == {"job_id": "job-1", "event": "job.succeeded", "payload": {"type": "x"}}
    assert (first["retries"], first["countdown"], first["kwargs"]) == (
        0,
        None,
        {"job_id": "job-1", "event": "job.started"},
    )


def test_the_worker_s_notify_sends_a_terminal_event_itself_and_queues_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(celery_app.app, "send_task", lambda name, **options: sent.append(options))
    h = Harness()
    h.ctx.notify = celery_app.enqueue_callback
    context.use(h.ctx)
    try:
        job_id = h.run(events=["job.succeeded"])
        celery_app.enqueue_callback(job_id, JobEventType.STARTED)
    finally:
        context.close()
    assert len(h.posts) == 1 and h.outcome(job_id) == "delivered"
    assert [options["kwargs"]["event"] for options in sent] == ["job.started"]


def test_the_inline_deadline_is_never_longer_than_the_configured_one() -> None:
    h = Harness()
    h.ctx.settings = h.settings.model_copy(update={"callback_timeout_s": 0.5})
    h.run(events=["job.succeeded"])
    (post,) = h.posts
    assert post.extensions["timeout"]["read"] == 0.5
