"""A worker's start takes the job's lease in the transition's own write, and its terminal
transition brings back what its inline callback attempt reads next (``core.jobs.recent``): a
successful listing job costs the status store fewer round trips, with the same answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.contracts.jobs import JobEventType, JobState
from core.jobs import JobStore, utcnow
from tests.job_stores import queued_job as new_queued_job
from tests.job_stores import two_stores
from tests.redis_monitor import RedisCommands

REQUEST = {"schema_version": "v1", "callback": {"url": "https://shop.example/hook"}}


@pytest.fixture
def stores() -> Iterator[tuple[JobStore, JobStore]]:
    """A worker's store and another process's, on one private prefix."""
    with two_stores() as both:
        yield both


def queued_job(store: JobStore) -> str:
    return new_queued_job(store, REQUEST)


def test_a_start_takes_the_lease_in_its_transitions_write(stores: tuple[JobStore, JobStore]) -> None:
    worker, _ = stores
    job_id = queued_job(worker)
    seen = RedisCommands(worker.settings, job_id)
    assert worker.start_attempt(job_id, only_from=JobState.QUEUED, lease_s=30.0)
    assert seen.stop() == ["HMGET", "EVALSHA"]  # the read, then one write: no SET of its own
    ttl_ms = worker.redis.pttl(worker.keys.lease(job_id))
    assert worker.lease_holder(job_id) == "worker" and 29_000 < ttl_ms <= 30_000
    record = worker.require(job_id)
    assert record.state is JobState.RUNNING and record.attempts == 1
    assert job_id in worker.running_since_before(utcnow().replace(year=9999))


def test_a_refused_start_takes_no_lease(stores: tuple[JobStore, JobStore]) -> None:
    worker, other = stores
    job_id = queued_job(worker)
    assert other.transition(job_id, JobState.CANCELED)
    assert not worker.start_attempt(job_id, only_from=JobState.QUEUED, lease_s=30.0)
    assert worker.lease_holder(job_id) is None


def test_a_redelivery_counts_an_attempt_and_renews_the_lease(stores: tuple[JobStore, JobStore]) -> None:
    worker, _ = stores
    job_id = queued_job(worker)
    assert worker.start_attempt(job_id, only_from=JobState.QUEUED, lease_s=1.0)
    assert not worker.start_attempt(job_id, only_from=JobState.QUEUED, lease_s=30.0)
    assert worker.start_attempt(job_id, only_from=JobState.RUNNING, lease_s=30.0, holder="again")
    assert worker.require(job_id).attempts == 2 and worker.lease_holder(job_id) == "again"
    assert worker.redis.pttl(worker.keys.lease(job_id)) > 29_000


def test_the_look_after_a_terminal_transition_answers_from_that_write(
    stores: tuple[JobStore, JobStore],
) -> None:
    worker, _ = stores
    job_id = queued_job(worker)
    assert worker.start_attempt(job_id, only_from=JobState.QUEUED, lease_s=30.0)
    written = worker.transition_record(job_id, JobState.SUCCEEDED, results=[])
    assert written is not None and worker.lease_holder(job_id) is None
    seen = RedisCommands(worker.settings, job_id)
    claimed, record, request = worker.claim_and_read(job_id, JobEventType.SUCCEEDED, claim=False)
    assert seen.stop() == []
    assert (claimed, record, request) == (False, written, REQUEST)
    # once: the next look reads Redis, and sees the claim another sender took meanwhile
    assert worker.claim_event(job_id, JobEventType.SUCCEEDED)
    seen = RedisCommands(worker.settings, job_id)
    claimed, record, request = worker.claim_and_read(job_id, JobEventType.SUCCEEDED, claim=False)
    assert seen.stop() == ["EVALSHA"] and claimed and record == written and request == REQUEST


def test_the_look_reads_redis_after_any_other_read_or_write_of_the_job(
    stores: tuple[JobStore, JobStore],
) -> None:
    worker, other = stores
    job_id = queued_job(worker)
    assert worker.start_attempt(job_id, only_from=JobState.QUEUED, lease_s=30.0)
    assert worker.transition(job_id, JobState.FAILED)
    assert other.record_callback(job_id, JobEventType.STARTED, "delivered")
    assert worker.get(job_id) is not None  # this thread saw the newer record: the peek is gone
    claimed, record, _ = worker.claim_and_read(job_id, JobEventType.FAILED, claim=False)
    assert not claimed and record is not None and record.callbacks == {"job.started": "delivered"}


def test_a_claiming_read_and_another_events_look_never_use_the_peek(
    stores: tuple[JobStore, JobStore],
) -> None:
    worker, other = stores
    job_id = queued_job(worker)
    assert worker.start_attempt(job_id, only_from=JobState.QUEUED, lease_s=30.0)
    assert worker.transition(job_id, JobState.CANCELED)
    assert other.claim_event(job_id, JobEventType.CANCELED)
    assert worker.claim_and_read(job_id, JobEventType.FAILED, claim=False)[0] is False  # Redis
    claimed, _, _ = worker.claim_and_read(job_id, JobEventType.CANCELED)  # claims: always Redis
    assert claimed is False
