"""A status-store write starts from the record its thread last read or wrote
(``core.jobs.recent``) and skips one round trip to Redis, without ever losing another writer's
change or refusing on a stale record. Two ``JobStore`` instances stand for two processes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core.contracts.jobs import JobEventType, JobState
from core.jobs import JobStore
from tests.job_stores import queued_job, two_stores


@pytest.fixture
def stores() -> Iterator[tuple[JobStore, JobStore]]:
    with two_stores() as both:
        yield both


def running_job(store: JobStore) -> str:
    job_id = queued_job(store, {"schema_version": "v1"})
    assert store.transition(job_id, JobState.RUNNING)
    return job_id


def count_reads(store: JobStore, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    reads: list[Any] = []
    real = store.redis.hmget

    def hmget(*args: Any, **kwargs: Any) -> Any:
        reads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(store.redis, "hmget", hmget)
    return reads


def test_a_write_right_after_a_read_does_not_read_the_record_again(
    stores: tuple[JobStore, JobStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, _ = stores
    job_id = running_job(worker)
    assert worker.get(job_id) is not None
    reads = count_reads(worker, monkeypatch)
    assert worker.transition(job_id, JobState.SUCCEEDED, results=[])
    assert worker.record_callback(job_id, JobEventType.SUCCEEDED, "delivered")  # after its own write
    assert reads == []
    record = worker.get(job_id)
    assert record is not None and record.state is JobState.SUCCEEDED
    assert record.callbacks == {"job.succeeded": "delivered"}
    assert worker.recent(job_id) == record


def test_another_writers_change_in_between_is_kept(stores: tuple[JobStore, JobStore]) -> None:
    worker, other = stores
    job_id = running_job(worker)
    assert worker.get(job_id) is not None  # remembered before the other process writes
    assert other.record_callback(job_id, JobEventType.STARTED, "delivered")
    assert worker.record_callback(job_id, JobEventType.SUCCEEDED, "delivered")
    record = other.require(job_id)
    assert record.callbacks == {"job.started": "delivered", "job.succeeded": "delivered"}


def test_a_remembered_record_never_refuses_what_the_current_one_allows(
    stores: tuple[JobStore, JobStore],
) -> None:
    worker, api = stores
    job_id = running_job(worker)
    assert worker.require(job_id).cancel_requested_at is None  # what the worker remembers
    api.request_cancel(job_id)
    canceled = worker.transition(
        job_id, JobState.CANCELED, only_if=lambda record: record.cancel_requested_at is not None
    )
    assert canceled and api.require(job_id).state is JobState.CANCELED


def test_a_remembered_record_never_lets_through_what_the_current_one_refuses(
    stores: tuple[JobStore, JobStore],
) -> None:
    worker, api = stores
    job_id = running_job(worker)
    assert worker.require(job_id).cancel_requested_at is None
    api.request_cancel(job_id)
    done = worker.transition(
        job_id, JobState.SUCCEEDED, only_if=lambda record: record.cancel_requested_at is None, results=[]
    )
    assert not done and api.require(job_id).state is JobState.RUNNING


def test_an_erased_job_is_forgotten(stores: tuple[JobStore, JobStore]) -> None:
    worker, _ = stores
    job_id = running_job(worker)
    assert worker.get(job_id) is not None
    assert worker.erase(job_id)
    assert worker.recent(job_id) is None
    assert not worker.transition(job_id, JobState.SUCCEEDED)
