"""The job status store's behaviour, asserted on both stores: ``JobStore`` on a real Redis and
the shipped ``MemoryJobStore`` (so the stand-in the unit tests use cannot drift from it): atomic
idempotent create, the state machine, callback claims, watch, the event stream, and the
sweeper's leases and indexes. Redis-only details (key names, expiry) are asserted on ``JobStore`` alone."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core.contracts.jobs import JobError, JobEventType, JobKind, JobRecord, JobState, StoredImage
from core.jobs import (
    IdempotencyConflict,
    InvalidCursor,
    JobNotFound,
    JobStore,
    MemoryJobStore,
    WatchTimeout,
    cancel_pending,
    cancel_refusal,
    list_jobs,
    utcnow,
)
from core.jobs.events import EVENTS_MAX_LEN
from tests.redis_namespace import private_namespace

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED = (
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.CANCELED,
)
AWAITING_REVIEW, APPROVED, REJECTED = JobState.AWAITING_REVIEW, JobState.APPROVED, JobState.REJECTED

#: either store: every test below taking ``store`` runs on both
Store = JobStore | MemoryJobStore


@pytest.fixture
def redis_store() -> Iterator[JobStore]:
    with private_namespace() as (settings, client):
        yield JobStore(settings, client=client)


@pytest.fixture(params=["redis", "memory"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        return MemoryJobStore()
    redis_backed: JobStore = request.getfixturevalue("redis_store")
    return redis_backed


def new_record(requester: str = "shop-eu") -> JobRecord:
    return JobRecord(
        job_id=uuid.uuid4().hex,
        kind=JobKind.LISTING,
        state=QUEUED,
        requester=requester,
        subject="SKU-1",
        created_at=datetime.now(UTC),
    )


def created_for(store: Store, requester: str, *, subject: str) -> str:
    record = new_record(requester).model_copy(update={"subject": subject})
    job_id, _ = store.create(record)
    time.sleep(0.002)  # distinct creation times, so "newest first" is well defined
    return job_id


def created(store: Store, state_path: tuple[JobState, ...] = ()) -> str:
    job_id, _ = store.create(new_record(), request={"listing_id": "SKU-1"})
    for state in state_path:
        assert store.transition(job_id, state)
    return job_id


def test_create_stores_record_and_request(store: Store) -> None:
    record = new_record()
    job_id, was_created = store.create(record, request={"listing_id": "SKU-1", "variants": 2})
    assert (job_id, was_created) == (record.job_id, True)
    assert store.get(job_id) == record
    assert store.get_request(job_id) == {"listing_id": "SKU-1", "variants": 2}


def test_redis_records_and_idempotency_keys_expire_in_the_namespace(redis_store: JobStore) -> None:
    store, record = redis_store, new_record()
    store.create(record, "key-1")
    keys, settings = store.keys, store.settings
    assert keys.job(record.job_id).startswith(settings.redis_key_prefix)
    assert 0 < store.redis.ttl(keys.job(record.job_id)) <= settings.job_record_ttl_s
    assert 0 < store.redis.ttl(keys.idempotency("shop-eu", "key-1")) <= settings.idempotency_ttl_s


def test_same_idempotency_key_returns_the_first_job_and_creates_nothing(store: Store) -> None:
    first, second = new_record(), new_record()
    assert store.create(first, "key-1") == (first.job_id, True)
    assert store.create(second, "key-1") == (first.job_id, False)
    assert store.get(second.job_id) is None
    assert store.require(first.job_id).idempotency_key == "key-1"
    assert store.find_by_idempotency_key("shop-eu", "key-1") == first.job_id


def test_idempotency_keys_are_scoped_per_requester(store: Store) -> None:
    a, b = new_record("shop-a"), new_record("shop-b")
    assert store.create(a, "key-1")[1] and store.create(b, "key-1")[1]
    # ':' is legal in identifiers, so requester 'x:y' + key 'z' must not collide with 'x' + 'y:z'
    c, d = new_record("x:y"), new_record("x")
    assert store.create(c, "z")[1] and store.create(d, "y:z")[1]


def test_concurrent_creates_with_one_key_make_one_job(store: Store) -> None:
    results: list[tuple[str, bool]] = []
    barrier = threading.Barrier(8)

    def submit() -> None:
        barrier.wait()
        results.append(store.create(new_record(), "race-key"))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(was_created for _, was_created in results) == 1


def test_same_key_with_another_fingerprint_is_a_conflict_and_creates_nothing(store: Store) -> None:
    first, second = new_record(), new_record()
    assert store.create(first, "key-1", fingerprint="a" * 64) == (first.job_id, True)
    assert store.create(new_record(), "key-1", fingerprint="a" * 64) == (first.job_id, False)
    with pytest.raises(IdempotencyConflict) as raised:
        store.create(second, "key-1", fingerprint="b" * 64)
    assert raised.value.job_id == first.job_id and store.get(second.job_id) is None
    # a caller without a fingerprint (an older producer) still gets the first job back
    assert store.create(new_record(), "key-1") == (first.job_id, False)


def test_requester_index_lists_own_jobs_newest_first_in_cursor_pages(store: Store) -> None:
    mine = [created_for(store, "shop-a", subject=f"SKU-{i % 2}") for i in range(5)]
    created_for(store, "shop-b", subject="SKU-0")
    newest_first = list(reversed(mine))
    seen: list[str] = []
    cursor = None
    for expected_size in (2, 2, 1):
        page = list_jobs(store, "shop-a", limit=2, cursor=cursor)
        assert len(page.jobs) == expected_size
        seen += [record.job_id for record in page.jobs]
        cursor = page.next_cursor
    assert seen == newest_first and cursor is None
    filtered = list_jobs(store, "shop-a", subject="SKU-0", limit=10)
    assert [r.job_id for r in filtered.jobs] == [j for j in newest_first if j in mine[0::2]]
    assert filtered.next_cursor is None
    assert list_jobs(store, "shop-a", state=CANCELED).jobs == []
    store.request_cancel(mine[1])
    assert [r.job_id for r in list_jobs(store, "shop-a", state=CANCELED).jobs] == [mine[1]]
    assert list_jobs(store, "nobody").jobs == []
    with pytest.raises(InvalidCursor):
        list_jobs(store, "shop-a", cursor="not-a-cursor!")


def test_released_key_lets_a_retry_create_a_new_job(store: Store) -> None:
    first = new_record()
    store.create(first, "key-1")
    assert not store.release_idempotency_key("shop-eu", "key-1", "someone-else")
    assert store.release_idempotency_key("shop-eu", "key-1", first.job_id)
    second = new_record()
    assert store.create(second, "key-1") == (second.job_id, True)


def test_erase_forgets_the_job_its_request_indexes_lease_and_idempotency_key(store: Store) -> None:
    FAR = timedelta(days=1)
    kept, _ = store.create(new_record(), "kept-key", request={"listing_id": "SKU-2"})
    queued, _ = store.create(new_record(), "gone-key", request={"listing_id": "SKU-1"})
    running, _ = store.create(new_record(), request={"listing_id": "SKU-1"})
    assert store.transition(running, RUNNING) and store.take_lease(running, 60)
    assert store.claim_event(running, JobEventType.STARTED)

    assert store.erase(queued) and store.erase(running)
    for job_id in (queued, running):
        assert store.get(job_id) is None and store.get_request(job_id) is None
        assert store.lease_holder(job_id) is None and not store.event_claimed(job_id, "job.started")
        assert store.events(job_id) == []
        assert job_id not in [entry.job_id for entry in store.requester_index("shop-eu")]
        assert job_id not in store.running_since_before(utcnow() + FAR)
        assert job_id not in store.queued_since_before(utcnow() + FAR)
    assert store.find_by_idempotency_key("shop-eu", "gone-key") is None
    # the others stay as they were, and the erased key is free for a new job
    assert store.get(kept) is not None and store.find_by_idempotency_key("shop-eu", "kept-key") == kept
    assert [entry.job_id for entry in store.requester_index("shop-eu")] == [kept]
    again = new_record()
    assert store.create(again, "gone-key") == (again.job_id, True)
    assert not store.erase(queued)  # a second erase finds nothing
    assert not store.transition(queued, RUNNING)  # a late worker cannot bring it back
    assert store.get(queued) is None


def test_redis_erase_leaves_no_key_of_the_job(redis_store: JobStore) -> None:
    store = redis_store
    job_id, _ = store.create(new_record(), "key-1", request={"listing_id": "SKU-1"})
    assert store.transition(job_id, RUNNING) and store.take_lease(job_id, 60)
    assert store.erase(job_id)
    left = [key for key in store.redis.scan_iter(match=f"{store.keys.prefix}*") if job_id in key]
    assert left == []
    assert store.redis.zcard(store.keys.requester("shop-eu")) == 0


def test_happy_path_sets_timestamps_attempts_and_results(store: Store) -> None:
    job_id = created(store)
    assert store.transition(job_id, RUNNING, model="product_cgan", model_version="1", seed=11)
    running = store.get(job_id)
    assert running is not None and running.attempts == 1 and running.started_at is not None
    image = StoredImage(
        variant=0,
        bucket="b",
        key="k.png",
        content_type="image/png",
        url="http://s3/k.png",
        url_expires_at=datetime.now(UTC),
    )
    assert store.set_results(job_id, [image])
    assert store.transition(job_id, SUCCEEDED)
    done = store.get(job_id)
    assert done is not None and done.state is SUCCEEDED and done.results == [image]
    assert (done.model, done.model_version, done.seed) == ("product_cgan", "1", 11)
    assert done.started_at is not None and done.finished_at is not None
    assert done.finished_at >= done.started_at


def test_redelivery_running_to_running_counts_attempts(store: Store) -> None:
    job_id = created(store, (RUNNING,))
    first_start = store.require(job_id).started_at
    assert store.transition(job_id, RUNNING)
    again = store.get(job_id)
    assert again is not None and again.attempts == 2 and again.started_at == first_start


@pytest.mark.parametrize(
    ("path", "to_state"),
    [
        ((), SUCCEEDED),  # queued -> succeeded skips running
        ((), QUEUED),
        ((RUNNING,), QUEUED),
        ((), AWAITING_REVIEW),  # review follows a run
        ((RUNNING, AWAITING_REVIEW), SUCCEEDED),  # a reviewed job ends approved or rejected
        ((RUNNING, AWAITING_REVIEW), RUNNING),
        ((RUNNING, AWAITING_REVIEW, APPROVED), REJECTED),
        ((RUNNING, SUCCEEDED), FAILED),  # terminal states never change
        ((RUNNING, SUCCEEDED), RUNNING),
        ((RUNNING, FAILED), SUCCEEDED),
        ((CANCELED,), RUNNING),  # a canceled job never runs
        ((FAILED,), RUNNING),  # nor does one whose publish failed
    ],
)
def test_state_machine_refuses(store: Store, path: tuple[JobState, ...], to_state: JobState) -> None:
    job_id = created(store, path)
    before = store.get(job_id)
    assert not store.transition(job_id, to_state)
    assert store.get(job_id) == before


def test_transition_of_unknown_job_is_refused(store: Store) -> None:
    assert not store.transition(uuid.uuid4().hex, RUNNING)
    assert store.get(uuid.uuid4().hex) is None


def test_transition_rejects_identity_fields(store: Store) -> None:
    job_id = created(store)
    with pytest.raises(TypeError, match="requester"):
        store.transition(job_id, RUNNING, requester="someone-else")


def test_only_from_narrows_the_source_state(store: Store) -> None:
    job_id = created(store, (RUNNING,))
    error = JobError(code="publish_failed", message="x", retryable=True)
    assert not store.transition(job_id, FAILED, only_from=(QUEUED,), error=error)
    assert store.require(job_id).state is RUNNING


def test_concurrent_start_lets_exactly_one_worker_win_the_queued_job(store: Store) -> None:
    job_id = created(store)
    outcomes: list[bool] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        outcomes.append(store.transition(job_id, RUNNING, only_from=(QUEUED,)))

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 5 + [True]
    assert store.require(job_id).attempts == 1


def test_concurrent_callback_notes_and_transition_lose_no_update(store: Store) -> None:
    job_id = created(store, (RUNNING,))
    events = [JobEventType.QUEUED, JobEventType.STARTED, JobEventType.SUCCEEDED]
    threads = [threading.Thread(target=store.record_callback, args=(job_id, e, "delivered")) for e in events]
    threads.append(threading.Thread(target=store.transition, args=(job_id, SUCCEEDED)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = store.get(job_id)
    assert record is not None and record.state is SUCCEEDED
    assert record.callbacks == {e.value: "delivered" for e in events}


def test_set_results_only_while_running(store: Store) -> None:
    assert not store.set_results(created(store), [])
    assert not store.set_results(created(store, (RUNNING, SUCCEEDED)), [])


def test_record_callback_works_in_terminal_states(store: Store) -> None:
    job_id = created(store, (RUNNING, SUCCEEDED))
    assert store.record_callback(job_id, "job.succeeded", "failed: HTTP 500")
    assert store.record_callback(job_id, JobEventType.SUCCEEDED, "delivered")
    record = store.get(job_id)
    assert record is not None
    assert record.callbacks == {"job.succeeded": "delivered"}
    assert record.callback_state == "job.succeeded: delivered"


def test_claim_event_succeeds_once_per_event(store: Store) -> None:
    job_id = created(store)
    assert not store.event_claimed(job_id, JobEventType.STARTED)
    assert store.claim_event(job_id, JobEventType.STARTED)
    assert store.event_claimed(job_id, "job.started")
    assert not store.claim_event(job_id, "job.started")
    assert store.claim_event(job_id, JobEventType.SUCCEEDED)
    assert not store.claim_event(uuid.uuid4().hex, JobEventType.STARTED)
    assert store.require(job_id).state is QUEUED


def test_cancel_queued_job(store: Store) -> None:
    job_id = created(store)
    record = store.request_cancel(job_id)
    assert record.state is CANCELED and record.finished_at is not None
    assert cancel_refusal(record) is None
    assert not store.transition(job_id, RUNNING)


def test_cancel_of_a_running_job_marks_it_for_its_worker_once(store: Store) -> None:
    job_id = created(store, (RUNNING,))
    record = store.request_cancel(job_id)
    assert record.state is RUNNING and record.cancel_requested_at is not None
    assert cancel_refusal(record) is None and cancel_pending(record)
    assert store.request_cancel(job_id).cancel_requested_at == record.cancel_requested_at
    assert store.transition(job_id, CANCELED, only_from=[RUNNING])  # what its worker does next
    assert store.require(job_id).finished_at is not None


def test_cancel_of_a_job_awaiting_review_cancels_it_and_a_finished_job_says_why_not(store: Store) -> None:
    waiting = created(store, (RUNNING, AWAITING_REVIEW))
    assert store.request_cancel(waiting).state is CANCELED
    done = created(store, (RUNNING, SUCCEEDED))
    before = store.get(done)
    record = store.request_cancel(done)
    assert record == before and cancel_refusal(record) == "the job already ended succeeded"


def test_cancel_unknown_job_raises(store: Store) -> None:
    with pytest.raises(JobNotFound):
        store.request_cancel(uuid.uuid4().hex)


def test_watch_yields_each_change_until_terminal(store: Store) -> None:
    job_id = created(store)

    def worker() -> None:
        for state in (RUNNING, SUCCEEDED):
            time.sleep(0.15)
            store.transition(job_id, state)

    thread = threading.Thread(target=worker)
    thread.start()
    started = time.monotonic()
    states = [record.state for record in store.watch(job_id, timeout=10, poll_interval=5)]
    thread.join()
    assert states == [QUEUED, RUNNING, SUCCEEDED]
    # woken by the change notices, not by the 5 s poll
    assert time.monotonic() - started < 3


def test_watch_times_out(store: Store) -> None:
    job_id = created(store)
    seen = []
    with pytest.raises(WatchTimeout) as caught:
        for record in store.watch(job_id, timeout=0.3, poll_interval=0.1):
            seen.append(record.state)
    assert seen == [QUEUED] and caught.value.record.job_id == job_id


def test_watch_unknown_job_raises(store: Store) -> None:
    with pytest.raises(JobNotFound):
        next(store.watch(uuid.uuid4().hex, timeout=1))


# --- the event stream (GET /v1/jobs/{id}/events reads it) ---


def test_each_state_change_records_one_event_with_increasing_ids_and_updates_record_none(
    store: Store,
) -> None:
    job_id = created(store, (RUNNING,))
    assert store.transition(job_id, RUNNING)  # a redelivery: another job.started
    assert store.record_callback(job_id, JobEventType.STARTED, "delivered")  # no state change
    assert store.set_results(job_id, [])
    assert store.transition(job_id, SUCCEEDED)
    assert not store.transition(job_id, FAILED)  # refused: nothing recorded
    events = store.events(job_id)
    # ids are the record's version after the change: the two updates leave gaps
    assert [(e.id, e.event.type) for e in events] == [
        (1, JobEventType.QUEUED),
        (2, JobEventType.STARTED),
        (3, JobEventType.STARTED),
        (6, JobEventType.SUCCEEDED),
    ]
    assert [e.event.data["state"] for e in events] == ["queued", "running", "running", "succeeded"]
    assert [e.event.data.get("attempts") for e in events[1:3]] == [1, 2]
    assert [e.terminal for e in events] == [False, False, False, True]
    assert all(e.event.data["job_id"] == job_id for e in events)
    assert [e.id for e in store.events(job_id, after=2)] == [3, 6]
    assert store.events(job_id, after=6) == []
    assert store.events(uuid.uuid4().hex) == []


def test_wait_events_returns_at_once_what_is_there_and_wakes_on_the_next_change(store: Store) -> None:
    job_id = created(store)
    assert [e.id for e in store.wait_events(job_id, timeout=1)] == [1]

    def worker() -> None:
        time.sleep(0.2)
        store.transition(job_id, CANCELED)

    thread = threading.Thread(target=worker)
    thread.start()
    started = time.monotonic()
    woken = store.wait_events(job_id, after=1, timeout=3)
    thread.join()
    assert [(e.id, e.event.type) for e in woken] == [(2, JobEventType.CANCELED)]
    assert time.monotonic() - started < 2  # woken by the change, not at the timeout
    started = time.monotonic()
    assert store.wait_events(job_id, after=2, timeout=0.3) == []
    assert 0.25 < time.monotonic() - started < 2


def test_a_job_keeps_at_most_the_bounded_number_of_events(store: Store) -> None:
    job_id = created(store, (RUNNING,))
    for _ in range(EVENTS_MAX_LEN + 5):
        assert store.transition(job_id, RUNNING)
    events = store.events(job_id)
    assert len(events) == EVENTS_MAX_LEN and events[-1].event.data["attempts"] == EVENTS_MAX_LEN + 6
    assert [e.id for e in events] == sorted(e.id for e in events)


def test_redis_event_stream_expires_with_the_record(redis_store: JobStore) -> None:
    store = redis_store
    job_id = created(store)
    stream = store.keys.events(job_id)
    assert store.redis.type(stream) == "stream"
    assert 0 < store.redis.ttl(stream) <= store.settings.job_record_ttl_s
    store.redis.expire(store.keys.job(job_id), 100)
    assert store.transition(job_id, RUNNING)
    assert 0 < store.redis.ttl(stream) <= 100  # a change brings the stream to the record's TTL


# --- the sweeper's leases and indexes ---

FAR = timedelta(days=1)


def test_the_running_index_follows_the_state_and_a_final_state_drops_the_lease(store: Store) -> None:
    job_id = created(store, (RUNNING,))
    assert store.running_since_before(utcnow() + FAR) == [job_id]
    assert store.running_since_before(utcnow() - FAR) == []
    assert store.take_lease(job_id, 60)
    assert store.lease_holder(job_id) == "worker"
    assert store.transition(job_id, SUCCEEDED)
    assert store.running_since_before(utcnow() + FAR) == []
    assert store.lease_holder(job_id) is None


def test_a_queued_job_leaves_the_queued_index_when_it_starts_or_is_canceled(store: Store) -> None:
    started, canceled, waiting = created(store), created(store), created(store)
    assert sorted(store.queued_since_before(utcnow() + FAR)) == sorted([started, canceled, waiting])
    assert store.transition(started, RUNNING)
    store.request_cancel(canceled)
    assert store.queued_since_before(utcnow() + FAR) == [waiting]
    store.forget_queued(waiting)
    assert store.queued_since_before(utcnow() + FAR) == []


def test_indexes_list_the_oldest_first_up_to_the_limit(store: Store) -> None:
    first = created(store)
    time.sleep(0.01)
    second = created(store)
    assert store.queued_since_before(utcnow() + FAR, limit=1) == [first]
    assert store.queued_since_before(utcnow() + FAR) == [first, second]


def test_leases_expire_and_are_released_only_by_their_holder(store: Store) -> None:
    job_id = created(store, (RUNNING,))
    assert store.take_lease(job_id, 60, holder="sweeper", only_new=True)
    assert not store.take_lease(job_id, 60, only_new=True)
    assert not store.release_lease(job_id, holder="worker")
    assert store.release_lease(job_id, holder="sweeper")
    assert store.lease_holder(job_id) is None
    assert store.take_lease(job_id, 0.05)
    time.sleep(0.15)
    assert store.lease_holder(job_id) is None
    assert store.take_lease(job_id, 60, only_new=True)


def test_a_requeue_is_counted_and_restarts_the_wait_in_the_queued_index(store: Store) -> None:
    job_id = created(store)
    before = utcnow()
    time.sleep(0.01)
    assert store.requeue_count(job_id) == 0
    assert store.count_requeue(job_id) == 1 and store.count_requeue(job_id) == 2
    assert store.requeue_count(job_id) == 2
    assert store.queued_since_before(before) == []
    assert store.queued_since_before(utcnow()) == [job_id]
    assert store.count_requeue(uuid.uuid4().hex) == 0


def test_forget_running_drops_a_job_from_the_running_index(store: Store) -> None:
    job_id = created(store, (RUNNING,))
    store.forget_running(job_id)
    assert store.running_since_before(utcnow() + FAR) == []
