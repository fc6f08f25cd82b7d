"""The stuck-job sweeper on real Redis and RabbitMQ: a ``running`` job whose lease expired is
published again while attempts remain, else failed with ``job_stuck``; live and racing jobs are
left alone."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from core.contracts.jobs import JobEventType, JobState
from core.contracts.v1 import ListingImageRequest
from core.errors import ErrorCode
from core.jobs import JobStore, utcnow
from core.publish import Publisher
from core.topology import CALLBACK_TASK, LISTING_TASK, build_topology, callback_kwargs
from core.worker_settings import WorkerSettings
from producer.client import record_for
from tests.examples import LISTING_EXAMPLE
from tests.integration.services import AMQP_URL, drain, namespace, remove_namespace, require_services
from worker import pipeline
from worker.context import WorkerContext
from worker.stubs import stub_context
from worker.sweeper import SWEEPER, Outcome, Sweeper

REQUEST = ListingImageRequest.model_validate({**LISTING_EXAMPLE, "idempotency_key": None})
BODY = REQUEST.model_dump(mode="json")


@pytest.fixture
def settings() -> Iterator[WorkerSettings]:
    require_services()
    values: dict[str, Any] = {
        **namespace("sweep"),
        "publish_confirm_timeout_s": 2.0,
        "broker_connect_timeout_s": 1.0,
        "task_soft_time_limit_s": 1.0,
        "task_time_limit_s": 2.0,
        "sweep_grace_s": 1.0,
        "job_retry_attempts": 3,
    }
    settings = WorkerSettings(_env_file=None, **values)  # type: ignore[call-arg]
    yield settings
    remove_namespace(settings, broker_url=AMQP_URL)


@pytest.fixture
def store(settings: WorkerSettings) -> Iterator[JobStore]:
    store = JobStore(settings)
    yield store
    store.close()


@pytest.fixture
def publisher(settings: WorkerSettings) -> Iterator[Publisher]:
    with Publisher(settings) as publisher:
        publisher.declare()  # the queues exist even when nothing is published to them
        yield publisher


def later(settings: WorkerSettings) -> datetime:
    """A clock past every lease taken now: each running job is a candidate."""
    return utcnow() + timedelta(seconds=settings.task_time_limit_s + settings.sweep_grace_s + 1)


def sweeper(settings: WorkerSettings, store: JobStore, publisher: Publisher) -> Sweeper:
    return Sweeper(settings, store=store, publisher=publisher, clock=lambda: later(settings))


def running_job(store: JobStore, *, attempts: int, lease_s: float | None = 0.05) -> str:
    """A job that entered ``running`` for its ``attempts``-th attempt; its lease (if any) lasts
    ``lease_s`` (expired by the time this returns when short)."""
    job_id = uuid.uuid4().hex
    store.create(record_for(REQUEST, job_id), request=BODY)
    assert store.transition(job_id, JobState.RUNNING, attempts=attempts)
    if lease_s is not None:
        store.take_lease(job_id, lease_s)
        if lease_s < 1:
            time.sleep(lease_s + 0.1)
    return job_id


def drain_queue(settings: WorkerSettings, queue_name: str) -> list[tuple[dict[str, Any], Any]]:
    """Every message in the namespace's queue ``queue_name``, removed from it."""
    return drain(next(q for q in build_topology(settings).all_queues if q.name == queue_name))


def worker_context(settings: WorkerSettings, store: JobStore) -> WorkerContext:
    """Enough of a worker to run ``pipeline.start`` (it touches only the store and notify)."""
    return stub_context(settings, store=store)


def test_the_running_index_follows_the_state_and_a_final_state_drops_the_lease(
    settings: WorkerSettings, store: JobStore
) -> None:
    job_id = running_job(store, attempts=1, lease_s=60)
    assert store.running_since_before(later(settings)) == [job_id]
    assert store.lease_holder(job_id) == "worker"
    assert store.transition(job_id, JobState.SUCCEEDED)
    assert store.running_since_before(later(settings)) == []
    assert store.lease_holder(job_id) is None


def test_a_stuck_job_with_attempts_left_is_published_again_and_its_worker_runs_it(
    settings: WorkerSettings, store: JobStore, publisher: Publisher
) -> None:
    job_id = running_job(store, attempts=1)

    report = sweeper(settings, store, publisher).sweep()

    assert report.outcomes == {job_id: Outcome.REQUEUED}
    [(headers, body)] = drain_queue(settings, settings.listing_queue)
    assert (headers["id"], headers["task"], headers["retries"]) == (job_id, LISTING_TASK, 1)
    assert body[1] == {"job_id": job_id, "request": BODY}
    assert store.lease_holder(job_id) == SWEEPER  # the next sweep leaves the waiting message be
    assert sweeper(settings, store, publisher).sweep().outcomes == {job_id: Outcome.ALIVE}
    assert drain_queue(settings, settings.listing_queue) == []

    # the worker takes the retried message as another attempt of the running job
    ctx = worker_context(settings, store)
    assert pipeline.start(job_id, REQUEST, ctx, redelivered=bool(headers["retries"]))
    record = store.require(job_id)
    assert (record.state, record.attempts) == (JobState.RUNNING, 2)
    assert store.lease_holder(job_id) == "worker"


def test_a_stuck_job_out_of_attempts_fails_with_job_stuck_and_its_callback_is_queued(
    settings: WorkerSettings, store: JobStore, publisher: Publisher
) -> None:
    job_id = running_job(store, attempts=settings.job_retry_attempts, lease_s=None)

    report = sweeper(settings, store, publisher).sweep()

    assert report.outcomes == {job_id: Outcome.FAILED}
    record = store.require(job_id)
    assert record.state is JobState.FAILED and record.error is not None
    assert (record.error.code, record.error.retryable) == (ErrorCode.JOB_STUCK, True)
    assert drain_queue(settings, settings.listing_queue) == []
    [(headers, body)] = drain_queue(settings, settings.callback_queue)
    assert headers["task"] == CALLBACK_TASK
    assert body[1] == callback_kwargs(job_id, JobEventType.FAILED.value)
    assert store.running_since_before(later(settings)) == []


def test_a_job_with_a_live_lease_or_a_recent_start_is_left_alone(
    settings: WorkerSettings, store: JobStore, publisher: Publisher
) -> None:
    leased = running_job(store, attempts=settings.job_retry_attempts, lease_s=60)
    assert sweeper(settings, store, publisher).sweep().outcomes == {leased: Outcome.ALIVE}

    recent = running_job(store, attempts=settings.job_retry_attempts, lease_s=None)
    on_time = Sweeper(settings, store=store, publisher=publisher)  # the real clock: nothing is old yet
    assert on_time.sweep().outcomes == {}

    assert [store.require(j).state for j in (leased, recent)] == [JobState.RUNNING] * 2
    assert (
        drain_queue(settings, settings.listing_queue) == []
        and drain_queue(settings, settings.callback_queue) == []
    )


class RacingStore(JobStore):
    """A store in which ``race`` happens to the job right after the sweeper found no lease."""

    race: Any = None

    def lease_holder(self, job_id: str) -> str | None:
        holder = super().lease_holder(job_id)
        if self.race is not None:
            self.race(job_id)
        return holder


@pytest.mark.parametrize("attempts", [1, 3], ids=["attempts-left", "attempts-used"])
def test_a_job_that_finishes_while_being_swept_is_not_touched(
    settings: WorkerSettings, publisher: Publisher, attempts: int
) -> None:
    store = RacingStore(settings)
    job_id = running_job(store, attempts=attempts, lease_s=None)
    store.race = lambda job_id: store.transition(job_id, JobState.SUCCEEDED)

    assert sweeper(settings, store, publisher).sweep().outcomes == {job_id: Outcome.CHANGED}

    assert store.require(job_id).state is JobState.SUCCEEDED and store.require(job_id).error is None
    assert (
        drain_queue(settings, settings.listing_queue) == []
        and drain_queue(settings, settings.callback_queue) == []
    )
    store.close()


def test_a_job_that_starts_another_attempt_while_being_swept_is_not_failed(
    settings: WorkerSettings, publisher: Publisher
) -> None:
    store = RacingStore(settings)
    job_id = running_job(store, attempts=settings.job_retry_attempts, lease_s=None)
    store.race = lambda job_id: store.transition(job_id, JobState.RUNNING, only_from=[JobState.RUNNING])

    assert sweeper(settings, store, publisher).sweep().outcomes == {job_id: Outcome.CHANGED}

    record = store.require(job_id)
    assert (record.state, record.attempts, record.error) == (JobState.RUNNING, 4, None)
    assert drain_queue(settings, settings.callback_queue) == []
    store.close()


# --- jobs left queued with no message (dead-lettered before they started, or never published) ---


class Clock:
    """A settable clock for the sweeper, starting at the real time."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now = utcnow() + timedelta(seconds=seconds)


def swept(state: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("atelier_sweeper_outcomes_total", {"state": state, "outcome": outcome})
        or 0.0
    )


def queued_job(store: JobStore) -> str:
    job_id = uuid.uuid4().hex
    store.create(record_for(REQUEST, job_id), request=BODY)
    return job_id


def test_a_stale_queued_job_is_published_again_once_then_failed_with_job_stuck_and_its_callback(
    settings: WorkerSettings, store: JobStore, publisher: Publisher
) -> None:
    clock = Clock()
    sweeper = Sweeper(settings, store=store, publisher=publisher, clock=clock)
    job_id = queued_job(store)
    assert sweeper.sweep().outcomes == {}  # queued just now

    clock.wait(settings.queued_timeout_s + 1)
    requeued_before = swept("queued", "requeued")
    assert sweeper.sweep().outcomes == {job_id: Outcome.REQUEUED}
    assert swept("queued", "requeued") == requeued_before + 1  # on the sweeper's /metrics
    [(headers, body)] = drain_queue(settings, settings.listing_queue)
    assert (headers["id"], headers["task"], headers["retries"]) == (job_id, LISTING_TASK, 0)
    assert body[1] == {"job_id": job_id, "request": BODY}
    assert store.requeue_count(job_id) == 1

    clock.wait(1)  # the re-queue restarted the wait
    assert sweeper.sweep().outcomes == {}
    clock.wait(settings.queued_timeout_s + 1)
    assert sweeper.sweep().outcomes == {job_id: Outcome.FAILED}
    record = store.require(job_id)
    assert record.state is JobState.FAILED and record.error is not None
    assert (record.error.code, record.error.retryable) == (ErrorCode.JOB_STUCK, True)
    assert "stayed queued" in record.error.message
    assert drain_queue(settings, settings.listing_queue) == []
    [(headers, body)] = drain_queue(settings, settings.callback_queue)
    assert body[1] == callback_kwargs(job_id, JobEventType.FAILED.value)
    assert store.queued_since_before(later(settings) + timedelta(days=1)) == []


def test_a_queued_job_leaves_the_queued_index_when_it_starts_or_is_canceled_and_a_duplicate_is_dropped(
    settings: WorkerSettings, store: JobStore
) -> None:
    far = utcnow() + timedelta(days=1)
    started, canceled = queued_job(store), queued_job(store)
    assert sorted(store.queued_since_before(far)) == sorted([started, canceled])

    ctx = worker_context(settings, store)
    assert pipeline.start(started, REQUEST, ctx, redelivered=False)
    assert store.request_cancel(canceled).state is JobState.CANCELED
    assert store.queued_since_before(far) == []
    # the sweeper's second message for a job whose first one was only slow is dropped
    assert not pipeline.start(started, REQUEST, ctx, redelivered=False)
    assert store.require(started).attempts == 1


def test_a_queued_timeout_of_zero_requeues_fails_at_once(
    settings: WorkerSettings, store: JobStore, publisher: Publisher
) -> None:
    strict = settings.model_copy(update={"queued_requeues": 0})
    clock = Clock()
    job_id = queued_job(store)
    clock.wait(settings.queued_timeout_s + 1)
    assert Sweeper(strict, store=store, publisher=publisher, clock=clock).sweep().outcomes == {
        job_id: Outcome.FAILED
    }
    assert drain_queue(settings, settings.listing_queue) == []
