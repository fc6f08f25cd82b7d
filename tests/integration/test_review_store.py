"""The review writes of the state machine, asserted on both stores (``JobStore`` on a real Redis
and ``MemoryJobStore``): the index of jobs awaiting review follows each job's state, and
decisions that race each other or a cancel each change the record once. The fixtures are
tests/integration/test_jobs_store.py's."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from core.contracts.jobs import ImageDecision, ImageReview, JobEventType, JobState, StoredImage
from core.jobs import JobStore, utcnow
from core.jobs.review import DecisionOutcome
from tests.integration.test_jobs_store import Store, new_record, redis_store, store

__all__ = ["redis_store", "store"]  # the fixtures, used by name


def held(store: Store, variants: int = 2, requester: str = "shop-eu") -> str:
    """A job awaiting review with ``variants`` pending images."""
    record = new_record(requester)
    store.create(record)
    images = [
        StoredImage(
            variant=v,
            bucket="b",
            key=f"listing/{record.job_id}/{v}.png",
            content_type="image/png",
            url="http://s3/x",
            url_expires_at=utcnow() + timedelta(minutes=5),
            review=ImageReview(),
        )
        for v in range(variants)
    ]
    assert store.transition(record.job_id, JobState.RUNNING)
    assert store.transition(record.job_id, JobState.AWAITING_REVIEW, results=images)
    return record.job_id


def decide(store: Store, job_id: str, variant: int, status: ImageDecision, reviewer: str = "k1") -> str:
    review = ImageReview(status=status, reason="r", reviewer=reviewer, decided_at=utcnow())
    return store.decide_image(job_id, variant, review).outcome.value


def index(store: Store, requester: str = "shop-eu") -> list[str]:
    return [entry.job_id for entry in store.awaiting_review_index(requester)]


def test_the_review_index_follows_the_job_state_oldest_first(store: Store) -> None:
    first, second, third = held(store), held(store), held(store, requester="shop-us")
    assert index(store) == [first, second] and index(store, "shop-us") == [third]
    after_first = store.awaiting_review_index("shop-eu")[0]
    assert [e.job_id for e in store.awaiting_review_index("shop-eu", after=after_first)] == [second]
    assert decide(store, first, 0, ImageDecision.APPROVED) == "applied"
    assert index(store) == [first, second]  # an update keeps it there
    assert decide(store, first, 1, ImageDecision.REJECTED) == "applied"
    assert store.require(first).state is JobState.APPROVED and index(store) == [second]
    assert store.request_cancel(second).state is JobState.CANCELED and index(store) == []
    events = [stored.event.type for stored in store.events(first)]
    assert events[-2:] == [JobEventType.REVIEW_REQUIRED, JobEventType.APPROVED]


def test_the_redis_review_index_lives_as_long_as_its_newest_job(redis_store: JobStore) -> None:
    job_id = held(redis_store)
    key = redis_store.keys.awaiting_review("shop-eu")
    job_ttl: int = redis_store.redis.pttl(redis_store.keys.job(job_id))  # type: ignore[assignment]
    index_ttl: int = redis_store.redis.pttl(key)  # type: ignore[assignment]
    assert index_ttl > 0 and abs(job_ttl - index_ttl) < 1000


def test_many_reviewers_deciding_one_image_change_it_once(store: Store) -> None:
    job_id = held(store, variants=2)
    statuses = [ImageDecision.APPROVED, ImageDecision.REJECTED] * 6
    with ThreadPoolExecutor(12) as pool:
        outcomes = list(
            pool.map(lambda i: decide(store, job_id, 0, statuses[i], reviewer=f"k{i}"), range(len(statuses)))
        )
    assert outcomes.count("applied") == 1 and outcomes.count("conflict") == 11
    review = store.require(job_id).results[0].review
    assert review is not None and review.reviewer == f"k{outcomes.index('applied')}"
    assert store.require(job_id).state is JobState.AWAITING_REVIEW


def decide_together(store: Store, job_id: str, variants: list[int]) -> list[str]:
    """Reject each of ``variants`` from its own thread, all released at once."""
    start = threading.Barrier(len(variants))

    def reject(variant: int) -> str:
        start.wait()
        return decide(store, job_id, variant, ImageDecision.REJECTED)

    with ThreadPoolExecutor(len(variants)) as pool:
        return list(pool.map(reject, variants))


def test_the_last_two_decisions_landing_together_both_apply_and_end_the_review_once(store: Store) -> None:
    for _ in range(5):
        job_id = held(store, variants=2)
        assert decide_together(store, job_id, [0, 1]) == ["applied", "applied"]
        assert store.require(job_id).state is JobState.REJECTED
        ends = [e.event.type for e in store.events(job_id) if e.event.type is JobEventType.REJECTED]
        assert len(ends) == 1


def test_a_decision_on_a_canceled_job_is_a_conflict_and_writes_nothing(store: Store) -> None:
    job_id = held(store)
    store.request_cancel(job_id)
    before = store.require(job_id)
    change = store.decide_image(job_id, 0, ImageReview(status=ImageDecision.APPROVED))
    assert change.outcome is DecisionOutcome.CONFLICT and store.require(job_id) == before
